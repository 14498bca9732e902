"""compose/amlen.yaml + `invoke configure`: the lab on an Amlen it did not start, and `down` that removes only
the lab's objects (through the admin API) and leaves the user's container running."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, LabEnv
from tests.engine_facts import engine_facts
from tests.helpers import admin_api

COMPOSE_FILE = ROOT / "compose" / "amlen.yaml"


def _compose_command() -> list[str]:
    """Compose v2 (`docker compose`) where the plugin exists, else Debian's Compose v1 (`docker-compose`)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    assert found, "neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose)"
    return [found]


@pytest.fixture
def compose_amlen(lab_env: LabEnv, tmp_path: Path) -> Iterator[LabEnv]:
    """The stand-in started by compose/amlen.yaml with the lab's LAB_* variables, removed with its volume."""
    lab_env.env["LAB_STORE_FILE_MB"] = "300"  # not the default, so the test sees the setting arrive
    base = [*_compose_command(), "-p", lab_env.container_name, "-f", str(COMPOSE_FILE)]
    up = subprocess.run([*base, "up", "-d"], env=lab_env.env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    try:
        yield lab_env
    finally:
        subprocess.run([*base, "down", "-v"], env=lab_env.env, capture_output=True, timeout=300)


def test_compose_file_publishes_loopback_only_with_volume_and_memory(compose_amlen: LabEnv) -> None:
    inspect = subprocess.run(["docker", "inspect", compose_amlen.container_name], capture_output=True, text=True,
                             check=True).stdout
    info = json.loads(inspect)[0]
    bindings = [b for bs in info["NetworkSettings"]["Ports"].values() if bs for b in bs]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert {int(b["HostPort"]) for b in bindings} == {
        compose_amlen.admin_port, compose_amlen.tls_port, compose_amlen.mtls_port, compose_amlen.workshop_port}
    assert any(m["Destination"] == "/var/lib/amlen-server" and m["Type"] == "volume" for m in info["Mounts"])
    # LAB_MEMORY=1g from the test lab; rootless Podman on cgroup v1 drops every limit
    assert info["HostConfig"]["Memory"] == (1 << 30 if engine_facts().memory_limits else 0)


def test_compose_bounds_the_store_of_a_new_volume_as_amlens_own_file(compose_amlen: LabEnv) -> None:
    read = subprocess.run(["docker", "exec", compose_amlen.container_name, "sh", "-c",
                           "stat -c '%u:%g' /var/lib/amlen-server/data/config/server.cfg; "
                           "grep '^Store.PersistFileSizeMB' /var/lib/amlen-server/data/config/server.cfg"],
                          capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    owner, line = read.stdout.splitlines()
    assert owner == "463:463", "written by the image's own user, so the file stays Amlen's"
    assert line == f"Store.PersistFileSizeMB = {compose_amlen.env['LAB_STORE_FILE_MB']}"


def test_configure_then_down_leaves_the_users_container_and_objects(compose_amlen: LabEnv) -> None:
    configured = compose_amlen.invoke("configure", "--no-hosts")
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert "configure done" in configured.stdout
    assert "checks as expected" in configured.stdout
    api, admin = admin_api(compose_amlen.settings())
    base = f"{api}/configuration"
    assert admin.get(f"{base}/Endpoint/ClientCertsTLS", timeout=5).status_code == 200

    again = compose_amlen.invoke("configure", "--no-hosts")
    assert again.returncode == 0 and "all 6 objects already match" in again.stdout

    down = compose_amlen.invoke("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "deleted 6 Amlen objects through the admin API" in down.stdout
    assert "kept the admin API locked (TLS + client certificate)" in " ".join(down.stdout.split())
    for path in ("Endpoint/ClientCertsTLS", "Endpoint/TLSTestPort", "SecurityProfile/TestServerSecProfile",
                 "CertificateProfile/TestServer-from-ToyCA"):
        assert admin.get(f"{base}/{path}", timeout=5).status_code == 404, path
    # What the server had before the lab came stays, and so does the user's container (locked as the lab left it:
    # opening it again would hand it to every web page; the lab directory keeps what opens it).
    assert admin.get(f"{base}/MessageHub/DemoHub", timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{compose_amlen.admin_port}/ima/v1/service/status", timeout=5)
    state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", compose_amlen.container_name],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert state == "true"
    assert not (compose_amlen.dir / "state.json").exists()
