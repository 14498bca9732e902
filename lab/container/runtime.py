"""The container runtime, through the docker SDK: one labelled Amlen container and its data volume.

Only this module talks to Docker and translates docker SDK errors into `ContainerError`s. Everything the lab
creates carries `amlen-lab.*` labels naming the lab directory, so `down` and `status` find exactly what this
lab made, and never a container of the user's that happens to share the name.
"""

from __future__ import annotations

import contextlib
import io
import socket
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

import docker
import docker.errors
from docker.models.containers import Container

from lab.container.engine import docker_error_text
from lab.container.references import (
    _local_reference,
    canonical_reference,
    digest_alias,
    ensure_image,
    image_matches,
    is_pinned,
    resolve_image,
)
from lab.container.volume import AMLEN_DATA_PATH
from lab.errors import ContainerError
from lab.settings import Settings
from lab.values import memory_bytes
from lab.version import __version__

__all__ = [
    "AMLEN_ADMIN_PORT",
    "AMLEN_DATA_PATH",
    "AMLEN_LOG_DIR",
    "ContainerSpec",
    "canonical_reference",
    "digest_alias",
    "docker_client",
    "docker_error_text",
    "ensure_image",
    "find_lab_container",
    "follow_server_log",
    "image_matches",
    "is_pinned",
    "lab_labels",
    "port_is_free",
    "published_ports",
    "read_server_logs",
    "remove_container",
    "remove_volume",
    "resolve_image",
    "server_log",
    "spec_matches",
    "start_container",
]

AMLEN_ADMIN_PORT = 9089  # inside the container; the host side is settings.admin_port
AMLEN_LOG_DIR = f"{AMLEN_DATA_PATH}/diag/logs"
# Amlen stops cleanly in about 1.5 s; a short timeout keeps `down` fast when something hangs.
STOP_TIMEOUT = 5
_LABEL = "amlen-lab"


def lab_labels(settings: Settings) -> dict[str, str]:
    """The labels that mark a container or volume as this lab's (directory, name, version)."""
    return {
        f"{_LABEL}.dir": str(settings.lab_dir),
        f"{_LABEL}.name": settings.container_name,
        f"{_LABEL}.version": __version__,
    }


@dataclass(frozen=True)
class ContainerSpec:
    """What the lab container looks like: image, name, loopback-only ports, volume, memory, labels."""

    image: str
    name: str
    volume: str
    ports: dict[str, tuple[str, int | None]]  # "8889/tcp" -> ("127.0.0.1", host port or None for random)
    memory: str
    labels: dict[str, str]
    environment: dict[str, str]
    store_file_mb: int

    @classmethod
    def from_settings(cls, settings: Settings, *, workshop_address: str = "127.0.0.1") -> ContainerSpec:
        """The lab's container: every port on 127.0.0.1 only, at the same number as inside.

        Only the workshop port may be published on another address (`invoke workshop --expose`); the admin
        port never is.
        """
        loopback = "127.0.0.1"
        return cls(
            image=settings.image,
            name=settings.container_name,
            volume=f"{settings.container_name}-data",
            ports={
                f"{AMLEN_ADMIN_PORT}/tcp": (loopback, settings.admin_port),
                f"{settings.tls_port}/tcp": (loopback, settings.tls_port),
                f"{settings.mtls_port}/tcp": (loopback, settings.mtls_port),
                f"{settings.workshop_port}/tcp": (workshop_address, settings.workshop_port),
            },
            memory=settings.memory,
            labels=lab_labels(settings),
            environment={},
            store_file_mb=settings.store_file_mb,
        )


def docker_client() -> docker.DockerClient:
    """A connected docker client for the engine `lab.container.engine.connect` finds (DOCKER_HOST, context, sockets)."""
    from lab.container.engine import connect

    return connect().client


def find_lab_container(client: docker.DockerClient, settings: Settings) -> Container | None:
    """This lab's container (by its directory label), running or not; None when there is none."""
    found = client.containers.list(all=True, filters={"label": f"{_LABEL}.dir={settings.lab_dir}"})
    return found[0] if found else None


