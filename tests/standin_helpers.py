"""Helpers to run the Amlen stand-in (tests/standin) and talk to it: container, admin API, PKI, TLS and MQTT.

Test infrastructure only. Kept free of the lab package on purpose: the stand-in's contract tests must not
depend on the code they are meant to check (``lab/pki/``).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import socket
import ssl
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import paho.mqtt.client as mqtt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from docker.models.containers import Container
from paho.mqtt.enums import CallbackAPIVersion

SERVER_NAME = "testserver.getting.started"
READY_TIMEOUT = 60.0

# ---- PKI ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, as objects and as PEM files."""

    cert: x509.Certificate
    key: Any
    cert_path: Path
    key_path: Path

    @property
    def cert_pem(self) -> bytes:
        return self.cert_path.read_bytes()

    @property
    def key_pem(self) -> bytes:
        return self.key_path.read_bytes()


def _write(
    directory: Path,
    stem: str,
    cert: x509.Certificate,
    key: Any,
    *,
    password: bytes | None = None,
    key_format: serialization.PrivateFormat = serialization.PrivateFormat.TraditionalOpenSSL,
) -> Issued:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, key_format, encryption))
    key_path.chmod(0o600)
    return Issued(cert, key, cert_path, key_path)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(
    subject_cn: str,
    key: Any,
    *,
    issuer: tuple[x509.Certificate, Any] | None = None,
    is_ca: bool = False,
    dns: Iterable[str] = (),
    ips: Iterable[str] = (),
    usage: Iterable[x509.ObjectIdentifier] = (),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=5))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    """Everything the contract tests upload or connect with."""

    ca: Issued  # the guide's toy CA ("myCA.pem")
    server: Issued  # testserver.getting.started, also IP 127.0.0.1 so paho can verify by address
    client: Issued  # client certificate signed by ca
    other_ca: Issued  # a CA the stand-in never trusts
    other_client: Issued  # client certificate signed by other_ca
    unrelated_key: Path  # an RSA key that does not belong to server.cert
    ec: Issued  # EC certificate and SEC1 key
    ec_pkcs8_key: Path  # the same EC key as PKCS#8
    encrypted_key: Path  # server.key encrypted with KEY_PASSWORD
    expired: Issued  # testserver.getting.started, expired yesterday

    KEY_PASSWORD = "standin-secret"


