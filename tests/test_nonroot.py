"""The first run as an ordinary user: `scripts/up` and `invoke down` by a non-root member of the docker group.

A real user account is made for the module (docker group, password-less sudo, as on a developer laptop where
sudo would ask for the password), with its own clone of the repository. `scripts/up` runs in a terminal (a
pty, through `script`), so the lab says it needs root for one line of /etc/hosts and runs that step alone
through sudo; `invoke down` removes the line the same way. The real /etc/hosts must be byte-identical
afterwards, and no file in the user's clone (lab directory included) may belong to root. Without a terminal
the same user gets today's one-line message and nothing is created.

These tests create a user, so they need root: CI runs the suite as root (`.ci/run`).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import free_port

HOSTS = Path("/etc/hosts")
SUDOERS = Path("/etc/sudoers.d/amlen-lab-test")


@dataclass
class User:
    """The module's ordinary user, their clone of the repository and the lab's settings for them."""

    name: str
    home: Path
    checkout: Path
    env: dict[str, str]

    def run(self, command: str, *, terminal: bool, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """`command` in the user's clone, as the user, with the lab's LAB_* settings; in a pty when `terminal`."""
        assignments = " ".join(shlex.quote(f"{key}={value}") for key, value in self.env.items())
        line = f"cd {shlex.quote(str(self.checkout))} && env {assignments} {command}"
        if terminal:
            argv = ["runuser", "-u", self.name, "--", "script", "-qec", line, "/dev/null"]
        else:
            argv = ["runuser", "-u", self.name, "--", "bash", "-c", line]
        return subprocess.run(argv, stdin=subprocess.DEVNULL if not terminal else None, capture_output=True,
                              text=True, timeout=timeout)


def _root_owned(tree: Path) -> list[str]:
    return [str(path) for path in tree.rglob("*") if path.lstat().st_uid == 0]


@pytest.fixture(scope="module")
def user(standin_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    assert os.geteuid() == 0, "these tests create a user account: run the suite as root (CI does)"
    name = f"lab{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--create-home", "--groups", "docker", "--shell", "/bin/bash", name], check=True)
    SUDOERS.parent.mkdir(exist_ok=True)
    SUDOERS.write_text(f"{name} ALL=(ALL) NOPASSWD: ALL\n")
    SUDOERS.chmod(0o440)
    home = Path(pwd.getpwnam(name).pw_dir)
    checkout = home / "amlen-lab"
    # The user's own clone of what is committed and changed here (not .venv, .lab or caches).
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for relative in files:
        if (ROOT / relative).is_file():
            target = checkout / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, target)
    subprocess.run(["chown", "-R", f"{name}:{name}", str(checkout)], check=True)
    tag = uuid.uuid4().hex[:8]
    env = {
        "LAB_IMAGE": standin_image, "LAB_CONTAINER_NAME": f"amlen-lab-nonroot-{tag}",
        "LAB_HOSTNAME": f"nonroot-{tag}.getting.started", "LAB_MEMORY": "1g", "LAB_READY_TIMEOUT": "120",
        "LAB_TLS_PORT": str(free_port()), "LAB_MTLS_PORT": str(free_port()), "LAB_ADMIN_PORT": str(free_port()),
        "LAB_WORKSHOP_PORT": str(free_port()),
    }
    the_user = User(name, home, checkout, env)
    try:
        yield the_user
    finally:
        subprocess.run(["docker", "rm", "-f", env["LAB_CONTAINER_NAME"]], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"{env['LAB_CONTAINER_NAME']}-data"], capture_output=True)
        lines = HOSTS.read_bytes().splitlines(keepends=True)
        kept = [line for line in lines if env["LAB_HOSTNAME"].encode() not in line]
        if kept != lines:
            HOSTS.write_bytes(b"".join(kept))
        SUDOERS.unlink(missing_ok=True)
        subprocess.run(["userdel", "--remove", name], capture_output=True)


def test_without_a_terminal_up_explains_the_hosts_line_and_creates_nothing(user: User) -> None:
    setup = user.run("scripts/setup", terminal=False)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    before = HOSTS.read_bytes()
    result = user.run(".venv/bin/invoke up", terminal=False, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "is not writable by you, and the lab needs one line in it" in result.stderr
    assert "sudo env" in result.stderr, "the hint is the exact command to run"
    assert HOSTS.read_bytes() == before
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert user.env["LAB_CONTAINER_NAME"] not in names
    assert _root_owned(user.checkout) == []


def test_scripts_up_then_down_as_a_user_in_the_docker_group_with_sudo(user: User) -> None:
    before = HOSTS.read_bytes()
    up = user.run("scripts/up", terminal=True)
    output = up.stdout + up.stderr
    assert up.returncode == 0, output
    assert "needs one line in it: that step alone runs through sudo" in output
    assert "(through sudo)" in output
    assert "checks as expected" in output, "verification ran against the name the hosts line resolves"
    assert user.env["LAB_HOSTNAME"] in HOSTS.read_text()
    assert _root_owned(user.checkout) == [], "nothing but the hosts line was done as root"

    down = user.run(".venv/bin/invoke down", terminal=True, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "through sudo" in down.stdout + down.stderr
    assert HOSTS.read_bytes() == before, "the hosts file is byte-identical after up and down"
    assert _root_owned(user.checkout) == []
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert user.env["LAB_CONTAINER_NAME"] not in names
