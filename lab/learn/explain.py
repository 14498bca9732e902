"""What the lab does, as a person would do it by hand: the TLS guide's commands with this lab's values.

Each `ManualStep` is a section of the guide tagged with the plan step that does the same for you, so `up
--explain` prints a step's sections as it runs and `invoke guide` all of them in the guide's order. Values come
from the code the lab runs: REST bodies from `lab.amlen.admin.payload` over `lab.amlen.configure.desired_objects`,
certificate profiles from `lab.pki.build`, the container from `lab.container.runtime.ContainerSpec`. No secret is
written
out: openssl reads the CA passphrase from `$LAB_CA_PASSPHRASE`, and no key is read (curl reads the uploads).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import tempfile
import urllib.parse
from pathlib import Path

from lab.amlen.admin import AmlenObject, payload
from lab.amlen.configure import desired_objects
from lab.clients.checks import DEFAULT_COUNT
from lab.clients.rows import TOPIC, TOPIC_FILTER
from lab.container.runtime import AMLEN_LOG_DIR, ContainerSpec
from lab.container.volume import AMLEN_DATA_PATH, AMLEN_SERVER_CFG, STORE_KEY
from lab.learn import explain_pki as manual_pki
from lab.learn.explain_admin import CURL, admin_curl_options, admin_steps
from lab.learn.explain_kit import kit_steps
from lab.learn.manual import ADMIN_URL_VAR, KEY_PASSWORD_VAR, OPEN_URL_VAR, Command, ManualStep
from lab.pki import build as certs
from lab.pki.chain import TRUST_ROOT_ONLY
from lab.pki.paths import pki_paths
from lab.settings import Settings

__all__ = ["guide_steps", "teardown_steps"]

# What Amlen answers to every accepted upload and configuration change (reference, appendix).
_ACCEPTED = '"Code": "CWLNA6011", "Message": "The requested configuration change has completed successfully."'
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


def guide_steps(settings: Settings) -> list[ManualStep]:
    """Every section of the guide for this lab, in the guide's order (each names the plan step it matches)."""
    objects = _objects(settings)
    mutual_objects = [obj for obj in objects if _is_mutual(obj, settings)]
    two_tier = settings.pki == "intermediate"
    return [
        *_before_you_start(settings),
        manual_pki.toy_ca(settings),
        *([manual_pki.intermediate(settings)] if two_tier else []),
        *admin_steps(settings),
        (manual_pki.own_server(settings) if settings.own_server
         else manual_pki.leaf(settings, settings.hostname, server=True)),
        *(_amlen_object(obj, settings) for obj in objects if obj not in mutual_objects),
        _live(settings, settings.tls_endpoint, settings.tls_port, "Endpoint", client=""),
        _hosts(settings),
        *_clients(settings),
        *(manual_pki.leaf(settings, name, server=False) for name in settings.client_names),
        *(_amlen_object(obj, settings) for obj in mutual_objects),
        *_mutual_clients(settings),
        *kit_steps(settings),
    ]


