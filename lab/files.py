"""Small, careful file helpers: atomic writes and an exclusive lock on the lab directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lab.errors import LockError

__all__ = ["atomic_write", "lab_lock"]


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half of either.

    A temporary file in the same directory is written, fsynced, given `mode` and renamed over `path`
    (rename is atomic within one file system), then the directory is fsynced so the rename survives a crash.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; set the final mode before any byte is visible under the real name.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def lab_lock(lab_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the lab directory for the duration of an `up`/`down`.

    The OS releases the lock when the process dies, so a crashed run never leaves a stale lock behind.
    """
    lab_dir.mkdir(parents=True, exist_ok=True)
    lock_path = lab_dir / ".lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise LockError(
                f"another lab command is running on {lab_dir}",
                "wait for it to finish, or check `invoke status`",
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
