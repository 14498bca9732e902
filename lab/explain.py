"""What the lab does, as a person would do it by hand: the TLS guide's commands with this lab's values.

Each `ManualStep` is a section of the guide tagged with the plan step that does the same for you, so `up
--explain` prints a step's sections as it runs and `invoke guide` all of them in the guide's order. Values come
from the code the lab runs: REST bodies from `lab.amlen.payload` over `lab.configure.desired_objects`,
certificate profiles from `lab.pki.build`, the container from `lab.runtime.ContainerSpec`. No secret is written
out: openssl reads the CA passphrase from `$LAB_CA_PASSPHRASE`, and no key is read (curl reads the uploads).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from lab.amlen import AmlenObject, payload
from lab.checks import DEFAULT_COUNT, TOPIC, TOPIC_FILTER
from lab.configure import desired_objects
from lab.pki import build as certs
from lab.pki.info import EKU_NAMES, KEY_USAGE_NAMES
from lab.pki.paths import pki_paths
from lab.runtime import AMLEN_DATA_PATH, AMLEN_LOG_DIR, ContainerSpec
from lab.settings import Settings
from lab.volume import AMLEN_SERVER_CFG, STORE_KEY

__all__ = ["ADMIN_URL_VAR", "PASSPHRASE_VAR", "Command", "ManualStep", "guide_steps", "teardown_steps"]

PASSPHRASE_VAR = "LAB_CA_PASSPHRASE"
ADMIN_URL_VAR = "AMLEN_ADMIN_URL"
# What Amlen answers to every accepted upload and configuration change (reference, appendix).
_ACCEPTED = '"Code": "CWLNA6011", "Message": "The requested configuration change has completed successfully."'
_CURL = "curl --fail-with-body -sS -w '\\n'"
_WHY = {
    ("CertificateProfile", False):
        "Amlen serves the certificate of a certificate profile. The files go up first, as raw bytes (Amlen does "
        "not read multipart); the profile then names them, and Amlen checks the key (`openssl rsa -check`), "
        "matches it to the certificate and moves both into its key store. Each apply consumes the upload: a "
        "later change needs the files uploaded again.",
    ("SecurityProfile", False):
        "A security profile turns TLS on for an endpoint and picks the certificate profile. Every property is "
        "sent: Amlen's defaults differ from the WebUI's (password authentication is on unless turned off).",
    ("Endpoint", False):
        "The port clients connect to, on the Demo hub and policies. Amlen starts it at once, but an accepted POST "
        "does not prove it listens: the next section checks.",
    ("SecurityProfile", True):
        "The same profile with client certificates required: the server asks each client for one and ends the "
        "handshake with a client that has none it trusts.",
    ("TrustedCertificate", True):
        "The mutual profile accepts client certificates signed by the CAs it trusts: the toy CA. It must be "
        "there before the endpoint (Amlen refuses the endpoint otherwise, CWLNA0456).",
    ("Endpoint", True): "The mutual-TLS port, on the Demo hub and policies, with the profile above.",
}
_WEBUI = {
    "CertificateProfile": "Server > Security Settings > Certificate Profiles",
    "SecurityProfile": "Server > Security Settings > Security Profiles",
    "TrustedCertificate": "Server > Security Settings > Security Profiles > Other Actions > Trusted Certificates",
}


@dataclass(frozen=True)
class Command:
    """One shell command (it may span lines), what it is for, and what it prints when all is well."""

    text: str
    comment: str = ""
    webui: str = ""  # the WebUI route that does the same, e.g. "Server > Security Settings > Certificate Profiles"
    expect: str = ""
    in_script: bool = True  # False: shown, never run by the script (it needs root or Docker)
    retry: bool = False  # a listener just created may take a moment: the script tries again
    must_fail: bool = False  # a proof by refusal: the script stops when this succeeds


@dataclass(frozen=True)
class ManualStep:
    """One section of the guide: the plan step that does it, a title, why, and the commands."""

    step: str  # the plan step's name, e.g. "amlen configuration"
    chapter: str  # the guide's section it belongs to, e.g. "Mutual TLS"
    title: str
    why: str
    commands: tuple[Command, ...]
    requires: str = ""  # a shell condition the script checks first; unmet, it skips the section, saying why
    requires_note: str = ""


def guide_steps(settings: Settings) -> list[ManualStep]:
    """Every section of the guide for this lab, in the guide's order (each names the plan step it matches)."""
    objects = _objects(settings)
    mutual_objects = [obj for obj in objects if _is_mutual(obj, settings)]
    return [
        *_before_you_start(settings),
        _toy_ca(settings),
        _leaf(settings, settings.hostname, server=True),
        *(_amlen_object(obj, settings) for obj in objects if obj not in mutual_objects),
        _live(settings, settings.tls_endpoint, settings.tls_port, "Endpoint", client=""),
        _hosts(settings),
        *_clients(settings),
        *(_leaf(settings, name, server=False) for name in settings.client_names),
        *(_amlen_object(obj, settings) for obj in mutual_objects),
        *_mutual_clients(settings),
    ]


