"""Small, careful file helpers: atomic writes and an exclusive lock on the lab directory."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from lab.errors import LockError

__all__ = ["atomic_write", "lab_lock", "private_dir", "sync_dirs"]


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, sync_dir: bool = True, sync_file: bool = True) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half of either.

    A temporary file in the same directory is written, fsynced, given `mode` and renamed over `path`
    (rename is atomic within one file system), then the directory is fsynced so the rename survives a crash.
    `sync_dir=False` leaves that last fsync to a caller writing many files into one directory (`sync_dirs`);
    `sync_file=False` skips the file's fsync, for a file the caller can always make again from others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; set the final mode before any byte is visible under the real name.
        if hasattr(os, "fchmod"):  # not on Windows, where modes do not apply
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync_file:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        sync_dirs([path.parent])


def sync_dirs(directories: Iterable[Path]) -> None:
    """fsync each directory, so the renames into it survive a crash (after `atomic_write(sync_dir=False)`)."""
    if sys.platform == "win32":  # Windows cannot open a directory to fsync it
        return
    for directory in directories:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def private_dir(directory: Path) -> None:
    """Make `directory` (and its parents) and give it mode 0700: it holds private keys. Raises OSError."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir's mode is masked by umask and ignored for an existing directory: set it explicitly.
    os.chmod(directory, 0o700)


@contextlib.contextmanager
def lab_lock(lab_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the lab directory for the duration of an `up`/`down`.

    The OS releases the lock when the process dies, so a crashed run never leaves a stale lock behind.
    """
    lab_dir.mkdir(parents=True, exist_ok=True)
    with open(lab_dir / ".lock", "a+b") as handle:
        try:
            _lock(handle.fileno(), wait=wait)
        except (BlockingIOError, PermissionError) as exc:
            raise LockError(
                f"another lab command is running on {lab_dir}",
                "wait for it to finish, or check `invoke status`",
            ) from exc
        try:
            yield
        finally:
            _unlock(handle.fileno())


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int, *, wait: bool) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int, *, wait: bool) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
