"""A real mosquitto standing in for the lab's two endpoints, and the fixtures around it.

Used by the verification and doctor tests that must run without a container; the lab's own end-to-end tests
use the Amlen stand-in instead.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.pki.leaves import ensure_certificates
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings
from tests.helpers import default_signals, free_port

MOSQUITTO = "/usr/sbin/mosquitto"
HOSTS = Path("/etc/hosts")
PASSPHRASE = "test-ca-passphrase"


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
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE,
                                        preexec_fn=default_signals)  # stop() sends SIGTERM
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
    """A lab with its own host name and free ports, and certificates made by lab.pki."""
    lab_dir = tmp_path_factory.mktemp("lab")
    settings = load_settings(
        dir=lab_dir,
        hostname=f"verify-{secrets.token_hex(3)}.getting.started",
        tls_port=free_port(),
        mtls_port=free_port(),
        admin_port=free_port(),
        workshop_port=free_port(),
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


