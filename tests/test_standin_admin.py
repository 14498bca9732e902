"""Contract: the stand-in's admin endpoint, open and secured, as a real Amlen was seen (reference appendix,
"Observed later (2026-12-04): the admin endpoint, open and secured"; sections 2.2 and 3.10).

curl and the openssl CLI are the independent clients (what a developer types); Python requests where it is
simpler. Every secured step follows the order recorded on the real server: admin user, admin certificate, TLS and
password, trusted CA, client certificate required, CommonNames, password off; then `docker restart`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.standin_helpers import (
    DATA_PATH,
    AdminApi,
    RunningStandin,
    assert_answer,
    assert_success,
    poll,
    standin_with_api,
)

pytestmark = pytest.mark.docker

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


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> AdminPki:
    directory = tmp_path_factory.mktemp("admin-pki")
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


def _ok(answer: Curl) -> None:
    assert (answer.status, answer.json().get("Code")) == (200, "CWLNA6011"), answer


def _handshake_refused(answer: Curl) -> None:
    """No HTTP answer: curl's TLS layer failed (35: handshake, 56: the TLS 1.3 alert read after it)."""
    assert answer.status == 0 and answer.exit_code in (35, 56), answer


def _showcerts(port: int, pki: AdminPki, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", pki.path("myCA.pem"), "-showcerts",
         *options], input="", capture_output=True, text=True, timeout=30)


def _subjects(shown: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split("s:", 1)[1].strip() for line in shown.stdout.splitlines()
            if line.strip()[:1].isdigit() and " s:" in line]


@pytest.fixture
def standin(standin_image: str) -> Iterator[tuple[RunningStandin, AdminApi]]:
    with standin_with_api(standin_image, ports=(ADMIN, 8889, 8890)) as running:
        yield running


# ---- open (the default) -----------------------------------------------------------------------------------------


def test_open_defaults_as_observed(standin: tuple[RunningStandin, AdminApi]) -> None:
    _, api = standin
    endpoint = api.get("AdminEndpoint").json()["AdminEndpoint"]
    assert (endpoint["SecurityProfile"], endpoint["ConfigurationPolicies"], endpoint["Port"]) == (
        "AdminDefaultSecProfile", "AdminDefaultConfigPolicy", 9089)
    profile = api.get("SecurityProfile/AdminDefaultSecProfile").json()["SecurityProfile"]["AdminDefaultSecProfile"]
    assert {key: profile[key] for key in ("TLSEnabled", "UsePasswordAuthentication", "UseClientCertificate",
                                          "CertificateProfile", "MinimumProtocolMethod", "Ciphers")} == {
        "TLSEnabled": False, "UsePasswordAuthentication": False, "UseClientCertificate": False,
        "CertificateProfile": "AdminDefaultCertProf", "MinimumProtocolMethod": "TLSv1.2", "Ciphers": "Fast"}
    policy = api.get("ConfigurationPolicy/AdminDefaultConfigPolicy").json()["ConfigurationPolicy"]
    assert policy["AdminDefaultConfigPolicy"]["ClientAddress"] == "*"
    assert policy["AdminDefaultConfigPolicy"]["ActionList"] == "Configure,View,Monitor,Manage"
    assert api.get("AdminUserID").json() == {"Version": "v1", "AdminUserID": "admin"}
    assert_answer(api.get("AdminUserPassword"), 400, "CWLNA0137")


