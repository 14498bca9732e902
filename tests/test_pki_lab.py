"""The real-CA path end to end on the Amlen stand-in: a two-tier lab `up`, its chain verified and diagnosed, a
leaf-only profile named by doctor and repaired by `up`, the rotation drill, the expiry drill, and a workshop
whose seats (and CRL) come from the intermediate.

One lab per PKI mode serves the module (the guide's `root` and `intermediate`; `--no-hosts`: rows run by
address with the right name). Each case that breaks something repairs it before the next.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from lab.clients.tls import handshake, tls_context
from lab.pki.paths import pki_paths
from lab.settings import Settings
from lab.workshop.seats import seat_files
from tests.conftest import LabEnv
from tests.helpers import admin_api

pytestmark = pytest.mark.docker


def _ok(lab: LabEnv, *args: str) -> subprocess.CompletedProcess[str]:
    result = lab.invoke(*args)
    assert result.returncode == 0, f"invoke {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module", params=["root", "intermediate"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        standin_image: str) -> Iterator[LabEnv]:
    the_lab = LabEnv.new(tmp_path_factory.mktemp("pki-lab") / "lab", standin_image, LAB_PKI=request.param)
    try:
        _ok(the_lab, "up", "--no-hosts")
        yield the_lab
        _ok(the_lab, "down")
    finally:
        subprocess.run(["docker", "rm", "-f", the_lab.container_name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"{the_lab.container_name}-data"], capture_output=True)


def _verify(lab: LabEnv, *flags: str) -> dict[str, Any]:
    result = lab.invoke("verify", "--json", "--no-hosts", *flags)
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["passed"] else 1), result.stderr
    return report


def _doctor(lab: LabEnv) -> dict[str, dict[str, Any]]:
    result = lab.invoke("doctor", "--json")
    assert "Traceback" not in result.stderr
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def _two_tier(lab: LabEnv) -> bool:
    return lab.env["LAB_PKI"] == "intermediate"


def _settings(lab: LabEnv) -> Settings:
    return lab.settings().replace(pki=lab.env["LAB_PKI"])


def _presented(lab: LabEnv, port: int) -> list[x509.Certificate]:
    seen = handshake("127.0.0.1", port, context=tls_context(ca_file=None), server_name=lab.hostname)
    return [x509.load_der_x509_certificate(der) for der in seen.chain]


def test_the_lab_serves_its_chain_and_passes_every_row(lab: LabEnv) -> None:
    report = _verify(lab)
    assert report["passed"], [r for r in report["rows"] if not r["passed"]]
    assert {r["row"] for r in report["rows"]} == {1, 2, 3, 4, 5, 6, 7}
    chain_row = next(r for r in report["rows"] if r["row"] == 7)
    expected = (f"verified; presented: leaf '{lab.hostname}' (issuer 'amlen-lab toy intermediate CA'), then "
                "intermediate 'amlen-lab toy intermediate CA' (issuer 'amlen-lab toy CA')") if _two_tier(lab) \
        else f"verified; presented: leaf '{lab.hostname}' (issuer 'amlen-lab toy CA')"
    assert chain_row["detail"] == expected
    # The independent checker: openssl trusting only the root, as the README has users run it.
    pki = pki_paths(_settings(lab))
    shown = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{lab.tls_port}", "-servername", lab.hostname,
         "-CAfile", str(pki.ca_cert), "-verify_return_error", "-showcerts"],
        input="", capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and "Verify return code: 0 (ok)" in shown.stdout
    assert shown.stdout.count("BEGIN CERTIFICATE") == (2 if _two_tier(lab) else 1)
    # Only the root is trusted on the mutual profile; the client presents leaf + intermediate.
    base, http = admin_api(_settings(lab))
    api = f"{base}/configuration/TrustedCertificate"
    trusted = http.get(f"{api}/TestServerMutualAuthSecProfile", timeout=10).json()["TrustedCertificate"]
    assert [entry["TrustedCertificate"] for entry in trusted] == ["myCA.pem"]
    checks = _doctor(lab)
    assert checks[f"TLS on {lab.tls_port}"]["status"] == "OK", checks[f"TLS on {lab.tls_port}"]
    assert checks[f"TLS on {lab.mtls_port}"]["status"] == "OK", checks[f"TLS on {lab.mtls_port}"]
    if _two_tier(lab):
        assert checks["file myIntermediateCA.pem"]["status"] == "OK"
    else:
        # No SSL_MODE_NO_AUTO_CHAIN (Amlen's ssl.c): OpenSSL completes the leaf from the mutual trust store.
        assert "the root 'amlen-lab toy CA' is sent too" in checks[f"TLS on {lab.mtls_port}"]["detail"]


def _upload_profile(lab: LabEnv, name: str, data: bytes) -> None:
    """The server's certificate profile re-made by hand from `data` (as a person would with curl)."""
    pki = pki_paths(_settings(lab))
    admin, http = admin_api(_settings(lab))
    for upload, content in ((name, data), ("test.server.key", pki.server_key.read_bytes())):
        assert http.put(f"{admin}/file/{upload}", data=content, timeout=10).status_code == 200
    body = {"CertificateProfile": {"TestServer-from-ToyCA": {"Certificate": name, "Key": "test.server.key",
                                                             "Overwrite": True}}}
    assert http.post(f"{admin}/configuration", json=body, timeout=10).status_code == 200