def teardown_steps(settings: Settings) -> list[ManualStep]:
    """What `invoke down` undoes, by hand, in its order: hosts line, Amlen objects, container, certificates."""
    objects = _objects(settings)
    spec = ContainerSpec.from_settings(settings)
    pattern = "^" + f"{settings.host_ip} {settings.hostname}".replace(".", r"\.") + "$"
    ca_stem, server_stem = (Path(name).stem for name in _pki_names(settings)[1::2])
    files = [f"{ca_stem}.key", f"{ca_stem}.pem", f"{ca_stem}.srl", *(f"{stem}.*" for stem in
                                                                    (server_stem, *settings.client_names))]
    chapter = "Clean up"
    return [
        ManualStep("hosts entry", chapter, "Remove the hosts line",
                   "The line you added by hand. (The lab marks its own line with `# amlen-lab <lab directory>` "
                   "and removes only that one, never yours.)",
                   (Command(f"sudo sed -i {shlex.quote('/' + pattern + '/d')} {shlex.quote(str(settings.hosts_file))}",
                            in_script=False),)),
        ManualStep("amlen configuration", chapter, "Delete the Amlen objects",
                   "Endpoints first, then what they use (Amlen refuses to delete an object still in use, "
                   "CWLNA0376). `down` does this only with `--keep-container`; otherwise they go with the volume.",
                   tuple(Command(f"{_CURL} -X DELETE {_api(f'configuration/{obj.type}/{obj.name}')}",
                                 webui=_webui(obj, settings), expect=_ACCEPTED, in_script=False)
                         for obj in reversed(objects))),
        ManualStep("container", chapter, "Remove the container and its volume",
                   "Amlen's configuration, key store and trust store live in the volume: they go with it.",
                   (Command(f"docker rm -f {shlex.quote(spec.name)}", in_script=False),
                    Command(f"docker volume rm {shlex.quote(spec.volume)}", in_script=False))),
        ManualStep("certificates", chapter, "Keep the certificates (or delete them)",
                   "`down` keeps them: the CA may be trusted by browsers and other machines. `down --purge` "
                   "deletes them, like this.",
                   (Command("rm -f " + " ".join(files), in_script=False),)),
    ]


# --- sections -------------------------------------------------------------------------------------------


