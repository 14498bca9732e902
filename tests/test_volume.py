"""The lab volume stays light: a new volume gets Amlen's store bounded before the first start; an existing one is
left as it is; `status` and `doctor` say what it holds. On the real Docker engine and the Amlen stand-in."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import LabEnv

SERVER_CFG = "/var/lib/amlen-server/data/config/server.cfg"


def _ok(lab: LabEnv, *args: str) -> subprocess.CompletedProcess[str]:
    result = lab.invoke(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _server_cfg(lab: LabEnv) -> tuple[str, list[str]]:
    """The owner of the volume's server.cfg and its Store.PersistFileSizeMB lines."""
    read = subprocess.run(["docker", "exec", lab.container_name, "sh", "-c",
                           f"stat -c '%u:%g' {SERVER_CFG}; grep '^Store.PersistFileSizeMB' {SERVER_CFG} || true"],
                          capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    owner, *lines = read.stdout.splitlines()
    return owner, lines


def _status(lab: LabEnv) -> dict[str, object]:
    data: dict[str, object] = json.loads(_ok(lab, "status", "--json").stdout)
    return data


def test_up_bounds_the_store_of_a_new_volume_and_keeps_it_amlens_file(lab_env: LabEnv) -> None:
    lab_env.env["LAB_STORE_FILE_MB"] = "300"
    _ok(lab_env, "up", "--no-hosts", "--no-verify")
    owner, lines = _server_cfg(lab_env)
    assert owner == "463:463", "the server runs as uid/gid 463 and keeps its own configuration file"
    assert lines == ["Store.PersistFileSizeMB = 300"]
    volume = _status(lab_env)["volume"]
    assert isinstance(volume, dict) and volume["store_file_mb"] == 300
    wide = lab_env.invoke("status", COLUMNS="200")  # one row per line, as in a wide terminal
    assert "store files 300 MiB each" in wide.stdout
    _ok(lab_env, "down")


def test_an_existing_volume_is_left_as_it_is(lab_env: LabEnv) -> None:
    lab_env.env["LAB_STORE_FILE_MB"] = "300"
    _ok(lab_env, "up", "--no-hosts", "--no-verify")
    # The container goes, its volume stays (a crash, `docker rm`): the next `up` must not touch that volume.
    subprocess.run(["docker", "rm", "-f", lab_env.container_name], check=True, capture_output=True)
    lab_env.env["LAB_STORE_FILE_MB"] = "512"
    _ok(lab_env, "up", "--no-hosts", "--no-verify")
    assert _server_cfg(lab_env) == ("463:463", ["Store.PersistFileSizeMB = 300"])
    doctor = json.loads(lab_env.invoke("doctor", "--json").stdout)
    (volume_check,) = [check for check in doctor["checks"] if check["name"] == "lab volume"]
    assert volume_check["data"]["store_file_mb"] == 300
    _ok(lab_env, "down")
    gone = subprocess.run(["docker", "volume", "inspect", f"{lab_env.container_name}-data"], capture_output=True)
    assert gone.returncode != 0, "down removes the lab's volume, old or new"