def teardown_steps(settings: Settings) -> list[ManualStep]:
    """What `invoke down` undoes, by hand, in its order: hosts line, Amlen objects, container, certificates."""
    objects = _objects(settings)
    spec = ContainerSpec.from_settings(settings)
    pattern = "^" + f"{settings.host_ip} {settings.hostname}".replace(".", r"\.") + "$"
    ca_stem, server_stem = (Path(name).stem for name in manual_pki.pki_names(settings)[1::2])
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
                   tuple(Command(f"{_curl(settings)} -X DELETE {_api(f'configuration/{obj.type}/{obj.name}')}",
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
        f"until curl -fsS {_api('service/status', OPEN_URL_VAR)} 2>/dev/null | tr -d ' \\n' | grep -q {running}; do\n"
        f'  [ "$SECONDS" -lt "$deadline" ] || {{ echo "Amlen is not running at ${OPEN_URL_VAR}" >&2; exit 1; }}\n'
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


def _amlen_object(obj: AmlenObject, settings: Settings) -> ManualStep:
    """The uploads and the POST for one object, exactly as `lab.amlen.admin.AmlenClient.apply` sends them."""
    mutual = _is_mutual(obj, settings)
    webui = _webui(obj, settings)
    uploads = tuple(Command(f"{_curl(settings)} -X PUT --data-binary @{name} {_api(f'file/{name}')}", webui=webui,
                            expect=_ACCEPTED) for name in obj.uploads)
    body = payload(obj)
    quote = "'JSON'"
    if "KeyFilePassword" in obj.properties:
        # Your key's password never appears: the shell puts it in (an unquoted heredoc, and nothing else in the
        # body that the shell would touch).
        body = json.loads(json.dumps(body).replace(json.dumps(obj.properties["KeyFilePassword"])[1:-1],
                                                   "${" + KEY_PASSWORD_VAR + "}"))
        quote = "JSON"
    text = json.dumps(body, indent=2)
    post = Command(f"{_curl(settings)} -X POST -H 'Content-Type: application/json' {_api('configuration')} "
                   f"--data-binary @- <<{quote}\n{text}\nJSON", webui=webui, expect=_ACCEPTED)
    kind = {"CertificateProfile": "Certificate profile", "SecurityProfile": "Security profile"}.get(obj.type, obj.type)
    title = (f"Endpoint {obj.name} on port {obj.properties.get('Port')}" if obj.type == "Endpoint"
             else "Trust the toy CA for client certificates" if obj.type == "TrustedCertificate"
             else f"{kind} {obj.name}")
    why = _WHY[obj.type, mutual]
    if obj.type == "TrustedCertificate" and settings.pki == "intermediate":
        why += " " + TRUST_ROOT_ONLY
    if obj.type == "CertificateProfile" and obj.properties.get("Certificate") != pki_paths(settings).server_cert.name:
        why += (f" The certificate file is {obj.properties['Certificate']}: the leaf, then its intermediate(s), "
                "which Amlen serves whole, in that order.")
    return ManualStep("amlen configuration", "Mutual TLS" if mutual else kind, title, why, (*uploads, post))


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
    ca_cert = manual_pki.trust_name(settings)
    connect = f"openssl s_client -connect {settings.host_ip}:{settings.tls_port}"
    signer = certs.INTERMEDIATE_COMMON_NAME if settings.pki == "intermediate" else certs.CA_COMMON_NAME
    subject, issuer, middle = (manual_pki.readable(manual_pki.subj(certs.subject_name(cn)))
                               for cn in (settings.hostname, signer, certs.INTERMEDIATE_COMMON_NAME))
    chain = [f"0 s:{subject}"] + ([f"1 s:{middle}"] if settings.pki == "intermediate" else [])
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
                    Command(f"{connect} -servername {settings.hostname} -CAfile {ca_cert} -verify_return_error "
                            "-showcerts </dev/null 2>/dev/null | grep -E '^ *[0-9]+ s:'",
                            comment="the whole chain, verified by a client that trusts only the root",
                            expect=", then ".join(chain) + " (and the verification succeeds)"),
                    Command(f"{connect} -servername localhost -verify_hostname localhost -CAfile {ca_cert} "
                            "-verify_return_error -brief </dev/null",
                            expect="fails: verify error:num=62:hostname mismatch", must_fail=True),
                    Command(f"docker exec {shlex.quote(settings.container_name)} tail -n 30 "
                            f"{AMLEN_LOG_DIR}/imaserver-default.log",
                            expect="CWLNA codes; CWLNA1102 means a port could not be bound", in_script=False))),
    ]


def _mutual_clients(settings: Settings) -> list[ManualStep]:
    ca_cert, client = manual_pki.trust_name(settings), settings.client_names[0] if settings.client_names else ""
    if not client:
        return []
    shown = f"{client}.chain.pem" if settings.pki == "intermediate" else f"{client}.crt"
    return [
        _live(settings, settings.mtls_endpoint, settings.mtls_port, "Mutual TLS", client=client),
        _round_trip(settings, "Mutual TLS", f"Subscribe and publish as {client}",
                    f"The same round trip on port {settings.mtls_port}, with the client certificate.",
                    port=settings.mtls_port, tls=f"--cafile {ca_cert} --cert {shown} --key {client}.key"),
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
    ca_cert = manual_pki.trust_name(settings)
    # openssl s_client sends the manual_pki.intermediate(s) of -cert_chain after -cert (-cert reads one certificate).
    chained = f" -cert_chain {client}.chain.pem" if client and settings.pki == "intermediate" else ""
    certificate = f" -cert {client}.crt -key {client}.key{chained}" if client else ""
    return ManualStep(
        "endpoints live", chapter, f"Is {endpoint} live?",
        "An accepted POST is not a bound port: Amlen's monitor lists the endpoint only when it listens, and a "
        "TLS handshake that verifies the certificate and the name proves it (the lab also waits for an MQTT "
        "CONNACK; the clients below get one).",
        (Command(f"{_curl(settings)} {_api(f'monitor/Endpoint?Name={endpoint}')}",
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
    """The lab's Amlen objects as `lab.amlen.configure` makes them, without reading a certificate or key.

    `desired_objects` reads the files it uploads; the guide needs only their names and may be written before
    they exist, so it gets empty files of the same names.
    """
    real = pki_paths(settings)
    with tempfile.TemporaryDirectory(prefix="amlen-lab-guide-") as tmp:
        names = Path(tmp)
        placeholders = dataclasses.replace(
            real, dir=names, ca_cert=names / real.ca_cert.name, server_key=names / real.server_key.name,
            server_cert=names / real.server_cert.name, served_cert=names / real.served_cert.name,
            served_key=names / real.server_key.name,
        )
        for path in (placeholders.ca_cert, placeholders.server_key, placeholders.server_cert,
                     placeholders.served_cert):
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


def _curl(settings: Settings) -> str:
    """curl as the guide runs it against the admin API once it is locked (the lab's CA, the lab.admin
    certificate: `lab.learn.explain_admin.admin_curl_options`)."""
    return CURL + admin_curl_options(settings)


def _api(path: str, var: str = ADMIN_URL_VAR) -> str:
    """A URL of the admin API as a shell word: the variable's value, then the quoted path."""
    return f'"${var}"' + shlex.quote("/ima/v1/" + urllib.parse.quote(path, safe="/?="))