def test_a_wrong_chain_is_named_by_doctor_and_repaired_by_up(lab: LabEnv) -> None:
    pki = pki_paths(_settings(lab))
    if not _two_tier(lab):
        # The guide's lab, with the root sent too (LAB_SERVE_ROOT's chain): fine, and doctor says who needs it.
        _upload_profile(lab, "test.server.chain.pem", pki.server_cert.read_bytes() + pki.ca_cert.read_bytes())
        assert len(_presented(lab, lab.tls_port)) == 2
        check = _doctor(lab)[f"TLS on {lab.tls_port}"]
        assert check["status"] == "OK" and "only clients that trust on first use" in check["detail"], check
        _ok(lab, "up", "--no-hosts")
        assert len(_presented(lab, lab.tls_port)) == 1, "up puts the lab's own back"
        return
    # By hand, as a person who uploads the certificate without its intermediate.
    _upload_profile(lab, "test.server.chain.pem", pki.server_cert.read_bytes())
    assert len(_presented(lab, lab.tls_port)) == 1

    check = _doctor(lab)[f"TLS on {lab.tls_port}"]
    assert check["status"] == "FAIL"
    assert "the leaf is sent alone" in check["detail"]
    assert "clients that trust only myCA.pem will fail" in check["detail"]
    assert "upload leaf + intermediate" in check["hint"]
    report = _verify(lab)
    assert {r["row"] for r in report["rows"] if not r["passed"]} >= {7}
    assert "unable to get local issuer certificate" in next(r for r in report["rows"] if r["row"] == 7)["detail"]

    _ok(lab, "up", "--no-hosts")
    assert len(_presented(lab, lab.tls_port)) == 2
    assert _doctor(lab)[f"TLS on {lab.tls_port}"]["status"] == "OK"
    assert _verify(lab)["passed"]


def test_rotation_serves_a_new_serial_and_keeps_the_open_subscription(lab: LabEnv) -> None:
    before = _presented(lab, lab.tls_port)[0]
    rotated = _ok(lab, "certs", "--rotate")
    after = _presented(lab, lab.tls_port)[0]
    assert after.serial_number != before.serial_number
    assert _presented(lab, lab.mtls_port)[0].serial_number == after.serial_number
    out = rotated.stdout
    assert f"{before.serial_number:X}" in out and f"{after.serial_number:X}" in out
    assert "received the message published before and the one published after the rotation" in out
    assert f"{after.not_valid_after_utc:%Y-%m-%d}" in out
    assert _verify(lab)["passed"]


def test_expired_client_is_refused_in_words_and_doctor_warns(lab: LabEnv) -> None:
    _ok(lab, "client-cert", "--name", "late", "--expired")
    report = _verify(lab, "--client", "late")
    assert report["passed"], [r for r in report["rows"] if not r["passed"]]
    row = next(r for r in report["rows"] if r["row"] == 8)
    assert row["expected"] == "refused: certificate expired"
    assert "TLS alert: certificate expired" in row["detail"]
    assert _doctor(lab)["file late.crt"]["status"] == "WARN"

    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%d")
    _ok(lab, "client-cert", "--name", "early", "--not-before", soon)
    row = next(r for r in _verify(lab, "--client", "early")["rows"] if r["row"] == 8)
    assert row["passed"] and row["expected"] == "refused: certificate not yet valid", row

    _ok(lab, "client-cert", "--name", "late", "--force")  # back to a good one: admitted
    row = next(r for r in _verify(lab, "--client", "late")["rows"] if r["row"] == 8)
    assert row["passed"] and row["actual"] == "accepted", row


def test_workshop_seats_and_crl_come_from_the_ca_that_signs(lab: LabEnv) -> None:
    from tests.workshop_helpers import Probe

    _ok(lab, "workshop", "--seats", "2")
    settings = _settings(lab)
    seat = seat_files(settings, "01")
    signer = pki_paths(settings).intermediate_cert if _two_tier(lab) else pki_paths(settings).ca_cert
    if _two_tier(lab):
        assert seat.presented == seat.chain and seat.chain.read_bytes().count(b"BEGIN CERTIFICATE") == 2
        with zipfile.ZipFile(seat.zip) as archive:
            assert f"01/{seat.chain.name}" in archive.namelist()
    else:
        assert seat.presented == seat.cert and not seat.chain.exists()
    assert f"--cert {seat.presented.name}" in seat.readme.read_text()

    _ok(lab, "workshop", "--revoke", "01")
    crl = x509.load_pem_x509_crl((settings.lab_dir / "workshop" / ".crl.pem").read_bytes())
    assert crl.issuer == x509.load_pem_x509_certificate(signer.read_bytes()).subject
    ca = pki_paths(settings).ca_cert
    for name, admitted in (("01", False), ("02", True)):
        files = seat_files(settings, name)
        probe = Probe(ca=ca, cert=files.presented, key=files.key, client_id=f"{files.cn}-t",
                      server_name=lab.hostname)
        try:
            outcome = probe.connect("127.0.0.1", lab.workshop_port)
        finally:
            probe.close()
        assert (outcome == "accepted") is admitted, (name, outcome)
