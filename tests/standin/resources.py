"""What the server sizes from its machine at start: the connection limit from memory, the store from the disk.

Both follow Amlen's source, because both have bitten a lab on a real server:

- **Memory** (``server_utils/src/execinfo.c``, ``checkTotalMemory``): ``IMATotalMemSizeMB`` from ``server.cfg``,
  overridden by the environment variable of that name when it is a positive number; else the memory cgroup's
  limit (v1 ``memory.limit_in_bytes``, v2 ``memory.max``); else, when there is no limit, ``/proc/meminfo``. Amlen
  then autotunes ``TcpMaxConnections = (MiB // 1024) * 2 * 4000``, so under 1 GiB the limit is 0 and every
  connection is closed at once with CWLNA1119 (``server_transport/src/tcp.c``).
- **Store** (``server_store/src/storeMemory.c``, ``ism_store_memAdjustVMParameters`` and
  ``ism_store_memValidateParameters``; file names from ``storeShmPersist.c``): ``Store.PersistFileSizeMB`` from
  ``server.cfg``; unset or 0 means "size of the filesystem / 24", clamped to 512 MiB .. 16 GiB; an explicit value
  outside 256 .. 65536 MiB stops the server. Amlen ``fallocate``s four ``ST_<i>_<j>`` files of that size; the
  stand-in creates them sparse (same apparent size, no disk).

``server.cfg`` is a static ``key = value`` file in the data volume (``data/config/server.cfg``); the image ships
one, so Docker copies it into a new named volume when the container is created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CONFIG_MEMORY_KEY = "IMATotalMemSizeMB"
PERSIST_SIZE_KEY = "Store.PersistFileSizeMB"
MIB = 1 << 20
# ism_store_memAdjustVMParameters: default file size is fs/24, clamped to these bounds (bytes).
PERSIST_AUTO_MIN, PERSIST_AUTO_MAX = 1 << 29, 1 << 34
# ism_store_memValidateParameters: "Valid range: [256 64K]" (MiB).
PERSIST_MIN_MB, PERSIST_MAX_MB = 256, 65536
# storeShmPersist.c names them "ST_%u_%u" for generation i and file j.
PERSIST_FILES = ("ST_0_0", "ST_1_0", "ST_0_1", "ST_1_1")
# execinfo.c: a cgroup v1 "no limit" reads as a huge number; Amlen then falls back to /proc/meminfo.
_NO_CGROUP_LIMIT = 0x7FFFFFFFFFFFF000
_CGROUP_FILES = (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory.max"))


class StartupError(Exception):
    """The server cannot start: the message is what the start log says."""


def read_server_cfg(path: Path) -> dict[str, str]:
    """``key = value`` pairs of a ``server.cfg`` (``#`` starts a comment; a later line wins)."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def check_server_cfg(path: Path) -> dict[str, str]:
    """Read ``server.cfg``, which the server must be able to rewrite (Amlen updates it in place).

    Stricter than anything observed: a copy the server's user cannot write (a root-owned file put into the
    volume) stops the start, so a lab that breaks the ownership fails here instead of later on Amlen.
    """
    if not path.is_file():
        raise StartupError(f"The static configuration file {path} does not exist.")
    if not os.access(path, os.R_OK | os.W_OK):
        stat = path.stat()
        raise StartupError(
            f"The static configuration file {path} is not writable by the server user (uid {os.geteuid()}): "
            f"owner {stat.st_uid}:{stat.st_gid}, mode {stat.st_mode & 0o777:04o}."
        )
    return read_server_cfg(path)


def _positive_int(text: str | None) -> int:
    try:
        return max(int((text or "").strip()), 0)
    except ValueError:
        return 0


def total_memory_mb(
    env: Mapping[str, str], cfg: Mapping[str, str], *, cgroup_files: tuple[Path, ...] = _CGROUP_FILES
) -> int:
    """The memory Amlen believes it has, in MiB (``checkTotalMemory``)."""
    configured = _positive_int(env.get(CONFIG_MEMORY_KEY)) or _positive_int(cfg.get(CONFIG_MEMORY_KEY))
    if configured:
        return configured
    limit = 0
    for candidate in cgroup_files:
        if candidate.is_file():
            limit = _positive_int(candidate.read_text())  # v2 "max" reads as 0, as with Amlen's strtoull
            break
    if limit == 0 or limit >= _NO_CGROUP_LIMIT:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                limit = int(line.split()[1]) * 1024
                break
    return limit // MIB


def tcp_max_connections(memory_mb: int) -> int:
    """Amlen's autotuned ``TcpMaxConnections``: 4000 per GiB, doubled, integer division (0 under 1 GiB)."""
    return (memory_mb // 1024) * 2 * 4000


@dataclass(frozen=True)
class StoreLayout:
    """The persistence files of the store and how big each one is."""

    directory: Path
    file_size: int  # bytes
    configured: bool  # Store.PersistFileSizeMB set explicitly


def persist_file_size(cfg: Mapping[str, str], directory: Path) -> StoreLayout:
    """Size each persistence file as Amlen does; StartupError for an explicit value out of range."""
    text = cfg.get(PERSIST_SIZE_KEY, "").strip()
    try:
        configured_mb = int(text) if text else 0
    except ValueError:
        configured_mb = -1  # not a number: refused like an out-of-range value
    if configured_mb == 0:
        fs = os.statvfs(directory)
        size = min(max(fs.f_blocks * fs.f_bsize // 24, PERSIST_AUTO_MIN), PERSIST_AUTO_MAX)
        return StoreLayout(directory, size, configured=False)
    if not PERSIST_MIN_MB <= configured_mb <= PERSIST_MAX_MB:
        raise StartupError(
            f"Store parameter {PERSIST_SIZE_KEY} ({text}) is not valid. "
            f"Valid range: [{PERSIST_MIN_MB} 64K]"
        )
    return StoreLayout(directory, configured_mb * MIB, configured=True)


def create_store_files(layout: StoreLayout) -> list[Path]:
    """Create the four ``ST_*`` files sparse at the layout's size; existing files are left alone.

    Returns the files created now (empty when the store already existed).
    """
    layout.directory.mkdir(parents=True, exist_ok=True)
    created = []
    for name in PERSIST_FILES:
        path = layout.directory / name
        if path.exists():
            continue
        with path.open("wb"):
            pass
        os.truncate(path, layout.file_size)
        path.chmod(0o644)  # PersistedFileMode 00644
        created.append(path)
    return created
