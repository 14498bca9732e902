"""A seat's bundle read the way its participant uses it, for the rehearsal: the README's commands, its files.

The rehearsal must prove what participants get, not what the lab believes, so nothing here asks the lab's
objects: the broker's name, port and the seat's topics come from the README's `mosquitto_sub` line, the
address from the hosts line it tells the participant to add, and the CA, certificate and key are the files that
line names (whatever the bundle calls them). The zip handed out must hold the same bytes as the directory.
"""

from __future__ import annotations

import ipaddress
import itertools
import shlex
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["Handout", "HandoutProblem", "bundle_dirs", "read_handout"]

_OPTIONS = {"-h": "host", "-p": "port", "--cafile": "ca", "--cert": "cert", "--key": "key"}


class HandoutProblem(Exception):
    """What makes a bundle unusable, in words for the instructor (the seat is named by the caller)."""


@dataclass(frozen=True)
class Handout:
    """What one participant has: where to connect, as whom, with which files, to which topics."""

    name: str
    dir: Path
    host: str
    address: str
    port: int
    ca: Path
    cert: Path
    key: Path
    cn: str
    serial: int
    own_filter: str  # e.g. workshop/seat.07/#
    room_filter: str  # workshop/all/#

    @property
    def own_topic(self) -> str:
        """The seat's own tree, without the trailing `/#`."""
        return self.own_filter.removesuffix("/#")

    @property
    def room_topic(self) -> str:
        """The room's tree, without the trailing `/#`."""
        return self.room_filter.removesuffix("/#")


def bundle_dirs(root: Path) -> list[Path]:
    """Every seat's bundle directory under the workshop directory (dot names are the lab's, e.g. the CRL)."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name.lower())


def read_handout(directory: Path) -> Handout:
    """The bundle in `directory` as its README tells the participant to use it; HandoutProblem when it cannot."""
    readme = _read(directory / "README.md").decode("utf-8", "replace")
    command = next((line.strip() for line in readme.splitlines() if line.strip().startswith("mosquitto_sub ")), None)
    if command is None:
        raise HandoutProblem("README.md has no mosquitto_sub command")
    found: dict[str, str] = {}
    filters: list[str] = []
    words = shlex.split(command)
    for option, value in itertools.pairwise(words):
        if option in _OPTIONS:
            found[_OPTIONS[option]] = value
        elif option == "-t":
            filters.append(value)
    missing = [name for name in _OPTIONS.values() if name not in found]
    if missing or len(filters) < 2 or not found["port"].isdigit():
        raise HandoutProblem(f"README.md's mosquitto_sub command lacks {', '.join(missing) or 'two topics'}")
    address = _hosts_address(readme, found["host"])
    files = {part: directory / found[part] for part in ("ca", "cert", "key")}
    for path in files.values():
        _read(path)
    cert = _certificate(files["cert"])
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    _check_zip(directory, [*files.values(), directory / "README.md"])
    return Handout(directory.name, directory, found["host"], address, int(found["port"]), files["ca"], files["cert"],
                   files["key"], str(names[0].value) if names else "", cert.serial_number, filters[0], filters[1])


def _hosts_address(readme: str, host: str) -> str:
    """The address of the hosts line the README gives for `host`."""
    for line in readme.splitlines():
        words = line.split()
        if len(words) == 2 and words[1] == host:
            try:
                return str(ipaddress.ip_address(words[0]))
            except ValueError:
                continue
    raise HandoutProblem(f"README.md gives no hosts line for {host}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise HandoutProblem(f"{path.name} is missing") from None
    except OSError as exc:
        raise HandoutProblem(f"cannot read {path.name}: {exc.strerror}") from exc


def _certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path))
    except ValueError:
        raise HandoutProblem(f"{path.name} is not a PEM certificate") from None


def _check_zip(directory: Path, files: list[Path]) -> None:
    """The zip to hand out holds `<name>/<file>` with the directory's bytes for each of `files`."""
    archive_path = directory / f"{directory.name}.zip"
    try:
        with zipfile.ZipFile(archive_path) as archive:
            stale = [p.name for p in files if _member(archive, f"{directory.name}/{p.name}") != p.read_bytes()]
    except FileNotFoundError:
        raise HandoutProblem(f"{archive_path.name} (the file to hand out) is missing") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise HandoutProblem(f"{archive_path.name} cannot be read: {exc}") from exc
    if stale:
        raise HandoutProblem(f"{archive_path.name} differs from the bundle directory ({', '.join(stale)}); "
                             "`invoke workshop --seats N` or `--roster FILE` rebuilds it")


def _member(archive: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        return archive.read(name)
    except KeyError:
        return None
