"""`invoke verify` and `invoke doctor` against a lab `up` on the Amlen stand-in, then broken on purpose.

One lab serves the whole module (one container; only the stopped-container case starts it a second time).
Each case breaks the lab the way a person would (docker, the hosts task, Amlen's admin API), checks that
exactly the right verify rows turn red and that doctor names the cause, then runs `invoke up`, which must
repair it: convergence after damage is part of the promise. The real /etc/hosts is used with a unique
host name, whose line `down` removes (byte-identical restoration is test_up_down's promise).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from lab.pki.leaves import ensure_certificates
from lab.pki.paths import pki_paths
from lab.settings import load_settings
from tests.conftest import INVOKE, ROOT, LabEnv, free_port
from tests.helpers import admin_api

HOSTS = Path("/etc/hosts")
# The figure: the whole matrix for a running lab in under 1.5 s (about 0.1 s on the stand-in).
ROUND_TRIPS = {(1, "3.1.1"), (1, "5"), (2, "3.1.1"), (2, "5")}
ALL_ROWS = ROUND_TRIPS | {(3, "3.1.1"), (4, "3.1.1"), (5, "3.1.1"), (6, "3.1.1"), (7, "3.1.1")}


class Lab(LabEnv):
    """The module's lab, and whether the last case left it healthy (else the next case rebuilds it)."""

    healthy: bool = False

    @property
    def admin(self) -> str:
        return admin_api(self.settings())[0]

    @property
    def http(self) -> requests.Session:
        """The lab's admin session (HTTPS, the lab.admin certificate), for calls a person makes by hand."""
        return admin_api(self.settings())[1]


def _run_ok(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    result = lab.invoke(*args)
    assert result.returncode == 0, f"invoke {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _remove_container(lab: Lab) -> None:
    subprocess.run(["docker", "rm", "-f", lab.container_name], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "-f", f"{lab.container_name}-data"], capture_output=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Iterator[Lab]:
    """A lab `up` on the stand-in: its own container, host name (in the real /etc/hosts) and free ports."""
    the_lab = Lab.new(tmp_path_factory.mktemp("verify-lab") / "lab", standin_image)
    try:
        _run_ok(the_lab, "up")
        the_lab.healthy = True
        yield the_lab
        _run_ok(the_lab, "down")
        assert the_lab.hostname not in HOSTS.read_text(), "down removes the lab's hosts line"
    finally:
        _remove_container(the_lab)
        _remove_own_hosts_lines(the_lab.hostname)


def _remove_own_hosts_lines(hostname: str) -> None:
    """Drop only lines naming this module's unique host name: other labs on the machine keep theirs.

    (Writing back a snapshot instead would erase lines that concurrent runs added meanwhile.)
    """
    lines = HOSTS.read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if hostname.encode() not in line]
    if kept != lines:
        HOSTS.write_bytes(b"".join(kept))


@pytest.fixture
def healthy_lab(lab: Lab) -> Lab:
    """The module's lab, green; rebuilt from scratch only when an earlier case failed to repair it.

    The rebuilt lab gets fresh ports, so whatever made the earlier case fail cannot also fail this one.
    """
    if not lab.healthy:
        lab.invoke("down")
        _remove_container(lab)
        for key in ("LAB_TLS_PORT", "LAB_MTLS_PORT", "LAB_ADMIN_PORT", "LAB_WORKSHOP_PORT"):
            lab.env[key] = str(free_port())
        result = lab.invoke("up")
        if result.returncode != 0:
            pytest.fail(f"an earlier case left the lab broken; a fresh `invoke up` failed:\n{result.stderr}")
    lab.healthy = False  # until this case has repaired what it breaks
    return lab


def _verify(lab: Lab, *flags: str) -> dict[str, Any]:
    result = lab.invoke("verify", "--json", *flags)
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["passed"] else 1), result.stderr
    assert "Traceback" not in result.stderr
    return report


def _red_rows(report: dict[str, Any]) -> set[tuple[int, str]]:
    return {(row["row"], row["protocol"]) for row in report["rows"] if not row["passed"]}


