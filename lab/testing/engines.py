"""testcontainers on every engine the lab supports: Ryuk, which engine to use, and where Podman published.

testcontainers is written for Docker. On Podman its reaper (Ryuk) needs the engine's socket inside a
privileged container, its gateway lookup reads a `HostConfig` that Podman's container list leaves out, and
rootless Podman on cgroup v1 drops a memory limit. `lab.testing.AmlenLabContainer` asks here instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import docker
import docker.errors
from docker.models.containers import Container
from testcontainers.core.config import testcontainers_config

from lab.container.engine import Engine, connect, docker_error_text
from lab.container.runtime import published_ports
from lab.errors import ContainerError, LabError

__all__ = ["Published", "docker_unreachable", "found_engine_url", "memory_not_limited", "podman_published",
           "settle_reaper"]

logger = logging.getLogger("lab.testing")


@dataclass(frozen=True)
class Published:
    """Where clients reach the started container: one host and the mapped ports."""

    host: str
    admin_port: int
    tls_port: int
    mtls_port: int


def podman_published(container: Container, engine: Engine, ports: Iterable[int]) -> Published:
    """Podman: the ports it published, dialled on this machine's loopback (or the engine's TCP host).

    testcontainers' own answer reads `HostConfig` from the container list, which Podman's API leaves out
    (a KeyError when it runs in a container, as on this project's CI), and its gateway is no address of
    this machine under rootless networking. Podman publishes on the machine that runs it, so a local
    socket means 127.0.0.1. `ports` are the admin, TLS and mutual-TLS ports inside, in that order.
    """
    wanted = list(ports)
    published = published_ports(container)
    missing = [port for port in wanted if port not in published]
    if missing or container.status != "running":
        raise RuntimeError(f"the container is {container.status}, ports {missing} not published")
    url = urlsplit(engine.url)
    host = "127.0.0.1" if url.scheme in ("unix", "npipe") or not url.hostname else url.hostname
    admin, tls, mtls = (published[port][1] for port in wanted)
    return Published(host, admin, tls, mtls)


def memory_not_limited(engine: Engine, memory: str) -> None:
    """Say, once, that the engine cannot limit memory (rootless Podman on cgroup v1) and the limit is dropped."""
    logger.warning("%s cannot limit a container's memory for this user (no memory cgroup controller): "
                   "mem_limit=%s is not applied, and Amlen sizes itself from the host's memory",
                   engine.describe(), memory)


def settle_reaper(client: docker.DockerClient, *, podman: bool = False) -> None:
    """Keep Ryuk when its image can be had (on Docker); otherwise switch it off for this process, and say so.

    testcontainers would otherwise fail every start where the reaper image cannot be pulled (no registry), and
    on Podman Ryuk needs the engine's socket mounted into a privileged container, which rootless Podman does
    not give. Cleanup then rests on stop(), which the context manager and the pytest fixtures always call;
    only a killed test process leaves containers (label org.testcontainers).
    """
    if testcontainers_config.ryuk_disabled:
        return
    if podman:
        logger.warning("Podman: testcontainers' reaper (Ryuk) is off for this session; containers are removed by "
                       "stop(). Set TESTCONTAINERS_RYUK_DISABLED=true to skip this message.")
        testcontainers_config.ryuk_disabled = True
        return
    image = testcontainers_config.ryuk_image
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
        return
    except docker.errors.DockerException as exc:
        logger.warning(
            "testcontainers' reaper image %s cannot be pulled (%s): Ryuk disabled for this session; "
            "containers are removed by stop(). Set TESTCONTAINERS_RYUK_DISABLED=true to skip this check.",
            image, docker_error_text(exc),
        )
    testcontainers_config.ryuk_disabled = True


def found_engine_url() -> str:
    """The engine `invoke up` would use (lab.container.engine: the usual sockets); the default socket when none answers,
    so the error below names what testcontainers tried."""
    try:
        engine = connect()
    except LabError:
        return "unix:///var/run/docker.sock"
    engine.client.close()
    return engine.url


def docker_unreachable(exc: Exception) -> LabError:
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    return ContainerError(
        f"Docker is not reachable at {where} ({docker_error_text(exc)})",
        "start Docker and check `docker info`; DOCKER_HOST (or TC_HOST) selects another engine",
    )