def start_container(client: docker.DockerClient, spec: ContainerSpec) -> tuple[Container, bool]:
    """Create (if needed) and start the container described by `spec`; returns it and whether it was created.

    A container of that name that is not ours is never touched: that is an error with a hint. Ours with other
    published ports (an exposed workshop port, an older lab version) is re-created on the same volume, which
    keeps Amlen's configuration. A new volume gets the store bound in its server.cfg before the first start.
    """
    created = False
    try:
        container = client.containers.get(spec.name)
    except docker.errors.NotFound:
        container = None
    if container is not None and container.labels.get(f"{_LABEL}.dir") != spec.labels[f"{_LABEL}.dir"]:
        raise ContainerError(
            f"a container named {spec.name} exists and does not belong to this lab",
            "remove it, or choose another LAB_CONTAINER_NAME",
        )
    if container is not None and not image_matches(container, spec.image):
        running = ", ".join(container.image.tags) if container.image else "an unknown image"
        raise ContainerError(
            f"the lab container {spec.name} runs {running or container.attrs.get('Image', '?')}, "
            f"but LAB_IMAGE is {spec.image}",
            "`invoke down` then `invoke up` to switch images",
        )
    try:
        if container is not None and not spec_matches(container, spec):
            remove_container(container)
            container = None
        if container is None:
            fresh_volume = _ensure_volume(client, spec)
            container = client.containers.create(
                _local_reference(client, spec.image),
                name=spec.name,
                labels=spec.labels,
                # docker-py takes (ip, None) for "any free host port"; types-docker only allows (ip, int).
                ports=dict(spec.ports),  # type: ignore[arg-type]
                volumes={spec.volume: {"bind": AMLEN_DATA_PATH, "mode": "rw"}},
                mem_limit=spec.memory or None,  # "": the engine cannot limit memory
                environment=spec.environment,
                detach=True,
            )
            created = True
            if fresh_volume:
                from lab.container.volume import bound_store

                bound_store(container, spec.store_file_mb)
        if container.status != "running":
            container.start()
        container.reload()
    except docker.errors.APIError as exc:
        if created and container is not None:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        raise _start_error(exc, spec) from exc
    return container, created


def spec_matches(container: Container, spec: ContainerSpec) -> bool:
    """Does `container` have what `spec` fixes at creation: the same published ports (and addresses) and memory?

    (Both are fixed when a container is created; a lab whose settings changed gets a new one on its volume.)
    """
    host_config = container.attrs.get("HostConfig") or {}
    bindings = host_config.get("PortBindings") or {}
    have = {key: (b[0].get("HostIp") or "0.0.0.0", int(b[0]["HostPort"] or 0)) for key, b in bindings.items() if b}
    want = {key: (address, port or 0) for key, (address, port) in spec.ports.items()}
    return have == want and int(host_config.get("Memory") or 0) == (memory_bytes(spec.memory) or 0)


def _ensure_volume(client: docker.DockerClient, spec: ContainerSpec) -> bool:
    """Make the lab's volume if needed; True when it is new (so still empty until `docker create` fills it)."""
    try:
        volume = client.volumes.get(spec.volume)
    except docker.errors.NotFound:
        client.volumes.create(spec.volume, labels=spec.labels)
        return True
    if (volume.attrs.get("Labels") or {}).get(f"{_LABEL}.dir") != spec.labels[f"{_LABEL}.dir"]:
        raise ContainerError(
            f"a volume named {spec.volume} exists and does not belong to this lab",
            "remove it, or choose another LAB_CONTAINER_NAME",
        )
    return False


def _start_error(exc: docker.errors.APIError, spec: ContainerSpec) -> ContainerError:
    text = docker_error_text(exc)
    if "port is already allocated" in text or "address already in use" in text:
        return ContainerError(
            f"cannot start {spec.name}: a host port is already in use ({text})",
            "stop what holds it, or choose other LAB_*_PORT values",
        )
    if "No such image" in text:
        return ContainerError(f"image {spec.image} is not present", "set LAB_IMAGE to a local image")
    return ContainerError(f"cannot start container {spec.name}: {text}", "see `docker info` and `docker ps -a`")