def _rows(report: dict[str, Any], number: int) -> list[dict[str, Any]]:
    return [row for row in report["rows"] if row["row"] == number]


def _doctor(lab: Lab) -> dict[str, dict[str, Any]]:
    """`invoke doctor --json` as {check name: check}; its exit code must agree with its verdict."""
    result = lab.invoke("doctor", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 1), result.stderr
    assert "Traceback" not in result.stderr
    return {check["name"]: check for check in report["checks"]}


def _failed(checks: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, check in checks.items() if check["status"] == "FAIL"}


def _up_repairs(lab: Lab) -> str:
    """`invoke up` after the damage: it must succeed, and verify must be all green afterwards."""
    result = lab.invoke("up")
    assert result.returncode == 0, f"`invoke up` did not repair the lab:\n{result.stdout}\n{result.stderr}"
    report = _verify(lab)
    assert report["passed"], _red_rows(report)
    lab.healthy = True
    return result.stdout


# --- the healthy lab --------------------------------------------------------------------------------------


def test_verify_rows_and_doctor_are_all_green_after_up(healthy_lab: Lab) -> None:
    report = _verify(healthy_lab)
    assert {(row["row"], row["protocol"]) for row in report["rows"]} == ALL_ROWS
    assert _red_rows(report) == set()
    for row in _rows(report, 1) + _rows(report, 2):
        assert row["actual"] == "5/5 received", row
        assert healthy_lab.hostname in row["name"], "round trips dial the host name, like the guide's clients"
    assert "certificate required" in _rows(report, 3)[0]["detail"]
    assert "unknown CA" in _rows(report, 4)[0]["detail"]
    assert "hostname mismatch" in _rows(report, 5)[0]["detail"]
    assert "only TLS" in _rows(report, 6)[0]["detail"]

    checks = _doctor(healthy_lab)
    assert _failed(checks) == set()
    tls = checks[f"TLS on {healthy_lab.tls_port}"]
    assert tls["status"] == "OK" and tls["data"]["chain"][0]["san"] == [healthy_lab.hostname]
    assert checks[f"TLS on {healthy_lab.mtls_port}"]["detail"].endswith("client certificate accepted")
    healthy_lab.healthy = True