def test_open_port_answers_http_and_tls_with_the_default_certificate(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, _ = standin
    admin = Admin(running, pki)
    assert curl(admin.http("service/status")).status == 200
    assert curl(admin.https("service/status"), "-k").status == 200  # a ClientHello is answered with TLS
    shown = _showcerts(admin.port, pki)
    assert _subjects(shown) == ["C = US, OU = IBM IoT MessageSight development team, CN = IBM IoT MessageSight"]


def test_open_port_is_exposed_to_any_web_page(standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, api = standin
    admin = Admin(running, pki)
    origin = "http://evil.example"
    # A "simple" cross-origin request (text/plain, no preflight) is applied; Origin is reflected with credentials.
    applied = curl(admin.http("configuration"), "-H", f"Origin: {origin}", "-H", "Content-Type: text/plain",
                   "--data-binary", CSRF_BODY)
    _ok(applied)
    assert applied.headers["access-control-allow-origin"] == origin
    assert applied.headers["access-control-allow-credentials"] == "true"
    assert api.get("MessageHub/CsrfHub").status_code == 200
    read = curl(admin.http("configuration/Endpoint"), "-H", "Origin: http://other.example")
    assert read.status == 200 and read.headers["access-control-allow-origin"] == "http://other.example"
    preflight = curl(admin.http("configuration/Endpoint/DemoEndpoint"), "-X", "OPTIONS", "-H", f"Origin: {origin}",
                     "-H", "Access-Control-Request-Method: DELETE")
    assert preflight.status == 200
    assert (preflight.headers["access-control-allow-methods"], preflight.headers["access-control-allow-headers"],
            preflight.headers["access-control-max-age"]) == ("GET, PUT, POST, DELETE", "content-type", "1728000")
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in curl(admin.http("service/status")).headers
    # DNS rebinding: the Host header is not checked.
    assert curl(admin.http("service/status"), "-H", f"Host: rebind.evil.example:{ADMIN}").status == 200


def test_admin_user_is_accepted_and_its_password_never_read_back_or_stored(
        standin: tuple[RunningStandin, AdminApi]) -> None:
    running, api = standin
    assert_success(api.post({"AdminUserID": "labadmin", "AdminUserPassword": PASSWORD}))
    assert api.get("AdminUserID").json() == {"Version": "v1", "AdminUserID": "labadmin"}
    assert_answer(api.get("AdminUserPassword"), 400, "CWLNA0137")
    assert_answer(api.post({"AdminUserPassword": 7}), 400, "CWLNA0127")
    stored = running.read_file(f"{DATA_PATH}/data/config/standin-admin.json")
    assert "labadmin" in stored and PASSWORD not in stored and "pbkdf2-sha256$" in stored


# ---- secured, in the recorded order, then restarted ------------------------------------------------------------


def _secure_with_password(api: AdminApi, pki: AdminPki) -> float:
    """Admin user, admin certificate, TLS + password; seconds from the POST's answer to the first HTTPS 200."""
    assert_success(api.post({"AdminUserID": "labadmin", "AdminUserPassword": PASSWORD}))
    api.put_file("admin.pem", Path(pki.path("admin.pem")).read_bytes())
    api.put_file("admin.key", Path(pki.path("admin.key")).read_bytes())
    assert_success(api.post({"CertificateProfile": {"AdminLabCert": {"Certificate": "admin.pem", "Key": "admin.key"}}}))
    answer = requests.post(api.url("configuration"), timeout=30, json={"SecurityProfile": {"AdminDefaultSecProfile": {
        "CertificateProfile": "AdminLabCert", "TLSEnabled": True, "UsePasswordAuthentication": True}},
        "AdminEndpoint": {"SecurityProfile": "AdminDefaultSecProfile"}})
    answered = time.monotonic()
    assert answer.status_code == 200 and answer.json()["Code"] == "CWLNA6011"  # over plain HTTP, the old transport
    url = api.url("service/status").replace("http://", "https://")
    while True:
        try:
            if requests.get(url, verify=pki.path("myCA.pem"), auth=("labadmin", PASSWORD), timeout=5).ok:
                return time.monotonic() - answered
        except requests.RequestException:
            pass
        assert time.monotonic() - answered < 30, "HTTPS never answered"
        time.sleep(0.005)


def test_secured_admin_plane_step_by_step_and_after_restart(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, api = standin
    admin = Admin(running, pki)
    switch = _secure_with_password(api, pki)
    print(f"TLS + password answered {switch * 1000:.0f} ms after the POST's answer (real Amlen: 31-33 ms)")

    # TLS + password: plain HTTP gets no answer; Basic against AdminUserID/AdminUserPassword.
    plain = curl(admin.http("service/status"))
    assert plain.status == 0 and plain.exit_code in (52, 56), plain
    denied = admin.tls("service/status")
    assert (denied.status, denied.body) == (401, "Not authorized")
    assert (admin.tls("service/status", password="wrong").status, admin.tls("service/status", password="wrong").body
            ) == (401, "Bad request")
    other = admin.tls("service/status", "-u", f"admin:{PASSWORD}")
    assert (other.status, other.body) == (401, "Bad request")
    for path in ("service/status", "configuration/Endpoint", "monitor/Endpoint"):
        assert admin.tls(path, password=PASSWORD).status == 200, path
    _ok(admin.post({"MessageHub": {"PasswordHub": {}}}))
    _ok(admin.put("labca.pem", "myCA.pem", password=PASSWORD))
    shown = _showcerts(admin.port, pki, "-verify_return_error", "-verify_ip", "127.0.0.1")
    assert shown.returncode == 0 and _subjects(shown)[0] == "CN = localhost", shown.stdout + shown.stderr

    # Client certificates: trusted CA first, then required (the password still on).
    _ok(admin.post({"TrustedCertificate": [{"SecurityProfileName": "AdminDefaultSecProfile",
                                            "TrustedCertificate": "labca.pem", "Overwrite": True}]}))
    _ok(admin.post({"SecurityProfile": {"AdminDefaultSecProfile": {"UseClientCertificate": True}}}))
    poll(lambda: admin.tls("service/status", password=PASSWORD).status == 0, timeout=10)
    _handshake_refused(admin.tls("service/status", password=PASSWORD))
    _handshake_refused(admin.tls("service/status", who="stranger", password=PASSWORD))  # another CA, same CN
    assert admin.tls("service/status", who="lab.admin", password=PASSWORD).status == 200
    cert_only = admin.tls("service/status", who="lab.admin")
    assert (cert_only.status, cert_only.body) == (401, "Not authorized")

    # CommonNames, then the password off.
    _ok(admin.post({"ConfigurationPolicy": {"AdminDefaultConfigPolicy": {"CommonNames": "lab.admin"}}},
                   who="lab.admin"))
    intruder = admin.tls("service/status", who="intruder", password=PASSWORD)
    assert (intruder.status, intruder.body) == (401, "Bad request")
    assert admin.tls("service/status", who="lab.admin", password=PASSWORD).status == 200
    _ok(admin.post({"SecurityProfile": {"AdminDefaultSecProfile": {"UsePasswordAuthentication": False}}},
                   who="lab.admin"))
    poll(lambda: admin.tls("service/status", who="lab.admin").status == 200, timeout=10)
    _check_mutual_tls_only(admin)

    # docker restart: all of it holds.
    running.container.restart(timeout=10)
    began = time.monotonic()
    poll(lambda: admin.tls("service/status", who="lab.admin").status == 200, timeout=60, interval=0.05)
    print(f"mutual TLS answered {time.monotonic() - began:.2f} s after docker restart returned (real: 0.63 s)")
    poll(lambda: '"State": 1,' in admin.tls("service/status", who="lab.admin").body, timeout=60)
    _check_mutual_tls_only(admin)
    assert admin.tls("configuration/MessageHub/PasswordHub", who="lab.admin").status == 200


def _check_mutual_tls_only(admin: Admin) -> None:
    assert admin.tls("service/status", who="lab.admin").status == 200
    assert admin.tls("monitor/Endpoint", who="lab.admin").status == 200
    _ok(admin.post({"MessageHub": {"MutualHub": {}}}, who="lab.admin", password=None))
    intruder = admin.tls("service/status", who="intruder")
    assert (intruder.status, intruder.body) == (401, "Bad request")
    _handshake_refused(admin.tls("service/status"))
    _handshake_refused(admin.tls("configuration", "-H", "Origin: http://evil.example", "-H",
                                 "Content-Type: text/plain", "--data-binary", CSRF_BODY))
    plain = curl(admin.http("service/status"))
    assert plain.status == 0, plain


def test_common_names_before_the_certificate_locks_a_password_client_out(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, api = standin
    admin = Admin(running, pki)
    _secure_with_password(api, pki)
    _ok(admin.post({"ConfigurationPolicy": {"AdminDefaultConfigPolicy": {"CommonNames": "lab.admin"}}}))
    locked = admin.tls("service/status", password=PASSWORD)
    assert (locked.status, locked.body) == (401, "Bad request")