def published_ports(container: Container) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port) for every published TCP port."""
    container.reload()
    result: dict[int, tuple[str, int]] = {}
    for key, bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).items():
        if bindings and key.endswith("/tcp"):
            result[int(key.split("/")[0])] = (bindings[0]["HostIp"], int(bindings[0]["HostPort"]))
    return result


def read_server_logs(container: Container, *, lines: int = 30, names: Iterable[str] = ()) -> str:
    """The last `lines` lines of Amlen's log files, fetched from inside the container.

    Amlen logs to files under /var/lib/amlen-server/diag/logs, not to stdout, so `docker logs` shows little.
    `get_archive` works on stopped containers too, which is when the logs matter most.
    """
    wanted = tuple(names) or ("imaserver-default.log", "imaserver_start.log")
    chunks: list[str] = []
    for name in wanted:
        try:
            stream, _ = container.get_archive(f"{AMLEN_LOG_DIR}/{name}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.extractfile(archive.getmembers()[0])
                text = member.read().decode("utf-8", "replace") if member else ""
        except (docker.errors.DockerException, tarfile.TarError, IndexError):
            continue
        tail = text.splitlines()[-lines:]
        if tail:
            chunks.append(f"--- {name} ---\n" + "\n".join(tail))
    if not chunks:
        with contextlib.suppress(docker.errors.DockerException):
            chunks.append(container.logs(tail=lines).decode("utf-8", "replace"))
    return "\n".join(chunks).strip()


def follow_server_log(container: Container, *, lines: int = 50) -> Iterator[str]:
    """Stream Amlen's main log file as it grows (`tail -F` inside the container)."""
    path = f"{AMLEN_LOG_DIR}/imaserver-default.log"
    try:
        result = container.exec_run(["tail", "-n", str(lines), "-F", path], stream=True)
    except docker.errors.APIError as exc:
        raise ContainerError(f"cannot follow {path}: {docker_error_text(exc)}") from exc
    # With stream=True the output is an iterator of chunks; types-docker has no overload that says so.
    for chunk in cast(Iterator[bytes], result.output):
        yield chunk.decode("utf-8", "replace")


def server_log(settings: Settings, *, follow: bool = False, lines: int = 50) -> Iterator[str]:
    """`invoke logs`: the lab container's server log as text; with `follow`, then its new lines as they come."""
    container = find_lab_container(docker_client(), settings)
    if container is None:
        raise ContainerError("no lab container", "`invoke up` starts one")
    if not follow or container.status != "running":  # a stopped container's log is all there will be
        yield read_server_logs(container, lines=lines) + "\n"
        return
    yield from follow_server_log(container, lines=lines)


def remove_container(container: Container, *, keep_data: bool = True) -> None:
    """Remove the container; one that is already gone is fine.

    With `keep_data`, Amlen is stopped cleanly first (SIGTERM; it exits in about 1.5 s, a short timeout
    bounds a hang), because its volume lives on. Without, the volume goes next, so there is nothing to keep
    consistent and the container is killed at once.
    """
    try:
        if keep_data and container.status == "running":
            container.stop(timeout=STOP_TIMEOUT)
        container.remove(force=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise ContainerError(f"cannot remove container {container.name}: {docker_error_text(exc)}") from exc


def remove_volume(client: docker.DockerClient, name: str, settings: Settings) -> bool:
    """Remove this lab's volume `name`; False when it is not there. A volume of someone else's stays."""
    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        return False
    if (volume.attrs.get("Labels") or {}).get(f"{_LABEL}.dir") != str(settings.lab_dir):
        return False
    try:
        volume.remove(force=True)
    except docker.errors.APIError as exc:
        raise ContainerError(f"cannot remove volume {name}: {docker_error_text(exc)}") from exc
    return True


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing on this machine holds `host:port` (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR ignores connections lingering in TIME_WAIT (recent clients) yet still fails against a
        # listener, which is what "in use" means here.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
