"""The verification matrix against a real mosquitto (TLS and require_certificate listeners) and real files.

The broker stands in for Amlen's two endpoints: the rows judge TLS and MQTT behaviour, which mosquitto and
Amlen share (both refuse a missing client certificate with a TLS 1.3 alert after the handshake).
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.certinfo import pki_paths
from lab.certs import ensure_certificates, make_foreign_client
from lab.checks import CheckResult, verify
from lab.errors import CheckError
from lab.mqtt import Protocol, publish, subscribe, tls_context
from lab.settings import Settings, load_settings

MOSQUITTO = "/usr/sbin/mosquitto"
HOSTS = Path("/etc/hosts")
PASSPHRASE = "test-ca-passphrase"


def free_port() -> int:
    """A TCP port nothing listens on right now (other engineers' brokers run on this machine too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    """A real mosquitto with a TLS listener and a mutual-TLS listener, like the lab's two endpoints."""

    settings: Settings
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    log: list[str] = field(default_factory=list)

    def start(self, *, server_cert: Path | None = None, server_key: Path | None = None,
              trusted_ca: Path | None = None) -> None:
        paths = pki_paths(self.settings)
        cert, key = server_cert or paths.server_cert, server_key or paths.server_key
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "per_listener_settings true\nuser root\nlog_dest stderr\n"
            f"listener {self.settings.tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\nallow_anonymous true\n"
            f"listener {self.settings.mtls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
            f"cafile {trusted_ca or paths.ca_cert}\nrequire_certificate true\nallow_anonymous true\n"
        )
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        for port in (self.settings.tls_port, self.settings.mtls_port):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)
            if self.process.stderr:
                self.log.append(self.process.stderr.read().decode())
                self.process.stderr.close()
            self.process = None


@pytest.fixture(scope="module")
def lab_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A lab with its own host name and free ports, and certificates made by lab.certs."""
    lab_dir = tmp_path_factory.mktemp("lab")
    settings = load_settings(
        dir=lab_dir,
        hostname=f"verify-{secrets.token_hex(3)}.getting.started",
        tls_port=free_port(),
        mtls_port=free_port(),
        admin_port=free_port(),
        ca_passphrase=PASSPHRASE,
        hosts_file=HOSTS,
    )
    ensure_certificates(settings)
    return settings


@pytest.fixture
def broker(lab_settings: Settings, tmp_path: Path) -> Iterator[Broker]:
    """The healthy broker, stopped afterwards."""
    running = Broker(lab_settings, tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def hosts_entry(lab_settings: Settings) -> Iterator[str]:
    """One line in the real /etc/hosts for the lab's name; afterwards the file is as before, byte for byte.

    Only our own line is removed (never a saved copy written back), so a concurrent edit by someone else
    survives.
    """
    before = HOSTS.read_bytes()
    line = f"127.0.0.1 {lab_settings.hostname}  # amlen-lab test_checks\n".encode()
    prefix = b"" if before.endswith(b"\n") or not before else b"\n"
    with HOSTS.open("ab") as handle:
        handle.write(prefix + line)
    try:
        yield lab_settings.hostname
    finally:
        current = HOSTS.read_bytes()
        HOSTS.write_bytes(current.replace(prefix + line, b"", 1))
        if current == before + prefix + line:
            assert HOSTS.read_bytes() == before


def other_name_certificate(settings: Settings, directory: Path, name: str) -> tuple[Path, Path]:
    """A server key/cert signed by the lab CA for another name, with the real openssl CLI."""
    paths = pki_paths(settings)
    key, csr, cert, ext = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "crt", "ext"))
    ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", paths.ca_cert, "-CAkey", paths.ca_key,
                    "-passin", f"pass:{PASSPHRASE}", "-CAcreateserial", "-out", cert, "-days", "30",
                    "-extfile", ext], check=True, capture_output=True)
    return cert, key


def by_row(rows: list[CheckResult]) -> dict[int, list[CheckResult]]:
    grouped: dict[int, list[CheckResult]] = {}
    for row in rows:
        grouped.setdefault(row.row, []).append(row)
    return grouped


def failed_rows(rows: list[CheckResult]) -> set[int]:
    return {row.row for row in rows if not row.passed}