def _client_certificate(
    directory: Path, stem: str, common_name: str, *, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey]
) -> Issued:
    """A fresh RSA key and a clientAuth certificate for `common_name`, signed by `issuer`, written as `stem`."""
    key = _rsa()
    cert = _certificate(common_name, key, issuer=issuer, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    return _write(directory, stem, cert, key)


def make_pki(directory: Path) -> Pki:
    """Generate the test PKI into ``directory`` (about half a second)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _rsa()
    ca = _write(directory, "myCA", _certificate("Stand-in Toy CA", ca_key, is_ca=True), ca_key)
    server_key = _rsa()
    server_cert = _certificate(
        SERVER_NAME,
        server_key,
        issuer=(ca.cert, ca_key),
        dns=[SERVER_NAME],
        ips=["127.0.0.1"],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    server = _write(directory, "test.server", server_cert, server_key)
    client = _client_certificate(directory, "client", "standin-test-client", issuer=(ca.cert, ca_key))
    other_ca_key = _rsa()
    other_ca = _write(directory, "otherCA", _certificate("Other CA", other_ca_key, is_ca=True), other_ca_key)
    other_client = _client_certificate(directory, "other-client", "other-client", issuer=(other_ca.cert, other_ca_key))
    unrelated = _write(directory, "unrelated", server_cert, _rsa()).key_path
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_issued = _write(directory, "ec", _certificate(SERVER_NAME, ec_key, issuer=(ca.cert, ca_key)), ec_key)
    ec_pkcs8 = _write(
        directory, "ec-pkcs8", ec_issued.cert, ec_key, key_format=serialization.PrivateFormat.PKCS8
    ).key_path
    encrypted = _write(
        directory, "encrypted", server_cert, server_key, password=Pki.KEY_PASSWORD.encode()
    ).key_path
    now = datetime.now(UTC)
    expired_key = _rsa()
    expired = _write(
        directory,
        "expired",
        _certificate(
            SERVER_NAME,
            expired_key,
            issuer=(ca.cert, ca_key),
            dns=[SERVER_NAME],
            ips=["127.0.0.1"],
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(days=1),
        ),
        expired_key,
    )
    return Pki(ca, server, client, other_ca, other_client, unrelated, ec_issued, ec_pkcs8, encrypted, expired)


def client_certificate(pki: Pki, common_name: str, *, issuer: Issued | None = None) -> Issued:
    """A fresh clientAuth certificate for ``common_name``, signed by ``issuer`` (default: the toy CA)."""
    signer = issuer or pki.ca
    stem = f"client-{common_name}-{uuid.uuid4().hex[:6]}"
    return _client_certificate(signer.cert_path.parent, stem, common_name, issuer=(signer.cert, signer.key))


def make_crl(ca: Issued, revoked: Iterable[Issued], path: Path, *, days: int = 7) -> Path:
    """A PEM CRL signed by ``ca`` that revokes ``revoked`` (valid from now for ``days``)."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=days))
    )
    for issued in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(issued.cert.serial_number)
            .revocation_date(now - timedelta(minutes=1))
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    path.write_bytes(builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def amlen_date(cert: x509.Certificate) -> str:
    """A certificate's end date as Amlen's ``ExpirationDate`` prints it."""
    return cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---- admin API ---------------------------------------------------------------------------------------------


class AdminApi:
    """Amlen's REST admin API at ``base`` (``http://127.0.0.1:<port>``); returns raw responses."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return f"{self.base}/ima/v1/{path.lstrip('/')}"

    def put_file(self, name: str, data: bytes) -> requests.Response:
        return self.session.put(self.url(f"file/{name}"), data=data, timeout=30)

    def post(self, body: Any) -> requests.Response:
        return self.session.post(self.url("configuration"), json=body, timeout=30)

    def post_raw(self, data: bytes) -> requests.Response:
        return self.session.post(
            self.url("configuration"), data=data, timeout=30, headers={"Content-Type": "application/json"}
        )

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.url(f"configuration/{path}"), timeout=30)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(self.url(f"configuration/{path}"), timeout=30)

    def monitor(self, name: str | None = None) -> requests.Response:
        params = {"Name": name, "SubType": "Current"} if name else None
        return self.session.get(self.url("monitor/Endpoint"), params=params, timeout=30)

    def status(self) -> requests.Response:
        return self.session.get(self.url("service/status"), timeout=5)


# ---- admin answers and the guide's objects -----------------------------------------------------------------

SUCCESS = {
    "Version": "v1",
    "Code": "CWLNA6011",
    "Message": "The requested configuration change has completed successfully.",
}

GUIDE_CERT_PROFILE = "TestServerFromToyCA"


def tls_profile(*, client_certificates: bool, certificate_profile: str = GUIDE_CERT_PROFILE) -> dict[str, Any]:
    """The security profile the WebUI sends for the guide (all dialog fields)."""
    return {
        "TLSEnabled": True,
        "MinimumProtocolMethod": "TLSv1.2",
        "Ciphers": "Fast",
        "UseClientCertificate": client_certificates,
        "UsePasswordAuthentication": False,
        "UseClientCipher": False,
        "CertificateProfile": certificate_profile,
    }


def endpoint(
    port: int,
    security_profile: str,
    *,
    connection_policies: str = "DemoConnectionPolicy",
    topic_policies: str = "DemoTopicPolicy",
    subscription_policies: str = "DemoSubscriptionPolicy",
) -> dict[str, Any]:
    """The endpoint the WebUI sends for the guide (the Demo policies unless told otherwise)."""
    return {
        "Enabled": True,
        "Port": port,
        "Interface": "All",
        "Protocol": "All",
        "MessageHub": "DemoHub",
        "SecurityProfile": security_profile,
        "ConnectionPolicies": connection_policies,
        "TopicPolicies": topic_policies,
        "SubscriptionPolicies": subscription_policies,
        "MaxMessageSize": "1024KB",
        "Description": "",
    }


def upload_server_certificate(api: AdminApi, pki: Pki, profile: str) -> None:
    """Upload the test server certificate and key and make ``profile`` a certificate profile of them."""
    files = {"Certificate": f"{profile}.crt", "Key": f"{profile}.key"}
    api.put_file(files["Certificate"], pki.server.cert_pem)
    api.put_file(files["Key"], pki.server.key_pem)
    assert_success(api.post({"CertificateProfile": {profile: {**files, "Overwrite": True}}}))


def trust_ca(api: AdminApi, ca: Issued, security_profile: str) -> None:
    """Upload ``ca`` and make it a trusted certificate of ``security_profile``."""
    name = f"{security_profile}-ca.pem"
    api.put_file(name, ca.cert_pem)
    entry = {"SecurityProfileName": security_profile, "TrustedCertificate": name, "Overwrite": True}
    assert_success(api.post({"TrustedCertificate": [entry]}))


def secure_profile(api: AdminApi, pki: Pki, name: str, *, client_certificates: bool) -> None:
    """Security profile ``name`` with TLS on the test server certificate (certificate profile ``<name>Cert``);
    with ``client_certificates`` it also trusts the toy CA."""
    upload_server_certificate(api, pki, f"{name}Cert")
    profile = tls_profile(client_certificates=client_certificates, certificate_profile=f"{name}Cert")
    assert_success(api.post({"SecurityProfile": {name: profile}}))
    if client_certificates:
        trust_ca(api, pki.ca, name)


def unique(prefix: str) -> str:
    """An object name no other test uses (alphanumeric, so it also suits security profiles)."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def assert_answer(
    response: requests.Response, status: int, code: str, message: str | None = None, *, prefix: bool = False
) -> None:
    """Status, code and message of an Amlen answer; ``prefix`` where the reference shortened the text."""
    body = response.json()
    assert (response.status_code, body.get("Code")) == (status, code), body
    assert body["Version"] == "v1"
    assert set(body) == {"Version", "Code", "Message"}
    if message is not None:
        assert body["Message"].startswith(message) if prefix else body["Message"] == message, body["Message"]


