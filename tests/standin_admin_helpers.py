"""Helpers of the admin-endpoint contract tests (tests/test_standin_admin.py): a PKI made with the openssl CLI, and
curl and `openssl s_client` as the independent clients. Test infrastructure, free of the lab package."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.standin_helpers import RunningStandin

ADMIN = 9089
CSRF_BODY = '{"MessageHub":{"CsrfHub":{"Description":"from a web page"}}}'
PASSWORD = "lab-admin-Secret-1"


# ---- a PKI made with the openssl CLI ------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminPki:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def client(self, who: str) -> list[str]:
        """curl options presenting the client certificate `who` (lab.admin, intruder, stranger)."""
        return ["--cert", self.path(f"{who}.pem"), "--key", self.path(f"{who}.key")]


def _openssl(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True, input=stdin, timeout=60)


def _issue(directory: Path, ca: str, name: str, subject: str, extensions: str) -> None:
    key, csr, ext = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(directory / f"{ca}.pem"), "-CAkey",
             str(directory / f"{ca}.key"), "-CAcreateserial", "-days", "30", "-out", str(directory / f"{name}.pem"),
             "-extfile", str(ext))


# ---- curl as the independent client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Curl:
    exit_code: int
    status: int  # 0 (curl's 000): no HTTP answer
    body: str
    headers: dict[str, str]

    def json(self) -> dict[str, object]:
        return dict(json.loads(self.body))


def curl(url: str, *options: str) -> Curl:
    """One curl request with a fresh connection; never raises for an HTTP or TLS failure."""
    done = subprocess.run(
        ["curl", "-sS", "-D", "-", "--max-time", "30", "-w", "\n%{http_code}", *options, url],
        capture_output=True, text=True, timeout=60)
    head, _, rest = done.stdout.rpartition("\n")
    status = int(rest) if rest.isdigit() else 0
    headers: dict[str, str] = {}
    text = head.replace("\r\n", "\n")
    header_block, _, body = text.partition("\n\n")
    while body.startswith("HTTP/"):  # an interim answer first (100 Continue)
        header_block, _, body = body.partition("\n\n")
    for line in header_block.splitlines()[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Curl(done.returncode, status, body, headers)


class Admin:
    """The stand-in's admin URLs (the host port changes on `docker restart`) and the curl calls the tests use."""

    def __init__(self, running: RunningStandin, pki: AdminPki) -> None:
        self.running, self.pki = running, pki

    @property
    def port(self) -> int:
        self.running.container.reload()
        return int(self.running.container.ports[f"{ADMIN}/tcp"][0]["HostPort"])

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/ima/v1/{path}"

    def https(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}/ima/v1/{path}"

    def tls(self, path: str, *options: str, who: str | None = None, password: str | None = None) -> Curl:
        extra = [*options, "--cacert", self.pki.path("myCA.pem")]
        if who is not None:
            extra += self.pki.client(who)
        if password is not None:
            extra += ["-u", f"labadmin:{password}"]
        return curl(self.https(path), *extra)

    def post(self, body: object, *, who: str | None = None, password: str | None = PASSWORD) -> Curl:
        return self.tls("configuration", "-H", "Content-Type: application/json", "--data-binary", json.dumps(body),
                        who=who, password=password)

    def put(self, name: str, file: str, **auth: str) -> Curl:
        return self.tls(f"file/{name}", "-T", self.pki.path(file), **auth)


def ok(answer: Curl) -> None:
    assert (answer.status, answer.json().get("Code")) == (200, "CWLNA6011"), answer


def handshake_refused(answer: Curl) -> None:
    """No HTTP answer: curl's TLS layer failed (35: handshake, 56: the TLS 1.3 alert read after it)."""
    assert answer.status == 0 and answer.exit_code in (35, 56), answer


def showcerts(port: int, pki: AdminPki, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", pki.path("myCA.pem"), "-showcerts",
         *options], input="", capture_output=True, text=True, timeout=30)


def presented(port: int, pki: AdminPki) -> subprocess.CompletedProcess[str] | None:
    """What an endpoint presents to a client naming testserver.getting.started (None until it listens)."""
    shown = showcerts(port, pki, "-servername", "testserver.getting.started")
    return shown if "BEGIN CERTIFICATE" in shown.stdout else None


def subjects(shown: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split("s:", 1)[1].strip() for line in shown.stdout.splitlines()
            if line.strip()[:1].isdigit() and " s:" in line]


def make_admin_pki(directory: Path) -> AdminPki:
    """The openssl-made PKI of the admin tests: myCA and otherCA; admin (CN=localhost, IP:127.0.0.1, DNS:localhost),
    server (testserver.getting.started), clients lab.admin and intruder of myCA, stranger (CN=lab.admin) of otherCA."""
    directory.mkdir(parents=True, exist_ok=True)
    for ca, subject in (("myCA", "/CN=Admin Test CA"), ("otherCA", "/CN=Other CA")):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", subject,
                 "-keyout", str(directory / f"{ca}.key"), "-out", str(directory / f"{ca}.pem"),
                 "-addext", "basicConstraints=critical,CA:TRUE")
    _issue(directory, "myCA", "admin", "/CN=localhost",
           "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _issue(directory, "myCA", "server", "/CN=testserver.getting.started",
           "subjectAltName=DNS:testserver.getting.started,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    for who in ("lab.admin", "intruder"):
        _issue(directory, "myCA", who, f"/CN={who}", "extendedKeyUsage=clientAuth\n")
    _issue(directory, "otherCA", "stranger", "/CN=lab.admin", "extendedKeyUsage=clientAuth\n")
    return AdminPki(directory)