def test_healthy_lab_passes_every_row_with_reasons_in_words(lab_settings: Settings, broker: Broker,
                                                            hosts_entry: str) -> None:
    report = verify(lab_settings)

    assert report.passed, [r for r in report.rows if not r.passed]
    rows = by_row(report.rows)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6]
    assert {r.protocol for r in rows[1]} == {"3.1.1", "5"} == {r.protocol for r in rows[2]}
    assert all(r.actual == "5/5 received" for r in rows[1] + rows[2])
    assert "TLS alert: certificate required" in rows[3][0].detail
    assert "TLS alert: unknown CA" in rows[4][0].detail
    assert "hostname mismatch" in rows[5][0].detail
    assert rows[6][0].actual == "rejected"
    assert report.seconds < 1.5
    assert json.loads(json.dumps(report.as_dict()))["passed"] is True


def test_missing_hosts_entry_fails_round_trips_by_name_but_passes_by_address(
    lab_settings: Settings, broker: Broker
) -> None:
    by_name = verify(lab_settings, protocols=[Protocol.MQTT5])
    by_address = verify(lab_settings, protocols=[Protocol.MQTT5], no_hosts=True)

    assert failed_rows(by_name.rows) == {1, 2}
    assert all("does not resolve" in r.detail and "--no-hosts" in r.detail for r in by_name.rows if r.row < 3)
    assert by_address.passed, [r for r in by_address.rows if not r.passed]
    assert by_address.no_hosts and "by address" in by_address.rows[0].name


def test_stopped_broker_turns_every_row_red(lab_settings: Settings, broker: Broker, hosts_entry: str) -> None:
    broker.stop()

    report = verify(lab_settings, timeout=2)

    assert not report.passed
    assert failed_rows(report.rows) == {1, 2, 3, 4, 5, 6}
    assert all("refused" in r.detail for r in report.rows)
    assert all(r.actual == "not reached" for r in report.rows)


def test_server_certificate_for_another_name_fails_only_the_round_trips(
    lab_settings: Settings, tmp_path: Path, hosts_entry: str
) -> None:
    cert, key = other_name_certificate(lab_settings, tmp_path, "other.example.test")
    swapped = Broker(lab_settings, tmp_path)
    swapped.start(server_cert=cert, server_key=key)
    try:
        report = verify(lab_settings, protocols=[Protocol.MQTT311])
    finally:
        swapped.stop()

    assert failed_rows(report.rows) == {1, 2}
    assert all("hostname mismatch" in r.detail for r in report.rows if r.row in (1, 2))


def test_mutual_listener_trusting_another_ca_refuses_the_lab_client(
    lab_settings: Settings, tmp_path: Path, hosts_entry: str
) -> None:
    foreign_ca, _key, _cert = make_foreign_client(tmp_path / "foreign", "stranger")
    wrong = Broker(lab_settings, tmp_path)
    wrong.start(trusted_ca=foreign_ca)
    try:
        report = verify(lab_settings, protocols=[Protocol.MQTT311])
    finally:
        wrong.stop()

    assert failed_rows(report.rows) == {2}
    row2 = by_row(report.rows)[2][0]
    assert row2.actual == "refused" and "unknown CA" in row2.detail


def test_verify_without_certificates_says_which_file_and_what_to_run(tmp_path: Path) -> None:
    settings = load_settings(dir=tmp_path / "empty")

    with pytest.raises(CheckError) as caught:
        verify(settings)

    assert "myCA.pem is missing" in caught.value.message
    assert "invoke certs" in (caught.value.hint or "")


def test_subscribe_receives_what_publish_sends(lab_settings: Settings, broker: Broker) -> None:
    paths = pki_paths(lab_settings)
    context = tls_context(ca_file=paths.ca_cert, server_name=lab_settings.hostname)
    stream = subscribe(lab_settings.host_ip, lab_settings.tls_port, "topic1/#", context=context, qos=1)
    first = iter(stream)
    # The generator subscribes lazily; publish from a second client once it is connected.
    import threading

    received: list[bytes] = []

    def consume() -> None:
        for message in first:
            received.append(message.payload)
            if len(received) == 3:
                break

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.2)
    sent = publish(lab_settings.host_ip, lab_settings.tls_port, "topic1/subtopic2", ["a", "b", "c"],
                   context=tls_context(ca_file=paths.ca_cert, server_name=lab_settings.hostname), qos=1)
    thread.join(timeout=5)

    assert sent == 3
    assert received == [b"a", b"b", b"c"]


def test_publish_to_a_closed_port_is_one_clear_error(lab_settings: Settings) -> None:
    context = tls_context(ca_file=pki_paths(lab_settings).ca_cert, server_name=lab_settings.hostname)

    with pytest.raises(CheckError) as caught:
        publish(lab_settings.host_ip, free_port(), "topic1/x", ["a"], context=context)

    assert "connection refused" in caught.value.message
