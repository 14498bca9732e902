"""The lab's admin plane as `up` leaves it, checked by independent clients (curl, openssl), after a restart
too; re-running `up` changes nothing; a lost lab directory and bad admin files are one line with the way out.

The stand-in behaves as the real server was seen to (reference appendix, "Observed later (2026-12-04)").
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.amlen.adminfiles import admin_files
from lab.pki.leaves import issue_client_certs
from tests.conftest import LabEnv


def _curl(lab: LabEnv, *options: str, scheme: str = "https") -> tuple[int, str]:
    """(curl's exit code, the HTTP status it saw: '000' when there was no HTTP answer)."""
    url = f"{scheme}://127.0.0.1:{lab.admin_port}/ima/v1/service/status"
    run = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", *options, url],
                         capture_output=True, text=True, timeout=60)
    return run.returncode, run.stdout.strip()


def _independent_checks(lab: LabEnv, intruder: tuple[Path, Path]) -> None:
    files = admin_files(lab.settings())
    ca = ("--cacert", str(files.ca))
    # lab.admin: in.
    assert _curl(lab, *ca, "--cert", str(files.client_cert), "--key", str(files.client_key)) == (0, "200")
    # No client certificate: the handshake is refused (TLS 1.3: curl learns it on its first read).
    code, status = _curl(lab, *ca)
    assert code in (35, 56) and status == "000", (code, status)
    # Another CN from the same CA: the TLS handshake passes, the configuration policy does not.
    key, cert = intruder
    assert _curl(lab, *ca, "--cert", str(cert), "--key", str(key)) == (0, "401")
    # Plain HTTP: no answer at all.
    code, status = _curl(lab, scheme="http")
    assert code != 0 and status == "000", (code, status)
    # openssl: the admin certificate verifies against the lab CA for 127.0.0.1, and names localhost.
    base = ["openssl", "s_client", "-connect", f"127.0.0.1:{lab.admin_port}", "-CAfile", str(files.ca),
            "-verify_ip", "127.0.0.1", "-verify_return_error"]
    shown = subprocess.run([*base, "-cert", str(files.client_cert), "-key", str(files.client_key)], input="",
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and "Verify return code: 0 (ok)" in shown.stdout, shown.stdout + shown.stderr
    assert "CN = localhost" in shown.stdout
    request = f"GET /ima/v1/service/status HTTP/1.1\r\nHost: 127.0.0.1:{lab.admin_port}\r\n\r\n"
    bare = subprocess.run([*base, "-ign_eof"], input=request, capture_output=True, text=True, timeout=30)
    assert "HTTP/1.1 200" not in bare.stdout
    assert "alert certificate required" in (bare.stdout + bare.stderr).lower(), bare.stdout + bare.stderr


def test_up_locks_the_admin_plane_and_independent_clients_agree_also_after_a_restart(lab_env: LabEnv) -> None:
    up = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert up.returncode == 0, up.stdout + up.stderr
    said = " ".join(up.stdout.split())
    assert "admin plane: locked: TLS + client certificate" in said
    files = admin_files(lab_env.settings())
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in (files.client_key, files.server_key, files.netrc))
    user_password = files.netrc.read_text().split()
    assert user_password[3] not in up.stdout + up.stderr, "the admin password is never printed"
    issue_client_certs(lab_env.settings(), ["intruder"])
    pki = lab_env.dir / "pki"
    intruder = (pki / "intruder.key", pki / "intruder.crt")
    _independent_checks(lab_env, intruder)

    subprocess.run(["docker", "restart", lab_env.container_name], check=True, capture_output=True, timeout=120)
    again = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert again.returncode == 0, again.stdout + again.stderr
    said = " ".join(again.stdout.split())
    assert "admin plane: already locked" in said and "all 6 objects already match" in said
    _independent_checks(lab_env, intruder)

    status = lab_env.invoke("status")
    assert status.returncode == 0, status.stderr
    line = next(line for line in status.stdout.splitlines() if line.startswith("admin API by hand: "))
    by_hand = subprocess.run(line.removeprefix("admin API by hand: "), shell=True, capture_output=True, text=True,
                             timeout=30)
    assert by_hand.returncode == 0 and '"State":1' in by_hand.stdout.replace(" ", ""), by_hand.stdout

    doctor = lab_env.invoke("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    for name in ("admin API TLS", "admin API: plain HTTP", "admin API: HTTPS without the lab.admin certificate"):
        assert checks[name]["status"] == "OK", checks[name]
    assert "CN=localhost" in checks["admin API TLS"]["detail"]


def test_a_lost_lab_directory_and_bad_admin_files_are_one_line_with_the_way_out(lab_env: LabEnv) -> None:
    up = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert up.returncode == 0, up.stdout + up.stderr
    files = admin_files(lab_env.settings())

    # The credentials file is broken: one line, nothing changed (the ledger is the same afterwards).
    ledger = (lab_env.dir / "state.json").read_bytes()
    netrc = files.netrc.read_bytes()
    files.netrc.write_text("default login\n")
    broken = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    errors = [line for line in broken.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(files.netrc) in errors[0] and "hint:" in errors[0], broken.stderr
    assert (lab_env.dir / "state.json").read_bytes() == ledger
    files.netrc.write_bytes(netrc)

    # Another CN in place of lab.admin: status says 401 with a hint; `up` re-issues lab.admin and goes on.
    shutil.copy(lab_env.dir / "pki" / "test.client1.crt", files.client_cert)
    shutil.copy(lab_env.dir / "pki" / "test.client1.key", files.client_key)
    status = json.loads(lab_env.invoke("status", "--json").stdout)
    assert "401" in status["amlen"]["error"] and "invoke down" in status["amlen"]["hint"], status["amlen"]
    repaired = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr

    # The lab directory is gone: the container answers, but to nothing this lab has.
    saved = lab_env.dir.with_name("lab-saved")
    lab_env.dir.rename(saved)
    lost = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert lost.returncode == 1
    errors = [line for line in lost.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "locked by another lab directory" in errors[0], lost.stderr
    assert "`invoke down`" in errors[0] and "`invoke up`" in errors[0]
    down = lab_env.invoke("down")
    assert down.returncode == 0, down.stdout + down.stderr
    fresh = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr


@pytest.mark.parametrize("mode", ["password", "open"])
def test_password_and_open_modes(lab_env: LabEnv, mode: str) -> None:
    lab_env.env["LAB_ADMIN_SECURITY"] = mode
    up = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert up.returncode == 0, up.stdout + up.stderr
    files = admin_files(lab_env.settings())
    doctor = json.loads(lab_env.invoke("doctor", "--json").stdout)
    checks = {check["name"]: check for check in doctor["checks"]}
    if mode == "password":
        assert _curl(lab_env, "--cacert", str(files.ca), "--netrc-file", str(files.netrc)) == (0, "200")
        assert _curl(lab_env, "--cacert", str(files.ca)) == (0, "401")
        assert _curl(lab_env, scheme="http")[1] == "000"
        assert checks["admin API: HTTPS without the password"]["status"] == "OK"
    else:
        assert "LAB_ADMIN_SECURITY=open leaves" in " ".join(up.stdout.split())
        assert _curl(lab_env, scheme="http") == (0, "200")
        assert checks["admin API"]["status"] == "WARN" and "CORS" in checks["admin API"]["detail"]
    again = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert again.returncode == 0 and "admin plane: " in again.stdout
