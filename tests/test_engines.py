"""The engine the lab talks to, found, named and used, on whichever engine DOCKER_HOST selects.

The same tests run in every pass of `.ci/run`: Docker, rootful Podman and rootless Podman (as an ordinary user).
What the engine is, they learn independently of the lab (its `/version` through the SDK, the `podman` command
line); where engines differ (rootless Podman on cgroup v1 cannot limit memory) each asserts what that engine
must do, never nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab.container.engine import Endpoint, Engine, candidate_sockets, connect, is_local
from lab.container.references import canonical_reference
from lab.errors import ContainerError
from tests.conftest import LabEnv
from tests.engine_facts import EngineFacts, engine_facts


@pytest.fixture(scope="module")
def expected() -> EngineFacts:
    return engine_facts()


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"
    return result


def _inspect(name: str, kind: str = "container") -> dict[str, Any]:
    found: dict[str, Any] = json.loads(_run("docker", kind, "inspect", name).stdout)[0]
    return found


def _ok(lab: LabEnv, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = lab.invoke(*args, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr with the terminal's line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


def _left_behind(lab: LabEnv, podman: bool) -> tuple[list[str], list[str]]:
    """Containers and volumes labelled for the lab, as the engine's own command line lists them."""
    label = f"label=amlen-lab.dir={lab.dir}"
    tool = "podman" if podman else "docker"
    containers = _run(tool, "ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split()
    volumes = _run(tool, "volume", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split()
    return containers, volumes


def test_up_names_the_engine_and_status_doctor_logs_down_work_on_it(lab_env: LabEnv, expected: EngineFacts) -> None:
    up = _ok(lab_env, "up", "--no-hosts", COLUMNS="400")
    said = _said(up)
    assert said.startswith(f"✔ [1/10] preflight: {expected.line}; ports"), said[:300]
    assert "checks as expected" in said and "NOT as expected" not in said

    status = json.loads(_ok(lab_env, "status", "--json").stdout)
    assert status["engine"]["describe"] == expected.line
    assert status["container"]["state"] == "running" and status["amlen"]["ready"]
    assert expected.line in _said(_ok(lab_env, "status", COLUMNS="200"))
    doctor = {c["name"]: c for c in json.loads(lab_env.invoke("doctor", "--json").stdout)["checks"]}
    assert doctor["engine"]["status"] == "OK" and doctor["engine"]["detail"] == f"{expected.line} reachable"
    assert doctor["lab volume"]["status"] == "OK" and "Store.PersistFileSizeMB = 256" in doctor["lab volume"]["detail"]
    assert doctor["image"]["status"] == "OK" and "the container runs it" in doctor["image"]["detail"]
    assert "Amlen stand-in" in _ok(lab_env, "logs").stdout

    memory = int(_inspect(lab_env.container_name)["HostConfig"]["Memory"])
    if expected.memory_limits:
        assert memory == 1 << 30
        assert doctor["container memory"]["detail"].startswith("1.0 GiB")
    else:  # rootless Podman without a memory controller: said once, in one line, and the lab goes on
        assert memory == 0
        notice = [line for line in up.stdout.splitlines() if "cannot limit a container's memory" in line]
        assert len(notice) == 1 and "Amlen sizes itself from the host's" in notice[0]
        assert "cannot limit memory for this user" in doctor["container memory"]["detail"]
    again = _said(_ok(lab_env, "up", "--no-hosts", "--no-verify"))
    assert "container: already done" in again, "a second up keeps the container (its image and memory match)"

    _ok(lab_env, "down")
    assert _left_behind(lab_env, expected.podman) == ([], [])


def test_rootless_volume_belongs_to_the_mapped_uid_and_up_needed_no_root(
    lab_env: LabEnv, expected: EngineFacts
) -> None:
    _ok(lab_env, "up", "--no-hosts", "--no-verify")
    try:
        inside = _run("docker", "exec", lab_env.container_name, "stat", "-c", "%u:%g",
                      "/var/lib/amlen-server/data/config/server.cfg").stdout.strip()
        assert inside == "463:463", "the store bound in server.cfg stays the server's own file"
        mountpoint = Path(_inspect(f"{lab_env.container_name}-data", "volume")["Mountpoint"])
        host_uid = (mountpoint / "data/config/server.cfg").stat().st_uid
        if expected.rootless:
            assert os.geteuid() != 0, "the rootless pass runs as an ordinary user"
            start = _subid_start(Path("/etc/subuid"))
            assert host_uid == start + 463 - 1, "uid 463 inside is sub-uid start + 462 on the host"
        else:
            assert host_uid == 463
    finally:
        _ok(lab_env, "down")


def _subid_start(path: Path) -> int:
    import pwd

    name = pwd.getpwuid(os.geteuid()).pw_name
    for line in path.read_text().splitlines():
        owner, start, _count = line.split(":")
        if owner in (name, str(os.geteuid())):
            return int(start)
    raise AssertionError(f"no entry for {name} in {path}")


def test_a_docker_context_on_another_socket_is_the_engine_used(lab_env: LabEnv, expected: EngineFacts,
                                                              tmp_path: Path) -> None:
    # The context's endpoint is another path to the engine under test; the default socket (Docker's, where the
    # pass runs on Podman) must not be what the lab talks to.
    link = tmp_path / "engine.sock"
    link.symlink_to(expected.url.removeprefix("unix://"))
    config = tmp_path / "docker-config"
    _run("docker", "--config", str(config), "context", "create", "lab-engine", "--docker", f"host=unix://{link}")
    _run("docker", "--config", str(config), "context", "use", "lab-engine")
    env = {k: v for k, v in lab_env.env.items() if k != "DOCKER_HOST"}
    lab = LabEnv(lab_env.dir, {**env, "DOCKER_CONFIG": str(config)})
    want = expected.line.replace(expected.url, f"unix://{link}")
    try:
        up = _said(_ok(lab, "up", "--no-hosts", "--no-verify", COLUMNS="400"))
        assert f"preflight: {want};" in up
        status = json.loads(_ok(lab, "status", "--json").stdout)
        assert status["engine"]["source"] == "docker context lab-engine" and status["container"]["state"] == "running"
    finally:
        _ok(lab, "down")


@pytest.mark.parametrize("host", ["ssh://lab@build.example.invalid", "tcp://192.0.2.10:2375"])
def test_an_engine_on_another_machine_stops_up_before_anything_is_made(lab_env: LabEnv, host: str) -> None:
    # Nothing is dialled: the address alone says it is not this machine (192.0.2.0/24 is for documentation).
    result = lab_env.invoke("up", "--no-hosts", DOCKER_HOST=host)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert f"the engine at {host} (DOCKER_HOST) is not on this machine" in errors[0]
    assert "invoke configure --admin-url" in errors[0]
    assert not (lab_env.dir / "pki").exists() and not (lab_env.dir / "state.json").exists()


def test_no_engine_reachable_names_every_socket_tried(tmp_path: Path) -> None:
    file = tmp_path / "not-a-socket"
    file.write_text("")
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(dead))  # a socket file nobody listens on any more, as after a crashed engine
    absent = tmp_path / "absent.sock"
    with pytest.raises(ContainerError) as caught:
        connect({}, candidates=[f"unix://{absent}", f"unix://{file}", f"unix://{dead}"])
    assert caught.value.message == (f"Docker is not reachable: tried {absent} (absent), {file} (not a socket), "
                                    f"{dead} (refused)")
    assert "DOCKER_HOST" in (caught.value.hint or "")


def test_usual_sockets_and_what_counts_as_this_machine() -> None:
    home = Path("/home/ann")
    linux = candidate_sockets({"XDG_RUNTIME_DIR": "/run/user/1000"}, home=home, system="Linux")
    assert linux[:3] == ["unix:///var/run/docker.sock", "unix:///run/user/1000/podman/podman.sock",
                         "unix:///run/podman/podman.sock"]
    mac = candidate_sockets({"TMPDIR": "/var/folders/x/T"}, home=home, system="Darwin")
    for path in ("/home/ann/.colima/default/docker.sock", "/home/ann/.rd/docker.sock",
                 "/home/ann/.docker/run/docker.sock", "/var/folders/x/T/podman/podman-machine-default-api.sock"):
        assert f"unix://{path}" in mac
    for local in ("unix:///var/run/docker.sock", "npipe:////./pipe/docker_engine", "tcp://127.0.0.1:2375",
                  "tcp://localhost:2375", "tcp://[::1]:2375"):
        assert is_local(local), local
    for remote in ("ssh://lab@build.example.invalid", "tcp://192.0.2.10:2375", "tcp://build.example.invalid:2376"):
        assert not is_local(remote), remote


def test_found_on_the_usual_sockets_without_docker_host(lab_env: LabEnv, expected: EngineFacts, tmp_path: Path) -> None:
    # No DOCKER_HOST and no context: rootless Podman's socket under XDG_RUNTIME_DIR is found (or, as root, the
    # first usual socket that answers).
    env = {k: v for k, v in lab_env.env.items() if k != "DOCKER_HOST"}
    lab = LabEnv(lab_env.dir, {**env, "DOCKER_CONFIG": str(tmp_path / "empty-config")})
    status = json.loads(_ok(lab, "status", "--json").stdout)
    if expected.rootless:
        assert status["engine"]["url"] == expected.url and status["engine"]["source"] == "found"
    else:
        assert status["engine"]["url"] in candidate_sockets() and status["engine"]["source"] == "found"


def test_the_engines_own_command_line_lists_the_lab_with_its_labels(lab_env: LabEnv, expected: EngineFacts) -> None:
    """The container and volume are the engine's own: its command line (podman, as that user) lists them."""
    tool = "podman" if expected.podman else "docker"
    assert shutil.which(tool), f"{tool} command line missing"
    _ok(lab_env, "up", "--no-hosts", "--no-verify")
    try:
        containers, volumes = _left_behind(lab_env, expected.podman)
        assert containers == [lab_env.container_name] and volumes == [f"{lab_env.container_name}-data"]
        labels = json.loads(_run(tool, "inspect", lab_env.container_name).stdout)[0]["Config"]["Labels"]
        assert labels["amlen-lab.dir"] == str(lab_env.dir) and labels["amlen-lab.name"] == lab_env.container_name
    finally:
        _ok(lab_env, "down")
    assert _left_behind(lab_env, expected.podman) == ([], [])


def test_image_names_compare_as_each_engine_spells_them() -> None:
    assert canonical_reference("localhost/amlen-lab/amlen-standin:1") == "amlen-lab/amlen-standin:1"  # Podman
    assert canonical_reference("docker.io/library/debian:12") == canonical_reference("debian:12") == "debian:12"
    assert canonical_reference("docker.io/amlen/amlen-server") == "amlen/amlen-server:latest"
    for unchanged in ("quay.io/amlen/amlen-server:main", "localhost:5000/amlen:1", "sha256:7acec2fbef20",
                      "quay.io/amlen/amlen-server@sha256:" + "ab" * 32):
        assert canonical_reference(unchanged) == unchanged


class _Answers:
    """A client that answers `info()` as the named product's engine did (no engine needed)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info

    def info(self) -> dict[str, Any]:
        return self._info


@pytest.mark.parametrize(("url", "server", "info", "line"), [
    ("unix:///var/run/docker.sock", "Docker/27.3.1 (linux)",
     {"OperatingSystem": "Docker Desktop", "Name": "docker-desktop", "SecurityOptions": []},
     "Docker Desktop 27.3.1, rootful, unix:///var/run/docker.sock"),
    ("unix:///Users/ann/.colima/default/docker.sock", "Docker/27.4.0 (linux)",
     {"OperatingSystem": "Ubuntu 24.04.1 LTS", "Name": "colima", "SecurityOptions": []},
     "Colima 27.4.0, rootful, unix:///Users/ann/.colima/default/docker.sock"),
    ("unix:///Users/ann/.rd/docker.sock", "Docker/26.1.5 (linux)",
     {"OperatingSystem": "Alpine Linux v3.20", "Name": "lima-rancher-desktop", "SecurityOptions": []},
     "Rancher Desktop 26.1.5, rootful, unix:///Users/ann/.rd/docker.sock"),
    ("unix:///run/user/1000/docker.sock", "Docker/27.3.1 (linux)",
     {"OperatingSystem": "Ubuntu 24.04.1 LTS", "Name": "laptop", "SecurityOptions": ["name=seccomp", "name=rootless"]},
     "Docker 27.3.1, rootless, unix:///run/user/1000/docker.sock"),
])
def test_desktop_products_and_rootless_docker_are_named(url: str, server: str, info: dict[str, Any],
                                                        line: str) -> None:
    engine = Engine(_Answers(info), Endpoint(url, "found"), server)  # type: ignore[arg-type]
    assert engine.describe() == line and not engine.is_podman
