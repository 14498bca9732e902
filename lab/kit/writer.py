"""The kit writer, shared by `invoke kit` (a client's kit) and the workshop (a seat's bundle).

A kit directory holds the credentials (PEM files, two PKCS#12 files and their password), the connection facts
(`connection.env`, `connection.json`), one directory per language with its program, and a README; the same
goes into a zip with fixed timestamps. It follows the lab:

- Nothing changes when nothing changed. Every file but the PKCS#12 pair is a function of its inputs and is
  written only when its bytes differ; the PKCS#12 files are randomised (salts, IVs), so a manifest
  (`.kit.json`) keeps a digest of what each was made from, and they are made again only when that changes
  (a re-issued key or certificate, another CA, another password, the legacy form).
- Nothing the user edited is overwritten: the manifest also keeps each written file's digest, and a file
  that is neither that nor what would be written now was changed by hand. The writer checks every file first
  and, finding one, changes nothing and names it (`force` overwrites). Files of a language no longer asked for
  are removed when unedited.
- `kit.password` is kept once made (its owner may put their own password there: the PKCS#12 files follow).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from lab.errors import KitError
from lab.files import atomic_write, private_dir, sync_dirs
from lab.kit import pkcs12
from lab.kit.connection import Connection, env_text, json_text
from lab.kit.programs import program_files

__all__ = ["MANIFEST", "KitResult", "KitSpec", "make_private_dir", "read_manifest", "write_kit"]

MANIFEST = ".kit.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # zip's earliest time: the archive's bytes depend on its contents only
_PRIVATE, _PUBLIC = 0o600, 0o644


@dataclass(frozen=True)
class KitSpec:
    """Everything one kit is made from. `pems`: the PEM files the writer owns ({name: (bytes, mode)});
    `present`: files already in the directory, written by someone else (a seat's key), that the zip carries."""

    name: str  # the keystore entry's friendly name: the client name, or the seat's CN
    dir: Path
    zip: Path
    zip_root: str  # the zip unpacks into this directory
    connection: Connection
    ca: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # the client certificate, then any intermediates
    key: PrivateKeyTypes
    pems: Mapping[str, tuple[bytes, int]]
    readme: str
    languages: tuple[str, ...]
    legacy_p12: bool = False
    present: tuple[str, ...] = ()
    force_hint: str = "move your copy elsewhere, or run the same command with --force to overwrite it"


@dataclass
class KitResult:
    """What the writer did: the kit's directory and zip, and the files it wrote or removed (empty: none)."""

    name: str
    dir: Path
    zip: Path
    languages: tuple[str, ...]
    legacy_p12: bool
    changed: list[str] = field(default_factory=list)


def read_manifest(directory: Path) -> dict[str, object]:
    """The kit's manifest ({} when there is none or it is unreadable: then nothing is known to be ours)."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_kit(spec: KitSpec, *, force: bool = False) -> KitResult:
    """Bring the kit in `spec.dir` and its zip up to date; KitError naming an edited file (unless `force`)."""
    files = spec.connection.files
    manifest = read_manifest(spec.dir)
    recorded = _str_map(manifest.get("files"))
    made_from = _str_map(manifest.get("p12_inputs"))
    desired: dict[str, tuple[bytes, int]] = {
        **spec.pems,
        "connection.env": (env_text(spec.connection).encode(), _PUBLIC),
        "connection.json": (json_text(spec.connection).encode(), _PUBLIC),
        "README.md": (spec.readme.encode(), _PUBLIC),
        **program_files(spec.languages),
    }
    p12_names = (files.keystore, files.truststore)
    current = {name: _read(spec.dir / name) for name in {*desired, *recorded, *p12_names}}
    edited = [name for name in sorted(current) if name != files.password_file
              and _edited(name, current[name], desired, recorded, p12_names)]
    stale = [name for name in sorted(recorded) if name not in desired and name not in p12_names
             and name != files.password_file and current.get(name) is not None and name not in edited]
    if edited and not force:
        more = f" (and {len(edited) - 1} more)" if len(edited) > 1 else ""
        raise KitError(f"{spec.dir / edited[0]} was changed by hand{more}; the kit was left as it is",
                       spec.force_hint)
    make_private_dir(spec.dir)
    changed: list[str] = []
    password = _password(spec.dir / files.password_file)
    desired[files.password_file] = (f"{password}\n".encode(), _PRIVATE)
    key_der = spec.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    p12_inputs = {
        files.keystore: pkcs12.inputs_digest(spec.name.encode(), key_der, *(c.public_bytes(serialization.Encoding.DER)
                                             for c in spec.chain), password.encode(), legacy=spec.legacy_p12),
        files.truststore: pkcs12.inputs_digest(spec.ca.public_bytes(serialization.Encoding.DER), password.encode(),
                                               legacy=spec.legacy_p12),
    }
    for name in p12_names:
        data = current[name]
        if data is None or made_from.get(name) != p12_inputs[name] or _digest(data) != recorded.get(name):
            data = (pkcs12.keystore(spec.name, spec.key, spec.chain, password, legacy=spec.legacy_p12)
                    if name == files.keystore else pkcs12.truststore(spec.ca, password, legacy=spec.legacy_p12))
        desired[name] = (data, _PRIVATE if name == files.keystore else _PUBLIC)
    touched: set[Path] = set()  # directories renamed into: each fsynced once, at the end
    for name, (data, mode) in sorted(desired.items()):
        if _write_if_changed(spec.dir / name, data, mode, current.get(name), touched):
            changed.append(name)
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            (spec.dir / name).unlink()
        _remove_empty_parents(spec.dir, name)
        changed.append(name)
    record: dict[str, object] = {
        "format": 1,
        "name": spec.name,
        "languages": list(spec.languages),
        "legacy_p12": spec.legacy_p12,
        "files": {name: _digest(data) for name, (data, _) in sorted(desired.items())},
        "p12_inputs": p12_inputs,
    }
    members = {**desired, **{name: (_must_read(spec.dir / name), _mode(spec.dir / name)) for name in spec.present}}
    record["members"] = {name: f"{_digest(data)} {mode:o}" for name, (data, mode) in sorted(members.items())}
    zip_now = _read(spec.zip)
    # The zip is a function of its members: when none changed and it is the one made last time, it is not rebuilt.
    if (zip_now is None or manifest.get("members") != record["members"] or manifest.get("zip") != _digest(zip_now)
            or manifest.get("zip_root") != spec.zip_root):
        archive = _zip_bytes(spec.zip_root, members)
        if _write_if_changed(spec.zip, archive, _PRIVATE, zip_now, touched):
            changed.append(spec.zip.name)
        zip_now = archive
    record |= {"zip": _digest(zip_now), "zip_root": spec.zip_root}
    # Compact: json's C encoder (an indent would take the slow Python one, per seat, on every run).
    manifest_bytes = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
    _write_if_changed(spec.dir / MANIFEST, manifest_bytes, _PRIVATE, _read(spec.dir / MANIFEST), touched)
    try:
        sync_dirs(sorted(touched))
    except OSError as exc:
        raise KitError(f"cannot sync {spec.dir}: {exc.strerror}", "check the file system") from exc
    return KitResult(spec.name, spec.dir, spec.zip, spec.languages, spec.legacy_p12, changed)


# --- helpers -------------------------------------------------------------------------------------------


def _edited(name: str, data: bytes | None, desired: Mapping[str, tuple[bytes, int]], recorded: Mapping[str, str],
            p12_names: tuple[str, ...]) -> bool:
    """True when `name` holds bytes the lab neither wrote last time nor would write now. An empty file is what a
    crash leaves of a file written without fsync: overwriting it loses nothing."""
    if not data:
        return False
    if name in desired and data == desired[name][0]:
        return False
    if name in recorded:
        return _digest(data) != recorded[name]
    # Unrecorded: a PKCS#12 file is made again (its bytes cannot be predicted); anything else is the user's.
    return name not in p12_names


def _password(path: Path) -> str:
    """The kit's password: the first line of its file when there is one, else a new one."""
    data = _read(path)
    if data is not None:
        lines = data.decode("utf-8", "replace").splitlines()
        if lines and lines[0].strip():
            return lines[0].strip()
    return pkcs12.new_password()


def _zip_bytes(root: str, members: Mapping[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, (data, mode) in sorted(members.items()):
            info = zipfile.ZipInfo(f"{root}/{name}", date_time=_ZIP_TIME)
            info.external_attr = (0o100000 | mode) << 16  # a regular file with its mode: keys stay 0600
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def _write_if_changed(path: Path, data: bytes, mode: int, current: bytes | None, touched: set[Path]) -> bool:
    """Write `data` unless `path` holds it (then only its mode is put right); True when written. The directory
    goes into `touched`: the caller fsyncs it once for all the files renamed into it."""
    try:
        if current == data:
            if _mode(path) != mode:
                os.chmod(path, mode)
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        # Private files (a key, the password, the PKCS#12 pair, the zip handed out) are fsynced; public ones
        # (PEM certificates, connection facts, README, programs, the manifest) are functions of those and of the
        # lab's files, and the next run rewrites any a crash left behind (the atomic rename still never shows half).
        atomic_write(path, data, mode=mode, sync_dir=False, sync_file=mode == _PRIVATE and path.name != MANIFEST)
        touched.add(path.parent)
    except OSError as exc:
        raise KitError(f"cannot write {path}: {exc.strerror or exc}", "check free space and permissions") from exc
    return True


def _remove_empty_parents(root: Path, name: str) -> None:
    for parent in (root / name).parents:
        if parent == root or root not in parent.parents:
            return
        try:
            parent.rmdir()
        except OSError:
            return


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise KitError(f"cannot read {path}: {exc.strerror}", "check the kit directory's permissions") from exc


def _must_read(path: Path) -> bytes:
    data = _read(path)
    if data is None:
        raise KitError(f"{path} is missing", "run the same command again to make it")
    return data


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def make_private_dir(directory: Path) -> None:
    """`directory` made 0700 (a kit holds a private key); KitError when it cannot be."""
    try:
        private_dir(directory)
    except OSError as exc:
        raise KitError(f"cannot create {directory}: {exc.strerror}", "check LAB_DIR's permissions") from exc
