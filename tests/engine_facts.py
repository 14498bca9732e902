"""What the engine under test (DOCKER_HOST, else Docker's socket) is, read without the lab's own code.

`.ci/run` runs the container tests on Docker, rootful Podman and rootless Podman; tests that must expect
different outcomes (rootless Podman on cgroup v1 cannot limit memory) ask here, through the SDK's `/version`
and Podman's own command line.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass

import docker


@dataclass(frozen=True)
class EngineFacts:
    """Name, version, rootless or not, socket, and whether a container's memory can be limited."""

    name: str
    version: str
    rootless: bool
    url: str
    memory_limits: bool

    @property
    def line(self) -> str:
        """How the lab must name it: "Podman 4.3.1, rootless, unix:///run/user/1000/podman/podman.sock"."""
        return f"{self.name} {self.version}, {'rootless' if self.rootless else 'rootful'}, {self.url}"

    @property
    def podman(self) -> bool:
        return self.name == "Podman"


@functools.cache
def engine_facts() -> EngineFacts:
    """The engine the tests run against."""
    url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    client = docker.from_env()
    try:
        version = client.version()
        podman = next((c for c in version.get("Components") or [] if c.get("Name") == "Podman Engine"), None)
        if podman is None:
            rootless = any("rootless" in option for option in client.info().get("SecurityOptions") or [])
            return EngineFacts("Docker", version["Version"], rootless, url, True)
    finally:
        client.close()
    found = subprocess.run(["podman", "info", "--format", "json"], capture_output=True, text=True, timeout=120,
                           check=True)
    host = json.loads(found.stdout)["host"]
    rootless = bool(host["security"]["rootless"])
    return EngineFacts("Podman", str(podman["Version"]), rootless, url,
                       not rootless or "memory" in (host.get("cgroupControllers") or []))