def assert_success(response: requests.Response) -> None:
    assert (response.status_code, response.json()) == (200, SUCCESS), response.text


# ---- the container -----------------------------------------------------------------------------------------


@dataclass
class StartupObservation:
    """One poll of the status API while the stand-in starts: no answer, or the State it reported."""

    elapsed: float
    state: int | None  # None: refused, reset or not answered


@dataclass
class RunningStandin:
    """A started stand-in container with its published ports."""

    container: Container
    ports: dict[int, int]  # container port -> host port on 127.0.0.1
    startup: list[StartupObservation] = field(default_factory=list)
    seconds_to_running: float = 0.0

    @property
    def admin_base(self) -> str:
        return f"http://127.0.0.1:{self.ports[9089]}"

    def host_port(self, container_port: int) -> int:
        return self.ports[container_port]

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")

    def read_file(self, path: str) -> str:
        result = self.container.exec_run(["cat", path])
        return result.output.decode(errors="replace")

    def exists(self, path: str) -> bool:
        return self.container.exec_run(["test", "-e", path]).exit_code == 0

    def listening_inside(self, port: int) -> bool:
        """Whether something accepts TCP on ``port`` inside the container (the host side always does)."""
        probe = f"import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', {port})))"
        return self.container.exec_run(["python3", "-c", probe]).exit_code == 0


# Amlen needs at least 1 GiB to accept any connection (TcpMaxConnections autotuning); tests use exactly that.
DEFAULT_MEMORY = "1g"
DATA_PATH = "/var/lib/amlen-server"


def create_standin(
    image: str,
    *,
    ports: Iterable[int] = (9089,),
    environment: dict[str, str] | None = None,
    mem_limit: str = DEFAULT_MEMORY,
    volume: str | None = None,
) -> Container:
    """Create (not start) a stand-in container; ``volume`` names a Docker volume mounted on the data path."""
    client = docker.from_env()
    return client.containers.create(
        image,
        name=f"amlen-standin-test-{uuid.uuid4().hex[:8]}",
        ports={f"{port}/tcp": ("127.0.0.1", None) for port in ports},
        environment=environment or {},
        labels={"amlen-lab.test": "standin-contract"},
        mem_limit=mem_limit,
        volumes={volume: {"bind": DATA_PATH, "mode": "rw"}} if volume else None,
    )


