"""The certificate set's files: read and written with one-line errors, and what was done to each.

Writes are atomic (a crash leaves the old file or the new one, never half of one) and keep the mode asked
for: private keys 0600, certificates 0644, the directory 0700.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509

from lab.errors import CertError
from lab.files import atomic_write, private_dir

__all__ = ["Action", "FileResult", "prepare_dir", "read", "read_cert", "write", "write_if_changed"]


class Action(StrEnum):
    """What `invoke certs` did to one file."""

    CREATED = "created"
    REUSED = "reused"
    REISSUED = "re-issued"


@dataclass(frozen=True)
class FileResult:
    """One file of the set, what was done to it, and why (e.g. "expires in 12 days")."""

    path: Path
    action: Action
    reason: str


def prepare_dir(directory: Path) -> None:
    """The PKI directory, made 0700 (it holds private keys); CertError when it cannot be."""
    try:
        private_dir(directory)
    except OSError as exc:
        raise CertError(f"cannot create {directory}: {exc.strerror}", "check LAB_DIR's permissions") from exc


def read(path: Path) -> bytes:
    """A file's bytes; CertError naming it when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from exc


def read_cert(path: Path) -> x509.Certificate:
    """The (first) PEM certificate in `path`; CertError when there is none."""
    try:
        return x509.load_pem_x509_certificate(read(path))
    except ValueError as exc:
        raise CertError(f"{path} is not a PEM certificate", "restore it, or `invoke certs --new-ca`") from exc


def write(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` atomically with `mode`; CertError (free space, permissions) when it cannot."""
    try:
        atomic_write(path, data, mode=mode)
    except OSError as exc:
        raise CertError(
            f"cannot write {path}: {exc.strerror or exc}", "check free space and permissions of LAB_DIR"
        ) from exc


def write_if_changed(path: Path, data: bytes, *, mode: int) -> Action | None:
    """Write `data` unless `path` holds exactly that already: None when untouched, else CREATED or REISSUED."""
    existed = path.exists()
    if existed and read(path) == data:
        return None
    write(path, data, mode=mode)
    return Action.REISSUED if existed else Action.CREATED
