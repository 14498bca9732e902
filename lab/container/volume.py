"""The lab volume: Amlen's data directory, its store bound (server.cfg) and how much disk it holds.

Amlen sizes each of its four store files to filesystem size / 24 (512 MiB..16 GiB) and fallocates them
unless `Store.PersistFileSizeMB` is set in server.cfg before the first start: 42 GiB for one lab volume
on a 252 GB disk (reference, "Observed later"). No REST call or environment variable sets it, so the lab
writes it into a new volume between `docker create` and the first start.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container

from lab.container.engine import docker_error_text
from lab.errors import ContainerError

__all__ = [
    "AMLEN_DATA_PATH",
    "STORE_KEY",
    "VolumeUsage",
    "bound_store",
    "format_bytes",
    "read_store_setting",
    "set_cfg_value",
    "volume_usage",
]


AMLEN_DATA_PATH = "/var/lib/amlen-server"


# Amlen's static configuration, inside the data volume; the server runs as ima (uid/gid 463).
AMLEN_SERVER_CFG = f"{AMLEN_DATA_PATH}/data/config/server.cfg"
AMLEN_UID = AMLEN_GID = 463
STORE_KEY = "Store.PersistFileSizeMB"
_CFG_MARK = "--- server.cfg ---"  # between du's figures and the file in volume_usage's one exec


def bound_store(container: Container, file_mb: int) -> None:
    """Set `Store.PersistFileSizeMB` in the server.cfg of a created, never started container's volume.

    Docker fills a new named volume from the image at `docker create`, and Amlen reads the value only when it
    makes its store at the first start. The file keeps its owner (uid/gid 463) and mode: a root-owned copy
    would not be the server's to rewrite.
    """
    try:
        original, member = _read_file(container, AMLEN_SERVER_CFG)
    except docker.errors.NotFound:
        original, member = b"", None
    except docker.errors.APIError as exc:
        raise ContainerError(f"cannot read Amlen's server.cfg: {docker_error_text(exc)}") from exc
    data = set_cfg_value(original, STORE_KEY, str(file_mb))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        if member is None:  # not in the image: make data/config/ as Amlen's first start would, the server's own
            for directory in ("data", "data/config"):
                archive.addfile(_entry(directory, tarfile.DIRTYPE, 0o755))
        name = os.path.relpath(AMLEN_SERVER_CFG, AMLEN_DATA_PATH) if member is None else "server.cfg"
        info = _entry(name, tarfile.REGTYPE, member.mode if member else 0o644, len(data))
        if member is not None:
            info.uid, info.gid = member.uid, member.gid
        archive.addfile(info, io.BytesIO(data))
    target = AMLEN_DATA_PATH if member is None else os.path.dirname(AMLEN_SERVER_CFG)
    try:
        if not container.put_archive(target, buffer.getvalue()):
            raise ContainerError(f"Docker refused to write {AMLEN_SERVER_CFG} into {container.name}")
    except docker.errors.APIError as exc:
        raise ContainerError(
            f"cannot bound Amlen's store in {container.name}: {docker_error_text(exc)}",
            "is LAB_IMAGE an Amlen server image (data under /var/lib/amlen-server)?",
        ) from exc


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, int(time.time())
    info.uid, info.gid = AMLEN_UID, AMLEN_GID
    return info


def set_cfg_value(text: bytes, key: str, value: str) -> bytes:
    """server.cfg with `key = value`: an existing line for `key` is replaced, else one is appended."""
    lines = text.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    line = f"{key} = {value}\n"
    for index, existing in enumerate(lines):
        if existing.split("=", 1)[0].strip() == key:
            lines[index] = line
            break
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(line)
    return "".join(lines).encode("utf-8", "surrogateescape")


def read_store_setting(container: Container) -> int | None:
    """`Store.PersistFileSizeMB` from the container's server.cfg; None when unset (Amlen's fs/24 rule)."""
    try:
        text, _ = _read_file(container, AMLEN_SERVER_CFG)
    except docker.errors.DockerException:
        return None
    return _store_setting(text.decode("utf-8", "replace"))


def _store_setting(cfg: str) -> int | None:
    for line in cfg.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == STORE_KEY and value.strip().isdigit():
            return int(value.strip())
    return None


@dataclass(frozen=True)
class VolumeUsage:
    """What Amlen's data directory holds: bytes on disk, apparent bytes (sparse files count whole)."""

    disk_bytes: int
    apparent_bytes: int
    store_file_mb: int | None  # None: unset, Amlen sized the store from the filesystem


def volume_usage(container: Container) -> VolumeUsage | None:
    """The data volume's size, measured inside the running container with `du`, and its store bound from
    server.cfg; None when it cannot be.

    One exec does both (a `get_archive` of server.cfg after it cost as much again: `invoke status` waits on this).
    """
    if container.status != "running":
        return None
    script = (f"du -s -B1 --apparent-size {AMLEN_DATA_PATH}; du -s -B1 {AMLEN_DATA_PATH}; "
              f"echo '{_CFG_MARK}'; cat {AMLEN_SERVER_CFG} 2>/dev/null")
    try:
        result = container.exec_run(["sh", "-c", script])
    except docker.errors.DockerException:
        return None
    output = result.output if isinstance(result.output, bytes) else b""
    sizes_text, _, cfg = output.decode("utf-8", "replace").partition(_CFG_MARK)
    sizes = [line.split()[0] for line in sizes_text.splitlines() if line.strip()]
    if len(sizes) < 2 or not all(size.isdigit() for size in sizes[:2]):
        return None
    return VolumeUsage(int(sizes[1]), int(sizes[0]), _store_setting(cfg))


def _read_file(container: Container, path: str) -> tuple[bytes, tarfile.TarInfo]:
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.getmembers()[0]
        handle = archive.extractfile(member)
        return (handle.read() if handle else b""), member


def format_bytes(size: int) -> str:
    """1536 MiB -> '1.5 GiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
