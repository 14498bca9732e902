"""`doctor` against a real mosquitto, real certificates and a real HTTP admin API answering as Amlen does."""
# The broker, certificate and hosts fixtures live in test_checks.py (shared until they move to conftest.py);
# pytest injects them by parameter name, which ruff reads as redefinitions.

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from lab.doctor import doctor
from lab.doctor.findings import DoctorReport, Status
from lab.pki.leaves import ensure_certificates, make_foreign_client
from lab.settings import Settings, load_settings
from tests.helpers import serve_http
from tests.mosquitto_lab import Broker, other_name_certificate


def finding(report: DoctorReport, name: str) -> Any:
    matches = [check for check in report.checks if check.name == name]
    assert matches, [check.name for check in report.checks]
    return matches[0]


def test_healthy_endpoints_show_their_chain_and_verify(lab_settings: Settings, broker: Broker,
                                                       hosts_entry: str) -> None:
    report = doctor(lab_settings)

    assert finding(report, "name resolution").status is Status.OK
    for port in (lab_settings.tls_port, lab_settings.mtls_port):
        check = finding(report, f"TLS on {port}")
        assert check.status is Status.OK, check
        assert f"SAN {lab_settings.hostname}" in check.detail and "verifies against myCA.pem" in check.detail
        assert check.data["chain"][0]["issuer"].endswith("CN=amlen-lab toy CA")
    assert "client certificate accepted" in finding(report, f"TLS on {lab_settings.mtls_port}").detail
    assert finding(report, "file test.server.crt").status is Status.OK
    assert "key matches" in finding(report, "file test.client1.crt").detail
    json.dumps(report.as_dict())


def test_swapped_server_certificate_is_named_as_the_cause(lab_settings: Settings, tmp_path: Path,
                                                         hosts_entry: str) -> None:
    cert, key = other_name_certificate(lab_settings, tmp_path, "other.example.test")
    swapped = Broker(lab_settings, tmp_path)
    swapped.start(server_cert=cert, server_key=key)
    try:
        report = doctor(lab_settings)
    finally:
        swapped.stop()

    check = finding(report, f"TLS on {lab_settings.tls_port}")
    assert check.status is Status.FAIL
    assert f"for other.example.test, its SAN does not cover {lab_settings.hostname}" in check.detail
    assert "not the lab's test.server.crt" in check.detail and "re-uploads" in check.hint
    assert not report.ok


def test_mutual_port_not_trusting_the_lab_ca_is_named(lab_settings: Settings, tmp_path: Path,
                                                      hosts_entry: str) -> None:
    foreign_ca, _key, _cert = make_foreign_client(tmp_path / "foreign", "stranger")
    wrong = Broker(lab_settings, tmp_path)
    wrong.start(trusted_ca=foreign_ca)
    try:
        report = doctor(lab_settings)
    finally:
        wrong.stop()

    assert finding(report, f"TLS on {lab_settings.tls_port}").status is Status.OK
    check = finding(report, f"TLS on {lab_settings.mtls_port}")
    assert check.status is Status.FAIL and "unknown CA" in check.detail
    assert "trust the lab CA" in check.hint


def test_missing_hosts_line_is_named(lab_settings: Settings, broker: Broker) -> None:
    report = doctor(lab_settings)

    check = finding(report, "name resolution")
    assert check.status is Status.FAIL and "does not resolve" in check.detail
    assert "invoke up" in check.hint


def test_stopped_broker_fails_ports_and_skips_handshakes(lab_settings: Settings, hosts_entry: str) -> None:
    report = doctor(lab_settings)

    assert finding(report, f"port {lab_settings.tls_port} (TLS)").status is Status.FAIL
    assert "nothing is listening" in finding(report, f"port {lab_settings.mtls_port} (mutual TLS)").detail
    skipped = finding(report, f"TLS on {lab_settings.tls_port}")
    assert skipped.status is Status.SKIP and skipped.detail.startswith("skipped: needs port")


def test_unreachable_docker_skips_what_needs_it(lab_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")

    report = doctor(lab_settings)

    assert finding(report, "engine").status is Status.FAIL
    assert finding(report, "lab container").detail == "skipped: needs Docker"
    assert finding(report, "Amlen status").detail == "skipped: needs the lab container running"


def test_certificate_expiring_within_30_days_warns(tmp_path: Path) -> None:
    settings = load_settings(dir=tmp_path / "short", client_days=10, ca_passphrase="x")
    ensure_certificates(settings)

    report = doctor(settings)

    check = finding(report, "file test.client1.crt")
    assert check.status is Status.WARN and "expires in" in check.detail
    assert finding(report, "file myCA.pem").status is Status.OK


class _Amlen(BaseHTTPRequestHandler):
    """Answers as the real server did (reference appendix): ready, the TLS endpoint live, the mutual one
    configured but not bound, and no trusted certificate on the mutual profile."""

    settings: Settings

    def do_GET(self) -> None:
        s = self.settings
        path = self.path
        if path == "/ima/v1/service/status":
            self._send(200, {"Version": "v1", "Server": {"State": 1, "StateDescription": "Running (production)",
                                                          "ErrorCode": 0, "Version": "1.1dev"}})
        elif path in (f"/ima/v1/configuration/Endpoint/{s.tls_endpoint}",
                      f"/ima/v1/configuration/Endpoint/{s.mtls_endpoint}"):
            name = path.rsplit("/", 1)[1]
            self._send(200, {"Version": "v1", "Endpoint": {name: {"Port": 8889, "Enabled": True}}})
        elif path == f"/ima/v1/monitor/Endpoint?Name={s.tls_endpoint}":
            self._send(200, {"Version": "v1", "Endpoint": [{"Name": s.tls_endpoint, "Enabled": True,
                                                            "LastErrorCode": 0, "Active": 0}]})
        elif path.startswith("/ima/v1/monitor/Endpoint"):
            self._send(200, {"Version": "v1", "Endpoint": []})
        else:
            self._send(404, {"Version": "v1", "Code": "CWLNA0136",
                             "Message": "The item or object cannot be found."})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def admin_api(lab_settings: Settings) -> Iterator[str]:
    with serve_http(type("Handler", (_Amlen,), {"settings": lab_settings})) as url:
        yield url


def test_unbound_endpoint_and_missing_trusted_ca_are_named(lab_settings: Settings, admin_api: str) -> None:
    settings = lab_settings.replace(admin_url=admin_api)

    report = doctor(settings)

    assert finding(report, "Amlen status").status is Status.OK
    assert finding(report, f"endpoint {settings.tls_endpoint}").status is Status.OK
    unbound = finding(report, f"endpoint {settings.mtls_endpoint}")
    assert unbound.status is Status.FAIL
    assert "POST accepted but nothing bound: port held by another process? see `invoke logs`" in unbound.detail
    trusted = finding(report, f"trusted CA of {settings.mutual_security_profile}")
    assert trusted.status is Status.FAIL and "has no trusted CA" in trusted.detail
