"""`invoke up` / `invoke down` end to end, as a user runs them, on the real Docker engine and the Amlen stand-in.

The lab under test uses the real /etc/hosts (CI runs as root) with a unique host name; every test checks
that the file is byte-identical afterwards.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import LabEnv
from tests.helpers import admin_api

HOSTS = Path("/etc/hosts")


@pytest.fixture
def hosts_guard() -> Iterator[bytes]:
    """The real hosts file's bytes before the test; restored (and compared by the test) afterwards."""
    before = HOSTS.read_bytes()
    yield before
    if HOSTS.read_bytes() != before:
        HOSTS.write_bytes(before)


def _round_trip(host: str, port: int, ca: Path, cert: tuple[Path, Path] | None = None, count: int = 3) -> int:
    """Subscribe, publish `count` messages over TLS with hostname verification, return how many came back."""
    received: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-{port}-{time.monotonic_ns()}")
    context = ssl.create_default_context(cafile=str(ca))
    if cert:
        context.load_cert_chain(certfile=str(cert[1]), keyfile=str(cert[0]))
    client.tls_set_context(context)
    subscribed = []
    client.on_subscribe = lambda *a: subscribed.append(True)
    client.on_message = lambda _c, _u, msg: received.append(msg.payload)
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        client.subscribe("topic1/#", qos=1)
        deadline = time.monotonic() + 10
        while not subscribed and time.monotonic() < deadline:
            time.sleep(0.02)
        for i in range(count):
            client.publish("topic1/subtopic2", f"message {i}", qos=1).wait_for_publish(5)
        while len(received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
    return len(received)


def _lab_containers(lab: LabEnv) -> list[str]:
    client = docker.from_env()
    try:
        found = client.containers.list(all=True, filters={"label": f"amlen-lab.dir={lab.dir.resolve()}"})
        return [c.name for c in found]
    finally:
        client.close()


def _volume_exists(name: str) -> bool:
    return subprocess.run(["docker", "volume", "inspect", name], capture_output=True).returncode == 0


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "hint:" in errors[0]
    return errors[0]


def _nothing_left(lab: LabEnv, hosts_before: bytes) -> None:
    assert _lab_containers(lab) == []
    assert not _volume_exists(f"{lab.container_name}-data")
    assert not (lab.dir / "state.json").exists()
    assert HOSTS.read_bytes() == hosts_before


def test_up_verify_reup_down_down(lab_env: LabEnv, hosts_guard: bytes) -> None:
    first = lab_env.invoke("up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "up done" in first.stdout
    assert f"{lab_env.hostname}" in HOSTS.read_text()
    pki = lab_env.dir / "pki"
    assert _round_trip(lab_env.hostname, lab_env.tls_port, pki / "myCA.pem") == 3
    client = (pki / "test.client1.key", pki / "test.client1.crt")
    assert _round_trip(lab_env.hostname, lab_env.mtls_port, pki / "myCA.pem", client) == 3
    # Loopback only: nothing of the lab is published on other interfaces.
    ports = docker.from_env().containers.get(lab_env.container_name).attrs["NetworkSettings"]["Ports"]
    assert {binding["HostIp"] for bindings in ports.values() if bindings for binding in bindings} == {"127.0.0.1"}

    ledger = json.loads((lab_env.dir / "state.json").read_text())
    again = lab_env.invoke("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "all 6 objects already match" in again.stdout
    assert "container: already done" in again.stdout
    assert json.loads((lab_env.dir / "state.json").read_text()) == ledger

    down = lab_env.invoke("down")
    assert down.returncode == 0, down.stdout + down.stderr
    _nothing_left(lab_env, hosts_guard)
    assert (pki / "myCA.pem").exists(), "down keeps the certificates (the CA is precious)"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{lab_env.admin_port}/ima/v1/service/status", timeout=2)

    second = lab_env.invoke("down")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "no container to remove" in second.stdout


def test_down_with_no_lab_succeeds(lab_env: LabEnv, hosts_guard: bytes) -> None:
    result = lab_env.invoke("down")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "down done" in result.stdout
    _nothing_left(lab_env, hosts_guard)


def test_down_purge_removes_certificates(lab_env: LabEnv, hosts_guard: bytes) -> None:
    assert lab_env.invoke("certs").returncode == 0
    assert (lab_env.dir / "pki" / "myCA.pem").exists()
    result = lab_env.invoke("down", "--purge")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (lab_env.dir / "pki").exists()


def test_down_purge_after_up_removes_the_admin_credentials(lab_env: LabEnv, hosts_guard: bytes) -> None:
    up = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert up.returncode == 0, up.stdout + up.stderr
    admin = lab_env.dir / "admin"
    assert (admin / "netrc").exists(), sorted(p.name for p in admin.iterdir())
    down = lab_env.invoke("down", "--purge")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "the admin lock goes with the container" in down.stdout, down.stdout
    assert not admin.exists(), "the lab.admin key and the admin password must not outlive the container"
    assert not (lab_env.dir / "pki").exists()
    _nothing_left(lab_env, hosts_guard)


def test_missing_image_fails_cleanly(lab_env: LabEnv, hosts_guard: bytes) -> None:
    result = lab_env.invoke("up", LAB_IMAGE="amlen-lab/no-such-image:missing")
    line = _one_error_line(result)
    assert "cannot pull image amlen-lab/no-such-image:missing" in line and "LAB_IMAGE" in line
    _nothing_left(lab_env, hosts_guard)
    assert not (lab_env.dir / "pki" / "myCA.pem").exists(), "certificates made by the failed run are undone"


def test_port_taken_by_another_process_fails_cleanly(lab_env: LabEnv, hosts_guard: bytes) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", lab_env.mtls_port))
        squatter.listen()
        result = lab_env.invoke("up")
    line = _one_error_line(result)
    assert f"port {lab_env.mtls_port}" in line and "LAB_MTLS_PORT" in line
    _nothing_left(lab_env, hosts_guard)


def test_docker_unreachable_fails_cleanly(lab_env: LabEnv, hosts_guard: bytes) -> None:
    result = lab_env.invoke("up", DOCKER_HOST="unix:///nonexistent/docker.sock")
    line = _one_error_line(result)
    assert "Docker is not reachable" in line
    _nothing_left(lab_env, hosts_guard)


def test_readiness_timeout_fails_cleanly_with_server_log(
    lab_env: LabEnv, hosts_guard: bytes, slow_standin_image: str
) -> None:
    result = lab_env.invoke("up", LAB_IMAGE=slow_standin_image, LAB_READY_TIMEOUT="3")
    line = _one_error_line(result)
    assert "not ready after 3 s" in line and "LAB_READY_TIMEOUT" in line
    assert "imaserver" in result.stderr, "the tail of Amlen's log files is shown"
    _nothing_left(lab_env, hosts_guard)


def test_amlen_error_mid_way_rolls_back_this_run(lab_env: LabEnv, hosts_guard: bytes) -> None:
    # A hub that does not exist: Amlen accepts the profiles, then refuses the endpoint.
    result = lab_env.invoke("up", LAB_MESSAGE_HUB="NoSuchHub")
    line = _one_error_line(result)
    assert "Endpoint" in line and "NoSuchHub" in line
    assert "rolled back" in result.stderr
    _nothing_left(lab_env, hosts_guard)


def test_configure_failure_deletes_only_what_this_run_created(
    lab_env: LabEnv, hosts_guard: bytes, standin_image: str
) -> None:
    """Against an Amlen the lab did not start, a failed configure deletes its own objects through the API."""
    client = docker.from_env()
    container = client.containers.run(
        standin_image, detach=True, name=lab_env.container_name,
        ports={"9089/tcp": ("127.0.0.1", lab_env.admin_port)},
    )
    try:
        ok = lab_env.invoke("configure", "--no-hosts", "--no-verify", LAB_MESSAGE_HUB="NoSuchHub")
        _one_error_line(ok)
        base = f"http://127.0.0.1:{lab_env.admin_port}/ima/v1/configuration"
        for path in ("CertificateProfile/TestServer-from-ToyCA", "SecurityProfile/TestServerSecProfile"):
            assert requests.get(f"{base}/{path}", timeout=5).status_code == 404, path
        # The server's own objects are untouched.
        assert requests.get(f"{base}/MessageHub/DemoHub", timeout=5).status_code == 200
        assert not (lab_env.dir / "state.json").exists()
    finally:
        container.remove(force=True)
        client.close()


def test_second_up_on_the_same_lab_directory_refuses_clearly(lab_env: LabEnv, hosts_guard: bytes) -> None:
    from lab.files import lab_lock

    with lab_lock(lab_env.dir):  # another `up` or `down` holds the lab directory
        result = lab_env.invoke("up")
    line = _one_error_line(result)
    assert "another lab command is running" in line
    _nothing_left(lab_env, hosts_guard)


def test_keep_on_failure_keeps_this_run_for_inspection_and_down_removes_it(
    lab_env: LabEnv, hosts_guard: bytes
) -> None:
    result = lab_env.invoke("up", "--keep-on-failure", LAB_MESSAGE_HUB="NoSuchHub")
    _one_error_line(result)
    assert "kept what this run created" in result.stderr
    assert _lab_containers(lab_env) == [lab_env.container_name]
    api, admin = admin_api(lab_env.settings())
    assert admin.get(f"{api}/configuration/SecurityProfile/TestServerSecProfile", timeout=5).status_code == 200
    down = lab_env.invoke("down")
    assert down.returncode == 0, down.stdout + down.stderr
    _nothing_left(lab_env, hosts_guard)


def test_changing_the_image_of_a_running_lab_says_to_go_down_first(
    lab_env: LabEnv, hosts_guard: bytes, slow_standin_image: str
) -> None:
    assert lab_env.invoke("up", "--no-hosts", "--no-verify").returncode == 0
    result = lab_env.invoke("up", "--no-hosts", "--no-verify", LAB_IMAGE=slow_standin_image)
    line = _one_error_line(result)
    assert f"LAB_IMAGE is {slow_standin_image}" in line and "`invoke down` then `invoke up`" in line
    assert _lab_containers(lab_env) == [lab_env.container_name], "a failed run never removes the earlier lab"
    assert lab_env.invoke("down").returncode == 0
    _nothing_left(lab_env, hosts_guard)