def _before_you_start(settings: Settings) -> list[ManualStep]:
    spec = ContainerSpec.from_settings(settings)
    volume, image = shlex.quote(spec.volume), shlex.quote(spec.image)
    chapter = "Before you start: Amlen in a container"
    host_ports = sorted(port for _, port in spec.ports.values() if port)
    sports = " or ".join(f"sport = :{port}" for port in host_ports)
    labels = " ".join(f"--label {shlex.quote(f'{key}={value}')}" for key, value in spec.labels.items())
    publish = " ".join(f"-p {address}:{port}:{inside.split('/')[0]}" for inside, (address, port) in spec.ports.items())
    store_line = f"{STORE_KEY} = {spec.store_file_mb}"
    bound = f'mkdir -p {Path(AMLEN_SERVER_CFG).parent} && echo "{store_line}" >> {AMLEN_SERVER_CFG}'
    # Amlen's status body, spaces and line breaks removed: running in production, and no error.
    running = shlex.quote('"State":1,.*"ErrorCode":0,')
    wait_loop = (
        f"deadline=$((SECONDS + {int(settings.ready_timeout)}))\n"
        f"until curl -fsS {_api('service/status')} 2>/dev/null | tr -d ' \\n' | grep -q {running}; do\n"
        f'  [ "$SECONDS" -lt "$deadline" ] || {{ echo "Amlen is not running at ${ADMIN_URL_VAR}" >&2; exit 1; }}\n'
        "  sleep 1\ndone"
    )
    return [
        ManualStep("preflight", chapter, "Docker, and free ports",
                   "The lab publishes every port on 127.0.0.1 only, at the same number inside and outside, so "
                   "each must be free on this machine.",
                   (Command("docker info --format '{{.ServerVersion}}'", expect="the engine's version, e.g. 27.3.1",
                            in_script=False),
                    Command(f"ss -ltn '( {sports} )'", expect="only the header line: nothing listens there yet",
                            in_script=False))),
        ManualStep("container", chapter, "Run Amlen",
                   f"A named volume holds Amlen's data. Before the first start the store is bounded to "
                   f"{spec.store_file_mb} MiB per file (unset, Amlen reserves a 24th of the disk per store file); "
                   "the helper container runs as the image's own user, so the file stays Amlen's (uid 463). "
                   f"Then the server, with a {spec.memory} memory limit (under 1 GiB Amlen refuses every "
                   "connection) and the lab's labels.",
                   (Command(f"docker volume create {labels} {volume}", in_script=False),
                    Command(f"docker run --rm -v {volume}:{AMLEN_DATA_PATH} --entrypoint sh {image} "
                            f"-c {shlex.quote(bound)}", in_script=False),
                    Command(f"docker run -d --name {shlex.quote(spec.name)} --memory {shlex.quote(spec.memory)} "
                            f"{publish} -v {volume}:{AMLEN_DATA_PATH} {labels} {image}",
                            expect="the new container's id", in_script=False))),
        ManualStep("readiness", chapter, "Wait until Amlen runs",
                   "Amlen answers its status before it is ready: wait for State 1 (Running, production) with "
                   "ErrorCode 0. Amlen logs to files, not to `docker logs`.",
                   (Command(wait_loop, expect="returns once the status says \"State\": 1 and \"StateDescription\": "
                            "\"Running (production)\""),)),
    ]


def _toy_ca(settings: Settings) -> ManualStep:
    ca_key, ca_cert = _pki_names(settings)[:2]
    subject = _subj(certs.subject_name(certs.CA_COMMON_NAME))
    usage = ",".join(KEY_USAGE_NAMES[flag] for flag in certs.CA_KEY_USAGE)
    return ManualStep(
        "certificates", "The toy CA", "Make the CA",
        f"The CA signs the server and client certificates; clients trust it instead of a public CA. Its key "
        f"is RSA {certs.KEY_BITS} and encrypted at rest with the passphrase in ${PASSPHRASE_VAR}; the "
        f"certificate is valid for {settings.ca_days} days and may sign leaves only (pathlen 0).",
        (Command(f"openssl genrsa -aes256 -passout env:{PASSPHRASE_VAR} -out {ca_key} {certs.KEY_BITS}"),
         Command(f"openssl req -x509 -new -{certs.SIGNATURE_HASH.name} -days {settings.ca_days} -key {ca_key} "
                 f"-passin env:{PASSPHRASE_VAR} \\\n  -subj {shlex.quote(subject)} \\\n"
                 f"  -addext 'basicConstraints=critical,CA:TRUE,pathlen:{certs.CA_PATH_LENGTH}' \\\n"
                 f"  -addext 'keyUsage=critical,{usage}' \\\n  -out {ca_cert}"),
         Command(f"openssl x509 -in {ca_cert} -noout -subject -enddate",
                 expect=f"subject={_readable(subject)}, and the end date {settings.ca_days} days from now")),
    )