def start_created(
    container: Container, ports: Iterable[int] = (9089,), *, ready_timeout: float = READY_TIMEOUT
) -> RunningStandin:
    """Start a created stand-in and wait for State 1 (the container is removed if it never gets there).

    Every status poll from the moment the container starts is recorded, so tests can check the start-up
    phases.
    """
    container.start()
    started = time.monotonic()
    try:
        container.reload()
        published = {port: int(container.ports[f"{port}/tcp"][0]["HostPort"]) for port in ports}
        running = RunningStandin(container, published)
        running.seconds_to_running = _wait_running(running, started, ready_timeout)
    except BaseException:
        container.remove(force=True)
        raise
    return running


@contextlib.contextmanager
def standin_with_api(
    image: str,
    *,
    ports: Iterable[int] = (9089,),
    environment: dict[str, str] | None = None,
    mem_limit: str = DEFAULT_MEMORY,
) -> Iterator[tuple[RunningStandin, AdminApi]]:
    """A started stand-in and an admin client for it; both are stopped afterwards."""
    standin = start_standin(image, ports=ports, environment=environment, mem_limit=mem_limit)
    api = AdminApi(standin.admin_base)
    try:
        yield standin, api
    finally:
        api.close()
        stop_standin(standin)


def start_standin(
    image: str,
    *,
    ports: Iterable[int] = (9089,),
    environment: dict[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT,
    mem_limit: str = DEFAULT_MEMORY,
) -> RunningStandin:
    """Start a stand-in container (ports published on 127.0.0.1, random host ports) and wait for State 1."""
    container_ports = list(ports)
    container = create_standin(image, ports=container_ports, environment=environment, mem_limit=mem_limit)
    return start_created(container, container_ports, ready_timeout=ready_timeout)


def put_file(
    container: Container, path: str, data: bytes, *, uid: int = 463, gid: int = 463, mode: int = 0o644
) -> None:
    """Copy ``data`` to ``path`` in a (created or running) container with the SDK's ``put_archive``."""
    directory, _, name = path.rpartition("/")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size, info.uid, info.gid, info.mode, info.mtime = len(data), uid, gid, mode, int(time.time())
        archive.addfile(info, io.BytesIO(data))
    if not container.put_archive(directory, buffer.getvalue()):
        raise RuntimeError(f"put_archive to {directory} failed")


def wait_exited(container: Container, *, timeout: float = READY_TIMEOUT) -> int:
    """Wait for a container to stop by itself; its exit code."""
    return int(container.wait(timeout=timeout)["StatusCode"])


def _wait_running(running: RunningStandin, started: float, timeout: float) -> float:
    url = f"{running.admin_base}/ima/v1/service/status"
    while True:
        elapsed = time.monotonic() - started
        state: int | None = None
        try:
            # A fresh connection each time: Docker's port proxy accepts before anything listens inside.
            response = requests.get(url, timeout=2, headers={"Connection": "close"})
            if response.status_code == 200:
                state = int(response.json()["Server"]["State"])
        except (requests.RequestException, ValueError, KeyError):
            state = None
        running.startup.append(StartupObservation(elapsed, state))
        if state == 1:
            return elapsed
        if elapsed > timeout:
            raise TimeoutError(f"stand-in not Running after {timeout:.0f} s; logs:\n{running.logs()}")
        time.sleep(0.05)


def stop_standin(running: RunningStandin, *, timeout: int = 10) -> tuple[float, int]:
    """``docker stop`` then remove; returns (seconds the stop took, exit code)."""
    began = time.monotonic()
    running.container.stop(timeout=timeout)
    took = time.monotonic() - began
    code = int(running.container.wait(timeout=timeout)["StatusCode"])
    running.container.remove(force=True)
    return took, code


# ---- TLS and MQTT clients ----------------------------------------------------------------------------------


def client_context(pki: Pki, *, trust: Issued | None = None, cert: Issued | None = None) -> ssl.SSLContext:
    """A verifying client context: trusts ``trust`` (default: the toy CA), presents ``cert`` if given."""
    context = ssl.create_default_context(cafile=str((trust or pki.ca).cert_path))
    if cert is not None:
        context.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    return context


def mqtt_connect_packet(client_id: str, *, version: int = 4) -> bytes:
    """A minimal MQTT CONNECT (clean session, keep-alive 60 s): 3.1.1 (``version`` 4) or 5 (no properties)."""
    identifier = client_id.encode()
    variable = b"\x00\x04MQTT" + bytes([version]) + b"\x02\x00\x3c" + (b"\x00" if version >= 5 else b"")
    payload = len(identifier).to_bytes(2, "big") + identifier
    return bytes([0x10, len(variable) + len(payload)]) + variable + payload


def poll(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """``check()`` until it returns something truthy (returned) or ``timeout`` passes (the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


@dataclass
class TlsOutcome:
    """What a raw TLS client saw: handshake error, or the version and the answer to an MQTT CONNECT."""

    handshake_error: Exception | None = None
    version: str | None = None
    answer: bytes = b""
    read_error: Exception | None = None

    @property
    def mqtt_accepted(self) -> bool:
        return self.handshake_error is None and self.answer.startswith(CONNACK_ACCEPTED)


def tls_mqtt_probe(
    port: int,
    context: ssl.SSLContext,
    *,
    server_hostname: str = SERVER_NAME,
    client_id: str | None = None,
    version: int = 4,
) -> TlsOutcome:
    """Handshake with 127.0.0.1:``port`` as ``server_hostname``, send an MQTT CONNECT, read the CONNACK.

    The answer holds the whole CONNACK (4 bytes in 3.1.1, 5 for a refusal without properties in MQTT 5), or
    what came before the server closed.
    """
    outcome = TlsOutcome()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=server_hostname)
        except (ssl.SSLError, OSError) as exc:
            outcome.handshake_error = exc
            return outcome
        with tls:
            outcome.version = tls.version()
            try:
                tls.sendall(mqtt_connect_packet(client_id or f"probe-{uuid.uuid4().hex[:8]}", version=version))
                outcome.answer = tls.recv(2)
                while len(outcome.answer) >= 2 and len(outcome.answer) < 2 + outcome.answer[1]:
                    chunk = tls.recv(2 + outcome.answer[1] - len(outcome.answer))
                    if not chunk:
                        break
                    outcome.answer += chunk
            except (ssl.SSLError, OSError) as exc:
                outcome.read_error = exc
    return outcome


@dataclass
class MqttOutcome:
    """What paho saw: the CONNACK reason (None when none came) and the messages received back."""

    connack: mqtt.ReasonCode | None = None
    received: list[bytes] = field(default_factory=list)
    disconnected: bool = False


def paho_round_trip(
    port: int,
    context: ssl.SSLContext,
    *,
    transport: str = "tcp",
    messages: int = 5,
    timeout: float = 10.0,
    host: str = "127.0.0.1",
) -> MqttOutcome:
    """Connect with paho over TLS, subscribe, publish ``messages`` at QoS 1 and collect what comes back.

    paho checks the certificate against ``host`` (it cannot be told another name), hence the IP SAN on the
    test server certificate. Without a CONNACK within ``timeout`` the outcome has ``connack`` None.
    """
    topic = f"standin/{uuid.uuid4().hex}"
    outcome = MqttOutcome()
    subscribed, all_received, answered = threading.Event(), threading.Event(), threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"standin-{uuid.uuid4().hex[:10]}", transport=transport
    )  # type: ignore[arg-type]
    client.tls_set_context(context)

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        outcome.connack = reason
        answered.set()
        if not reason.is_failure:
            c.subscribe(topic, qos=1)

    def on_subscribe(_c: mqtt.Client, _u: object, _m: int, _r: list[mqtt.ReasonCode], _p: object) -> None:
        subscribed.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        outcome.received.append(message.payload)
        if len(outcome.received) >= messages:
            all_received.set()

    def on_disconnect(_c: mqtt.Client, _u: object, _f: object, _r: mqtt.ReasonCode, _p: object) -> None:
        outcome.disconnected = True
        answered.set()

    client.on_connect, client.on_subscribe = on_connect, on_subscribe
    client.on_message, client.on_disconnect = on_message, on_disconnect
    try:
        client.connect(host, port, keepalive=30)
    except (ssl.SSLError, OSError):
        outcome.disconnected = True
        return outcome
    client.loop_start()
    try:
        answered.wait(timeout)
        if outcome.connack is not None and not outcome.connack.is_failure and subscribed.wait(timeout):
            for index in range(messages):
                client.publish(topic, f"message {index}".encode(), qos=1)
            all_received.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome


@dataclass
class Published:
    """How a publish ended: acknowledged (with its reason code) or not, and whether the server hung up."""

    acked: bool
    reason: int | None
    disconnected: bool


class MqttClient:
    """A synchronous face on a paho client (MQTT 3.1.1 or 5) for the policy and monitor tests.

    Each call waits for its answer with a generous timeout; nothing reconnects, so a connection the server
    closes stays closed (``disconnected``).
    """

    def __init__(
        self, port: int, context: ssl.SSLContext, client_id: str, *, version: int = 5, host: str = "127.0.0.1",
        clean_session: bool = True,
    ) -> None:
        protocol = mqtt.MQTTv5 if version >= 5 else mqtt.MQTTv311
        session = {} if version >= 5 else {"clean_session": clean_session}  # MQTT 3.1.1's persistent sessions
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, reconnect_on_failure=False,
            **session,  # type: ignore[arg-type]
        )
        self.client.tls_set_context(context)
        self.port, self.host = port, host
        self.connack: int | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self._subacks: dict[int, list[int]] = {}
        self._pubacks: dict[int, int] = {}
        self._changed = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    # paho callbacks (VERSION2 signatures), run in paho's network thread
    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        self.connack = int(reason.value)
        self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        self.disconnected.set()
        with self._changed:
            self._changed.notify_all()

    def _on_subscribe(self, _c: mqtt.Client, _u: object, mid: int, reasons: list[Any], _p: object) -> None:
        with self._changed:
            self._subacks[mid] = [int(reason.value) for reason in reasons]
            self._changed.notify_all()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: Any, _p: object) -> None:
        with self._changed:
            self._pubacks[mid] = int(reason.value)
            self._changed.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append((message.topic, message.payload))
            self._changed.notify_all()

    def _wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: ready() or self.disconnected.is_set(), timeout) and ready()

    def connect(self, *, timeout: float = 30.0) -> int | None:
        """Connect and wait for the CONNACK; its return/reason code (None when none came)."""
        try:
            self.client.connect(self.host, self.port, keepalive=60)
        except (ssl.SSLError, OSError):
            self.disconnected.set()
            return None
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        while not self.connected.is_set() and not self.disconnected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.connack

    def subscribe(self, *filters: str, qos: int = 1, timeout: float = 30.0) -> list[int] | None:
        """SUBSCRIBE to ``filters`` in one packet; the SUBACK codes in order (None without a SUBACK)."""
        _, mid = self.client.subscribe([(topic, qos) for topic in filters])
        if not self._wait(lambda: mid in self._subacks, timeout):
            return None
        return self._subacks[mid]

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, timeout: float = 30.0) -> Published:
        """Publish and wait for the acknowledgement (QoS 1/2) or for the server to hang up."""
        info = self.client.publish(topic, payload, qos=qos)
        if qos == 0:
            return Published(acked=False, reason=None, disconnected=self.disconnected.is_set())
        acked = self._wait(lambda: info.mid in self._pubacks, timeout)
        return Published(acked, self._pubacks.get(info.mid), self.disconnected.is_set())

    def wait_message(self, payload: bytes, *, timeout: float = 30.0) -> bool:
        """Whether a message with ``payload`` arrives within ``timeout``."""
        return self._wait(lambda: any(body == payload for _, body in self.messages), timeout)

    def wait_disconnected(self, *, timeout: float = 30.0) -> bool:
        return self.disconnected.wait(timeout)

    def close(self) -> None:
        if not self.disconnected.is_set():
            self.client.disconnect()
        self.client.loop_stop()
