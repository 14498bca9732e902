"""Under 1 GiB Amlen accepts its configuration and refuses every connection (CWLNA1119). The lab names that
cause in words instead of blaming TLS, and `up` repairs a lab whose container lost its memory."""

from __future__ import annotations

import json
import subprocess
import time

import docker

from tests.conftest import LabEnv


def _ok(lab: LabEnv, *args: str) -> subprocess.CompletedProcess[str]:
    result = lab.invoke(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_doctor_names_cwlna1119_and_up_gives_the_container_its_memory_back(lab_env: LabEnv) -> None:
    _ok(lab_env, "up", "--no-hosts", "--no-verify")
    # Someone shrinks the container below Amlen's floor (docker update, a compose file, an old setting).
    _recreate_with_memory(lab_env.container_name, "768m")
    deadline = time.monotonic() + 120
    while not json.loads(_ok(lab_env, "status", "--json").stdout)["amlen"].get("ready"):
        assert time.monotonic() < deadline, "Amlen did not come back after the restart"
        time.sleep(0.2)
    doctor = lab_env.invoke("doctor", "--json")
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    assert doctor.returncode == 1
    assert checks["container memory"]["status"] == "FAIL"
    assert "CWLNA1119" in checks["container memory"]["detail"]
    assert checks["Amlen's log"]["status"] == "FAIL"
    assert "2 x 4000 connections per whole GiB" in checks["Amlen's log"]["detail"]
    assert "Traceback" not in doctor.stderr

    repaired = _ok(lab_env, "up", "--no-hosts")  # the container is re-made with LAB_MEMORY, on its volume
    assert "created" in repaired.stdout and "checks as expected" in repaired.stdout
    memory = subprocess.run(["docker", "inspect", "-f", "{{.HostConfig.Memory}}", lab_env.container_name],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert int(memory) == 1 << 30
    _ok(lab_env, "down")


def _recreate_with_memory(name: str, memory: str) -> None:
    """The lab's container made again on its volume with `memory` (Podman 4.3 has no `docker update`)."""
    client = docker.from_env()
    try:
        old = client.containers.get(name)
        bindings = old.attrs["HostConfig"]["PortBindings"]
        ports = {key: (found[0]["HostIp"], int(found[0]["HostPort"])) for key, found in bindings.items() if found}
        old.stop(timeout=5)
        old.remove()
        client.containers.run(old.attrs["Image"], name=name, detach=True, labels=old.labels, ports=ports,
                              volumes={f"{name}-data": {"bind": "/var/lib/amlen-server", "mode": "rw"}},
                              mem_limit=memory)
    finally:
        client.close()