def _leaf(settings: Settings, name: str, *, server: bool) -> ManualStep:
    """A server certificate (SAN DNS:<hostname>, serverAuth) or a client certificate (CN=<name>, clientAuth)."""
    ca_key, ca_cert, server_key, server_cert = _pki_names(settings)
    key, cert = (server_key, server_cert) if server else (f"{name}.key", f"{name}.crt")
    stem = cert.removesuffix(".crt")
    days = settings.server_days if server else settings.client_days
    flags = certs.SERVER_KEY_USAGE if server else certs.CLIENT_KEY_USAGE
    extensions = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical," + ",".join(KEY_USAGE_NAMES[flag] for flag in flags),
        "extendedKeyUsage=" + EKU_NAMES[certs.SERVER_EKU if server else certs.CLIENT_EKU],
        *([f"subjectAltName=DNS:{name}"] if server else []),
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
    ]
    subject = _subj(certs.subject_name(name))
    if server:
        chapter, title = "The server certificate", f"A certificate for {name}"
        why = (f"The certificate Amlen presents on both endpoints. Clients check that {name} is in its subject "
               f"alternative names, so that is where the name goes. The key is RSA {certs.KEY_BITS} and NOT "
               "encrypted: Amlen reads only unencrypted RSA keys (encrypted ones crash some versions).")
    else:
        chapter, title = "Mutual TLS", f"A client certificate for {name}"
        why = (f"On the mutual-TLS endpoint each client shows a certificate from the toy CA. Its CN ({name}) is "
               "the identity Amlen's policies can use; it is good for client authentication only.")
    return ManualStep("certificates", chapter, title, why + f" Valid for {days} days.", (
        Command(f"openssl genrsa -out {key} {certs.KEY_BITS}"),
        Command(f"openssl req -new -key {key} -subj {shlex.quote(subject)} -out {stem}.csr"),
        Command("printf '%s\\n' " + " \\\n  ".join(shlex.quote(ext) for ext in extensions) + f" > {stem}.ext"),
        Command(f"openssl x509 -req -{certs.SIGNATURE_HASH.name} -days {days} -in {stem}.csr -CA {ca_cert} "
                f"-CAkey {ca_key} -passin env:{PASSPHRASE_VAR} \\\n  -CAcreateserial -extfile {stem}.ext -out {cert}"),
        Command(f"openssl verify -CAfile {ca_cert} {cert}", expect=f"{cert}: OK"),
    ))


def _amlen_object(obj: AmlenObject, settings: Settings) -> ManualStep:
    """The uploads and the POST for one object, exactly as `lab.amlen.AmlenClient.apply` sends them."""
    mutual = _is_mutual(obj, settings)
    webui = _webui(obj, settings)
    uploads = tuple(Command(f"{_CURL} -X PUT --data-binary @{name} {_api(f'file/{name}')}", webui=webui,
                            expect=_ACCEPTED) for name in obj.uploads)
    body = json.dumps(payload(obj), indent=2)
    post = Command(f"{_CURL} -X POST -H 'Content-Type: application/json' {_api('configuration')} "
                   f"--data-binary @- <<'JSON'\n{body}\nJSON", webui=webui, expect=_ACCEPTED)
    kind = {"CertificateProfile": "Certificate profile", "SecurityProfile": "Security profile"}.get(obj.type, obj.type)
    title = (f"Endpoint {obj.name} on port {obj.properties.get('Port')}" if obj.type == "Endpoint"
             else "Trust the toy CA for client certificates" if obj.type == "TrustedCertificate"
             else f"{kind} {obj.name}")
    return ManualStep("amlen configuration", "Mutual TLS" if mutual else kind, title,
                      _WHY[obj.type, mutual], (*uploads, post))


def _hosts(settings: Settings) -> ManualStep:
    line = f"{settings.host_ip} {settings.hostname}"
    missing = f"missing: add this line to {settings.hosts_file}: {line}"
    return ManualStep(
        "hosts entry", "Hosts entry", f"Make {settings.hostname} resolve",
        "Clients connect by the name in the server certificate, so that name must resolve to the broker. "
        "Adding the line needs root; the script only checks it and says what to add.",
        (Command(f"getent hosts {settings.hostname} || echo {shlex.quote(missing)}",
                 expect=f"{settings.host_ip}       {settings.hostname}"),
         Command(f"echo {shlex.quote(line)} | sudo tee -a {shlex.quote(str(settings.hosts_file))}",
                 comment="only if the name does not resolve yet", in_script=False)),
    )


