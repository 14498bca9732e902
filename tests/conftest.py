"""Shared fixtures: the Amlen stand-in image, a private lab per test, and `invoke` run like a user runs it.

Tests that need Docker really run (CI starts dockerd in .ci/run); nothing here skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest

from lab.settings import Settings, load_settings
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
INVOKE = str(Path(sys.executable).with_name("invoke"))


@pytest.fixture
def no_lab_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own LAB_* values must not leak into a test's tmp-dir lab."""
    for key in list(os.environ):
        if key.startswith("LAB_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def standin_image() -> str:
    """The Amlen stand-in image (test infrastructure): $STANDIN_IMAGE, else built or reused now."""
    image = os.environ.get("STANDIN_IMAGE")
    if image:
        return image
    result = subprocess.run(["bash", str(ROOT / "tests/standin/build-image.sh")], capture_output=True, text=True,
                            check=True, timeout=900)
    return result.stdout.strip().splitlines()[-1]


@dataclass
class LabEnv:
    """One private lab: its directory, unique names and free ports, as LAB_* variables."""

    dir: Path
    env: dict[str, str]

    @property
    def tls_port(self) -> int:
        return int(self.env["LAB_TLS_PORT"])

    @property
    def mtls_port(self) -> int:
        return int(self.env["LAB_MTLS_PORT"])

    @property
    def admin_port(self) -> int:
        return int(self.env["LAB_ADMIN_PORT"])

    @property
    def workshop_port(self) -> int:
        return int(self.env["LAB_WORKSHOP_PORT"])

    @property
    def hostname(self) -> str:
        return self.env["LAB_HOSTNAME"]

    @property
    def container_name(self) -> str:
        return self.env["LAB_CONTAINER_NAME"]

    @classmethod
    def new(cls, directory: Path, image: str, *, prefix: str = "amlen-lab-test", **overrides: str) -> Self:
        """A lab in `directory` on `image`: unique container and host name, free ports, a small memory limit."""
        tag = uuid.uuid4().hex[:8]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        env.update({
            "LAB_DIR": str(directory),
            "LAB_IMAGE": image,
            "LAB_CONTAINER_NAME": f"{prefix}-{tag}",
            "LAB_HOSTNAME": f"lab-{tag}.getting.started",
            "LAB_TLS_PORT": str(free_port()),
            "LAB_MTLS_PORT": str(free_port()),
            "LAB_ADMIN_PORT": str(free_port()),
            "LAB_WORKSHOP_PORT": str(free_port()),
            "LAB_READY_TIMEOUT": "60",
            "LAB_MEMORY": "1g",  # Amlen refuses every connection under 1 GiB (CWLNA1119)
            **overrides,
        })
        return cls(directory, env)

    def settings(self) -> Settings:
        """The Settings the subprocesses build from these LAB_* variables, for in-process helpers."""
        chosen = {name: self.env[f"LAB_{name.upper()}"] for name in ("admin_security", "pki")
                  if self.env.get(f"LAB_{name.upper()}")}
        return load_settings(dir=self.dir, hostname=self.hostname, tls_port=self.tls_port,
                             mtls_port=self.mtls_port, admin_port=self.admin_port,
                             workshop_port=self.workshop_port, **chosen)

    def invoke(self, *args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run `invoke <args>` in a subprocess, from the repository, like a user at a terminal would."""
        env = {**self.env, **extra_env}
        return subprocess.run([INVOKE, "-r", str(ROOT), *args], capture_output=True, text=True, env=env,
                              cwd=self.dir.parent, timeout=timeout)


def remove_lab_container(lab: LabEnv) -> None:
    """Whatever a test left behind (a failing assertion mid-way) must not leak into the next test."""
    subprocess.run(["docker", "rm", "-f", lab.container_name], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "-f", f"{lab.container_name}-data"], capture_output=True)


@contextmanager
def lab_up(lab: LabEnv, *up_args: str) -> Iterator[LabEnv]:
    """`invoke up <up_args>` for the block (a module's shared lab), `invoke down` after it; both must succeed.
    When the block fails, `down` still runs (its hosts entry must not outlive the test), unchecked."""
    down_done = False
    try:
        up = lab.invoke("up", *up_args)
        assert up.returncode == 0, f"invoke up {' '.join(up_args)} failed:\n{up.stdout}\n{up.stderr}"
        yield lab
        down_done = True
        down = lab.invoke("down")
        assert down.returncode == 0, f"invoke down failed:\n{down.stdout}\n{down.stderr}"
    finally:
        if not down_done:
            lab.invoke("down")
        remove_lab_container(lab)


@pytest.fixture
def lab_env(tmp_path: Path, standin_image: str) -> Iterator[LabEnv]:
    """A lab in a temp directory on the stand-in image, with its own container name, host name and ports."""
    lab = LabEnv.new(tmp_path / "lab", standin_image)
    yield lab
    remove_lab_container(lab)


def standin_variant(standin_image: str, label: str, **env: str) -> str:
    """The stand-in image with `env` baked in (a setting a test needs from the container's first second),
    tagged `<repo>:<label>-<tag>`; built once per tag, reused while the stand-in is unchanged."""
    repo, tag = standin_image.rsplit(":", 1)
    variant = f"{repo}:{label}-{tag}"
    dockerfile = f"FROM {standin_image}\n" + "".join(f"ENV {key}={value}\n" for key, value in env.items())
    subprocess.run(["docker", "build", "-q", "-t", variant, "-"], input=dockerfile, text=True, check=True,
                   capture_output=True, timeout=300)
    return variant


@pytest.fixture(scope="session")
def slow_standin_image(standin_image: str) -> str:
    """The stand-in told to stay in its starting states for 10 minutes (for readiness timeouts)."""
    return standin_variant(standin_image, "slow", STANDIN_START_DELAY="600")


# The mosquitto-backed lab (verification and doctor tests without a container); imported here so that every
# test module can ask for these fixtures by name.
from tests.mosquitto_lab import broker, hosts_entry, lab_settings  # noqa: E402, F401