def test_guides_sub_and_pub_tasks_round_trip_over_tls_and_mutual_tls(healthy_lab: Lab) -> None:
    """`invoke sub` prints what `invoke pub` sends, on both endpoints, with the lab's files as defaults."""
    for port in (healthy_lab.tls_port, healthy_lab.mtls_port):
        topic = f"topic1/sub-pub-{port}"
        sub = subprocess.Popen(
            [INVOKE, "-r", str(ROOT), "sub", "-P", str(port), "-t", topic, "-N", "2", "-s"],
            env=healthy_lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert sub.stdout is not None
            assert "subscribing to" in sub.stdout.readline()
            published = _run_ok(healthy_lab, "pub", "-P", str(port), "-t", topic, "-N", "2", "-m", "hi", "-q", "1")
            assert "published 2 message(s)" in published.stdout
            out, err = sub.communicate(timeout=30)
        finally:
            sub.kill()
        assert sub.returncode == 0, err
        assert out.splitlines() == [f"{topic} hi", f"{topic} hi"]


def test_guides_client_commands_run_verbatim_with_debug_log(healthy_lab: Lab) -> None:
    """The guide's two commands as written (bare file names, -D, -K/-C), from the pki directory and elsewhere."""
    pki = healthy_lab.dir / "pki"
    mutual = ["-H", healthy_lab.hostname, "-P", str(healthy_lab.mtls_port), "-s", "--cacerts", "myCA.pem", "-D",
              "-K", "test.client1.key", "-C", "test.client1.crt"]
    for cwd in (pki, healthy_lab.dir.parent):  # the files are found here first, then in the lab's pki directory
        topic = f"topic1/guide-{uuid.uuid4().hex[:6]}"
        sub = subprocess.Popen([INVOKE, "-r", str(ROOT), "sub", *mutual, "-t", f"{topic}/#", "-N", "2"],
                               env=healthy_lab.env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        try:
            assert sub.stdout is not None
            lines = []
            while "Received SUBACK" not in (line := sub.stdout.readline()):  # -D prints paho's log
                assert line, f"sub ended early: {lines} {sub.stderr.read() if sub.stderr else ''}"
                lines.append(line)
            published = subprocess.run([INVOKE, "-r", str(ROOT), "pub", *mutual, "-t", f"{topic}/subtopic2",
                                        "-N", "2", "-S", "0.1", "-m", "guide"], env=healthy_lab.env, cwd=cwd,
                                       capture_output=True, text=True, timeout=60)
            assert published.returncode == 0, published.stdout + published.stderr
            assert "Received CONNACK" in published.stdout and "published 2 message(s)" in published.stdout
            out, err = sub.communicate(timeout=30)
        finally:
            sub.kill()
        assert sub.returncode == 0, err
        assert [line for line in out.splitlines() if line.startswith(topic)] == [f"{topic}/subtopic2 guide"] * 2
        assert "Traceback" not in err


# --- broken on purpose, one at a time, and repaired by `invoke up` --------------------------------------


def test_deleted_hosts_line_reddens_round_trips_doctor_names_resolution_and_up_adds_it_back(
    healthy_lab: Lab,
) -> None:
    _run_ok(healthy_lab, "hosts", "--remove")
    assert healthy_lab.hostname not in HOSTS.read_text()

    report = _verify(healthy_lab)
    assert _red_rows(report) == ROUND_TRIPS
    for row in _rows(report, 1) + _rows(report, 2):
        assert "does not resolve" in row["detail"] and "--no-hosts" in row["detail"], row
    assert _verify(healthy_lab, "--no-hosts")["passed"], "by address the lab itself is fine"
    checks = _doctor(healthy_lab)
    assert _failed(checks) == {"name resolution"}
    assert f"{healthy_lab.hostname} does not resolve" in checks["name resolution"]["detail"]
    assert "`invoke up` adds the hosts line" in checks["name resolution"]["hint"]

    output = _up_repairs(healthy_lab)
    assert "hosts entry: added" in " ".join(output.split())
    assert healthy_lab.hostname in HOSTS.read_text()


def _impostor_certificate(lab: Lab, root: Path, hostname: str) -> tuple[Path, Path]:
    """A server certificate and key for `hostname`, signed by the lab's own CA (lab.pki on a copy of it)."""
    settings = lab.settings()
    ours = pki_paths(settings)
    # One day shorter, so its ExpirationDate differs from the lab's certificate's: that date (to the second) is
    # all `up` compares, and an impostor expiring in the same second would not be re-uploaded (`up` then
    # fails at "endpoints live" with a hostname mismatch instead of repairing).
    other = load_settings(dir=root / "impostor", hostname=hostname, server_days=settings.server_days - 1)
    theirs = pki_paths(other)
    theirs.dir.mkdir(parents=True)
    for source, target in ((ours.ca_key, theirs.ca_key), (ours.ca_cert, theirs.ca_cert),
                           (ours.passphrase_file, theirs.passphrase_file)):
        shutil.copy2(source, target)
    ensure_certificates(other)
    return theirs.server_cert, theirs.server_key


def test_server_certificate_for_another_name_reddens_round_trips_doctor_shows_it_and_up_restores_ours(
    healthy_lab: Lab, tmp_path: Path
) -> None:
    impostor = f"impostor-{uuid.uuid4().hex[:6]}.getting.started"
    cert, key = _impostor_certificate(healthy_lab, tmp_path, impostor)
    ours = pki_paths(healthy_lab.settings())
    profile = healthy_lab.settings().certificate_profile
    # As a person would: stage the files under the profile's names, then re-POST the profile with Overwrite.
    for name, path in ((ours.server_cert.name, cert), (ours.server_key.name, key)):
        response = healthy_lab.http.put(f"{healthy_lab.admin}/file/{name}", data=path.read_bytes(), timeout=10)
        assert response.status_code == 200, response.text
    files = {"Certificate": ours.server_cert.name, "Key": ours.server_key.name, "Overwrite": True}
    body = {"CertificateProfile": {profile: files}}
    response = healthy_lab.http.post(f"{healthy_lab.admin}/configuration", json=body, timeout=10)
    assert response.status_code == 200, response.text

    report = _verify(healthy_lab)
    assert _red_rows(report) == ROUND_TRIPS
    for row in _rows(report, 1) + _rows(report, 2):
        assert "hostname mismatch" in row["detail"] and healthy_lab.hostname in row["detail"], row
    checks = _doctor(healthy_lab)
    handshakes = {f"TLS on {healthy_lab.tls_port}", f"TLS on {healthy_lab.mtls_port}"}
    assert _failed(checks) == handshakes
    for name in handshakes:
        assert f"the presented certificate is for {impostor}" in checks[name]["detail"]
        assert f"does not cover {healthy_lab.hostname}" in checks[name]["detail"]
        assert "Amlen serves another certificate" in checks[name]["hint"]

    output = _up_repairs(healthy_lab)
    assert f"applied CertificateProfile {profile}" in " ".join(output.split())


def test_trusted_ca_removed_from_mutual_profile_reddens_mutual_round_trip_doctor_names_it_and_up_reattaches(
    healthy_lab: Lab,
) -> None:
    settings = healthy_lab.settings()
    profile, config = settings.mutual_security_profile, f"{healthy_lab.admin}/configuration"
    http = healthy_lab.http
    response = http.delete(f"{config}/TrustedCertificate/{profile}/myCA.pem", timeout=10)
    assert response.status_code == 200, response.text
    # Amlen rebuilds an endpoint's trust list only when its SecurityProfile is posted again (reference 3.8).
    current = http.get(f"{config}/SecurityProfile/{profile}", timeout=10).json()["SecurityProfile"]
    response = http.post(config, json={"SecurityProfile": current}, timeout=10)
    assert response.status_code == 200, response.text

    report = _verify(healthy_lab)
    assert _red_rows(report) == {(2, "3.1.1"), (2, "5")}
    for row in _rows(report, 2):
        assert "unknown CA" in row["detail"], row
    checks = _doctor(healthy_lab)
    trust = f"trusted CA of {profile}"
    assert _failed(checks) == {trust, f"TLS on {healthy_lab.mtls_port}"}
    assert f"{profile} has no trusted CA" in checks[trust]["detail"]
    assert "`invoke up` uploads myCA.pem" in checks[trust]["hint"]
    assert "unknown CA" in checks[f"TLS on {healthy_lab.mtls_port}"]["detail"]

    output = _up_repairs(healthy_lab)
    assert f"applied TrustedCertificate {profile}/myCA.pem" in " ".join(output.split())


def test_stopped_container_reddens_every_row_doctor_names_it_and_up_starts_it_again(healthy_lab: Lab) -> None:
    subprocess.run(["docker", "stop", healthy_lab.container_name], check=True, capture_output=True)

    report = _verify(healthy_lab)
    assert _red_rows(report) == ALL_ROWS
    assert {row["actual"] for row in report["rows"]} == {"not reached"}
    assert all("connection refused" in row["detail"] for row in report["rows"])
    checks = _doctor(healthy_lab)
    container = checks["lab container"]
    assert container["status"] == "FAIL"
    assert f"{healthy_lab.container_name} is exited" in container["detail"]
    assert "`invoke up` starts it again" in container["hint"]
    ports = {f"port {port} ({label})" for port, label in ((healthy_lab.admin_port, "admin"),
             (healthy_lab.tls_port, "TLS"), (healthy_lab.mtls_port, "mutual TLS"))}
    assert _failed(checks) == {"lab container"} | ports
    assert checks["Amlen status"]["status"] == "SKIP", "nothing downstream of the stopped container is blamed"

    output = _up_repairs(healthy_lab)
    assert f"container: started {healthy_lab.container_name}" in " ".join(output.split())