def _clients(settings: Settings) -> list[ManualStep]:
    """The guide's clients on the TLS port, what must fail there, and the debugging page."""
    ca_cert = _pki_names(settings)[1]
    connect = f"openssl s_client -connect {settings.host_ip}:{settings.tls_port}"
    subject, issuer = (_readable(_subj(certs.subject_name(cn))) for cn in (settings.hostname, certs.CA_COMMON_NAME))
    return [
        _round_trip(settings, "Clients", "Subscribe and publish over TLS",
                    f"A subscriber and a publisher on port {settings.tls_port}, trusting only the toy CA and "
                    f"checking the name {settings.hostname}: what every TLS client of this broker does.",
                    port=settings.tls_port, tls=f"--cafile {ca_cert}"),
        _refused(settings, "Clients", "Plain MQTT is refused", f"Port {settings.tls_port} speaks only TLS.",
                 f"-p {settings.tls_port} -m plain", "Error: The connection was lost (or a protocol error)"),
        ManualStep("verification", "Debugging", "What the server presents, and a wrong name",
                   "The certificate the endpoint serves (the first of the chain), and what a client sees when it "
                   "dials a name that is not in it. The server's side of a problem is in Amlen's log files.",
                   (Command(f"{connect} -servername {settings.hostname} -showcerts </dev/null 2>/dev/null "
                            "| openssl x509 -noout -subject -issuer -ext subjectAltName",
                            expect=f"subject={subject}, issuer={issuer}, DNS:{settings.hostname}"),
                    Command(f"{connect} -servername localhost -verify_hostname localhost -CAfile {ca_cert} "
                            "-verify_return_error -brief </dev/null",
                            expect="fails: verify error:num=62:hostname mismatch", must_fail=True),
                    Command(f"docker exec {shlex.quote(settings.container_name)} tail -n 30 "
                            f"{AMLEN_LOG_DIR}/imaserver-default.log",
                            expect="CWLNA codes; CWLNA1102 means a port could not be bound", in_script=False))),
    ]


def _mutual_clients(settings: Settings) -> list[ManualStep]:
    ca_cert, client = _pki_names(settings)[1], settings.client_names[0] if settings.client_names else ""
    if not client:
        return []
    return [
        _live(settings, settings.mtls_endpoint, settings.mtls_port, "Mutual TLS", client=client),
        _round_trip(settings, "Mutual TLS", f"Subscribe and publish as {client}",
                    f"The same round trip on port {settings.mtls_port}, with the client certificate.",
                    port=settings.mtls_port, tls=f"--cafile {ca_cert} --cert {client}.crt --key {client}.key"),
        _refused(settings, "Mutual TLS", "Without a client certificate: refused",
                 "The server ends the handshake (TLS 1.3: the client learns it on its first read). The client "
                 "skips the name check (--insecure): this tests the server's rule, not the name.",
                 f"-p {settings.mtls_port} --cafile {ca_cert} --insecure -m no-certificate",
                 "Error: The connection was lost (tlsv13 alert certificate required)"),
    ]


def _refused(settings: Settings, chapter: str, title: str, why: str, options: str, error: str) -> ManualStep:
    """A publish that the broker must refuse; by address, so it needs no hosts entry."""
    return ManualStep("verification", chapter, title, why,
                      (Command(f"mosquitto_pub -h {settings.host_ip} {options} -t {TOPIC}", expect=f"fails: {error}",
                               must_fail=True),),
                      requires="command -v mosquitto_pub >/dev/null", requires_note="mosquitto is not installed")


