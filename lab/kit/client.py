"""A lab client's kit (`invoke kit`): `.lab/kits/<client>/` and `.lab/kits/<client>.zip`, from the lab's PKI.

The kit connects to the lab's two endpoints (the TLS port with server verification only, the mutual-TLS port
with the client's certificate) by the lab's address, sending and verifying the server certificate's name, so
it works with or without the hosts line. Kits follow the lab: `refresh_kits` brings every existing kit up to
date after certificates change (`invoke certs`, `client-cert`, `certs --rotate`), and `down --purge`
removes them (`remove_kits`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.errors import KitError
from lab.files import lab_lock
from lab.kit.connection import Connection, KitFiles
from lab.kit.programs import available_languages, language_notes
from lab.kit.readme import client_readme
from lab.kit.writer import KitResult, KitSpec, make_private_dir, read_manifest, write_kit
from lab.pki.paths import pki_paths
from lab.settings import Settings

T = TypeVar("T")

__all__ = ["client_kit_spec", "kits_dir", "make_client_kit", "refresh_kits", "refreshing_kits", "remove_kits",
           "write_client_kit"]


def kits_dir(settings: Settings) -> Path:
    """`<lab dir>/kits`: one directory and one zip per client (0700: the kits hold private keys)."""
    return settings.lab_dir / "kits"


def client_kit_spec(settings: Settings, client: str, languages: Sequence[str], *,
                    legacy_p12: bool = False) -> KitSpec:
    """What client `client`'s kit is made of; KitError when the lab has no certificate for it."""
    pki = pki_paths(settings)
    key_path, presented = pki.client_presented(client)
    if not key_path.is_file() or not presented.is_file():
        raise KitError(f"the lab has no certificate for client {client!r} ({presented} is missing)",
                       f"`invoke client-cert --name {client}` makes one, then run `invoke kit --client {client}`")
    trust = pki.server_trust
    if trust is None or not trust.is_file():
        raise KitError("the server certificate is trusted through the system's trust store: the kit has no CA "
                       "file to hand out", "set LAB_TRUST_CA to the CA that signed your server certificate")
    ca_pem, chain_pem, key_pem = (_read(path) for path in (trust, presented, key_path))
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        chain = tuple(x509.load_pem_x509_certificates(chain_pem))
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KitError(f"cannot read the certificate or key of {client!r}: {exc}",
                       f"`invoke client-cert --name {client} --force` re-issues them") from exc
    pkcs8 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    files = KitFiles()
    connection = Connection(
        address=settings.host_ip,
        server_name=settings.hostname,
        tls_port=settings.tls_port,
        mtls_port=settings.mtls_port,
        client_id=f"{client}-kit",
        topic=f"amlen-lab/kit/{client}",
        files=files,
    )
    root = kits_dir(settings)
    return KitSpec(
        name=client,
        dir=root / client,
        zip=root / f"{client}.zip",
        zip_root=client,
        connection=connection,
        ca=ca,
        chain=chain,
        key=key,
        pems={files.ca: (ca_pem, 0o644), files.cert: (chain_pem, 0o644), files.key: (pkcs8, 0o600)},
        readme=client_readme(client, connection, languages, legacy_p12=legacy_p12) + language_notes(languages),
        languages=tuple(languages),
        legacy_p12=legacy_p12,
        force_hint=f"move your copy elsewhere, or `invoke kit --client {client} --force` overwrites it",
    )


def write_client_kit(settings: Settings, client: str, languages: Sequence[str], *, legacy_p12: bool = False,
                     force: bool = False) -> KitResult:
    """Write (or bring up to date) client `client`'s kit with `languages`; see lab.kit.writer for the rules."""
    spec = client_kit_spec(settings, client, languages, legacy_p12=legacy_p12)
    make_private_dir(kits_dir(settings))
    return write_kit(spec, force=force)


def make_client_kit(settings: Settings, client: str, languages: Sequence[str], *, legacy_p12: bool = False,
                    force: bool = False) -> KitResult:
    """`invoke kit`: `client`'s kit (default: the lab's first client), written under the lab's lock."""
    with lab_lock(settings.lab_dir):
        return write_client_kit(settings, client or settings.client_names[0], languages, legacy_p12=legacy_p12,
                                force=force)


def refreshing_kits(settings: Settings, change: Callable[[], T]) -> tuple[T, list[KitResult | KitError]]:
    """Under the lab's lock, make a certificate `change`, then bring every kit up to date with it (kits follow the
    lab's certificates: `invoke certs`, `client-cert`, `certs --rotate`)."""
    with lab_lock(settings.lab_dir):
        return change(), refresh_kits(settings)


def refresh_kits(settings: Settings) -> list[KitResult | KitError]:
    """Bring every existing client kit up to date with the lab's files, keeping its languages and p12 form.

    A kit that cannot be refreshed (an edited file, a client whose certificate is gone) is reported, not
    raised: the command that changed the certificates has done its work.
    """
    results: list[KitResult | KitError] = []
    root = kits_dir(settings)
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        manifest = read_manifest(directory)
        if not directory.is_dir() or not manifest:
            continue
        wanted = manifest.get("languages")
        languages = [lang for lang in wanted if lang in available_languages()] if isinstance(wanted, list) else []
        try:
            results.append(write_client_kit(settings, directory.name, languages,
                                            legacy_p12=manifest.get("legacy_p12") is True))
        except KitError as exc:
            results.append(exc)
    return results


def remove_kits(settings: Settings) -> int:
    """Delete every kit (directories and zips; `down --purge`): the number of files removed."""
    root = kits_dir(settings)
    if not root.exists():
        return 0
    removed = sum(1 for path in root.rglob("*") if path.is_file())
    shutil.rmtree(root)
    return removed


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KitError(f"cannot read {path}: {exc.strerror}", "check the lab directory's permissions") from exc