def _live(settings: Settings, endpoint: str, port: int, chapter: str, *, client: str) -> ManualStep:
    ca_cert = _pki_names(settings)[1]
    certificate = f" -cert {client}.crt -key {client}.key" if client else ""
    return ManualStep(
        "endpoints live", chapter, f"Is {endpoint} live?",
        "An accepted POST is not a bound port: Amlen's monitor lists the endpoint only when it listens, and a "
        "TLS handshake that verifies the certificate and the name proves it (the lab also waits for an MQTT "
        "CONNACK; the clients below get one).",
        (Command(f"{_CURL} {_api(f'monitor/Endpoint?Name={endpoint}')}",
                 expect='"Enabled": true and "LastErrorCode": 0', retry=True),
         Command(f"openssl s_client -connect {settings.host_ip}:{port} -servername {settings.hostname} "
                 f"-verify_hostname {settings.hostname} \\\n  -CAfile {ca_cert}{certificate} "
                 "-verify_return_error -brief </dev/null",
                 expect="CONNECTION ESTABLISHED, Protocol version: TLSv1.3, Verification: OK", retry=True)),
    )


def _round_trip(settings: Settings, chapter: str, title: str, why: str, *, port: int, tls: str) -> ManualStep:
    client = f"-h {settings.hostname} -p {port} {tls}"
    text = (f"mosquitto_sub {client} -t {shlex.quote(TOPIC_FILTER)} -v -C {DEFAULT_COUNT} -W 30 &\n"
            "sub=$!\nsleep 1\n"
            f"for n in $(seq {DEFAULT_COUNT}); do mosquitto_pub {client} -t {TOPIC} -m \"hello $n\"; done\n"
            'wait "$sub"')
    return ManualStep(
        "verification", chapter, title, why,
        (Command(text, expect=f"{TOPIC} hello 1 ... {TOPIC} hello {DEFAULT_COUNT}, then the subscriber exits"),),
        requires=f"getent hosts {settings.hostname} >/dev/null && command -v mosquitto_sub >/dev/null",
        requires_note=f"{settings.hostname} does not resolve (see Hosts entry) or mosquitto is not installed",
    )


# --- helpers --------------------------------------------------------------------------------------------


def _objects(settings: Settings) -> list[AmlenObject]:
    """The lab's Amlen objects as `lab.configure` makes them, without reading a certificate or key.

    `desired_objects` reads the files it uploads; the guide needs only their names and may be written before
    they exist, so it gets empty files of the same names.
    """
    real = pki_paths(settings)
    with tempfile.TemporaryDirectory(prefix="amlen-lab-guide-") as tmp:
        names = Path(tmp)
        placeholders = dataclasses.replace(
            real, dir=names, ca_cert=names / real.ca_cert.name, server_key=names / real.server_key.name,
            server_cert=names / real.server_cert.name,
        )
        for path in (placeholders.ca_cert, placeholders.server_key, placeholders.server_cert):
            path.touch()
        return desired_objects(settings, placeholders)


def _is_mutual(obj: AmlenObject, settings: Settings) -> bool:
    profile = settings.mutual_security_profile
    return (obj.type == "TrustedCertificate" or obj.name == profile
            or obj.properties.get("SecurityProfile") == profile)


def _webui(obj: AmlenObject, settings: Settings) -> str:
    if obj.type == "Endpoint":
        return f"Messaging > Message Hubs > {obj.properties.get('MessageHub', settings.message_hub)} > Endpoints"
    return _WEBUI.get(obj.type, "")


def _pki_names(settings: Settings) -> tuple[str, str, str, str]:
    """(CA key, CA certificate, server key, server certificate): the lab's file names, without directories."""
    pki = pki_paths(settings)
    return pki.ca_key.name, pki.ca_cert.name, pki.server_key.name, pki.server_cert.name


def _subj(name: x509.Name) -> str:
    """`name` as openssl's -subj argument, attributes in the certificate's order: /CN=.../O=..."""
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("/", "\\/")

    return "".join(f"/{attr.rfc4514_attribute_name}={escape(str(attr.value))}" for attr in name)


def _readable(subject: str) -> str:
    """An -subj string as `openssl x509 -subject` prints it: CN = a, O = b."""
    parts = [part.partition("=") for part in subject.strip("/").split("/")]
    return ", ".join(f"{key} = {value}" for key, _, value in parts)


def _api(path: str) -> str:
    """A URL of the admin API as a shell word: the variable's value, then the quoted path."""
    return f'"${ADMIN_URL_VAR}"' + shlex.quote("/ima/v1/" + urllib.parse.quote(path, safe="/?="))
