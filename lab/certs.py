"""The lab's toy PKI: the guide's CA, server and client certificates, made with `cryptography`.

Files live in `settings.pki_dir` (mode 0700) under the guide's names: `myCA.key` / `myCA.pem`,
`test.server.key` / `test.server.crt`, `<client>.key` / `<client>.crt`. Amlen's rules shape the choices:
every key is RSA 2048 (Amlen matches key and certificate by RSA modulus and rejects other key types), the
server key is written unencrypted (Amlen crashes on encrypted keys, issues #188/#189), and only the CA key is
encrypted at rest, like the guide's `genrsa -des3`.

Everything is idempotent: the CA is precious and reused byte for byte unless `new_ca=True`; leaves are
re-issued only when they would not work (missing, wrong CA, wrong host name, key mismatch, expiring soon).
Inspection and the pre-upload lint live in `lab.certinfo` (re-exported here).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.certbuild import (
    CA_COMMON_NAME,
    CA_KEY_USAGE,
    CA_PATH_LENGTH,
    CLIENT_EKU,
    CLIENT_KEY_USAGE,
    KEY_BITS,
    RENEW_WITHIN_DAYS,
    SERVER_EKU,
    SERVER_KEY_USAGE,
    SIGNATURE_HASH,
    LabCa,
    ServerNames,
    build_ca_cert,
    build_leaf,
    cert_pem,
    key_pem,
    lifetime_days,
    new_key,
    new_keys,
    now,
    subject_name,
)
from lab.certinfo import (
    CertInfo,
    PkiPaths,
    check_certificates,
    common_name,
    days_left,
    describe_certificate,
    dns_names,
    is_issued_by,
    key_matches,
    lint_certificates,
    pki_paths,
)
from lab.errors import CertError
from lab.files import atomic_write, private_dir
from lab.settings import Settings

# The inspection half (lab.certinfo) and the certificate profile (lab.certbuild) are re-exported, so
# `lab.certs` is the one place to import from.
__all__ = [
    "CA_COMMON_NAME",
    "CA_KEY_USAGE",
    "CA_PATH_LENGTH",
    "CLIENT_EKU",
    "CLIENT_KEY_USAGE",
    "KEY_BITS",
    "SERVER_EKU",
    "SERVER_KEY_USAGE",
    "SIGNATURE_HASH",
    "Action",
    "CertInfo",
    "FileResult",
    "LabCa",
    "PkiPaths",
    "check_certificates",
    "describe_certificate",
    "ensure_certificates",
    "ensure_leaves",
    "foreign_client",
    "issue_client_certs",
    "lab_ca",
    "lint_certificates",
    "make_foreign_client",
    "new_keys",
    "pki_paths",
    "server_dns_names",
    "subject_name",
]

# Client names become file names and CNs; the same rule as LAB_CLIENT_NAMES in lab.settings.
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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


def server_dns_names(settings: Settings) -> tuple[str, ...]:
    """The DNS names the server certificate carries: the lab's host name, and LAB_WORKSHOP_HOSTNAME if set."""
    extra = (settings.workshop_hostname,) if settings.workshop_hostname else ()
    return tuple(dict.fromkeys((settings.hostname, *extra)))


def ensure_certificates(
    settings: Settings, *, new_ca: bool = False, server_addresses: Sequence[str] = ()
) -> list[FileResult]:
    """Make or refresh the guide's set: CA, server certificate and the configured client certificates.

    An existing CA is reused unless `new_ca` is true; then every leaf is re-issued, since the old ones no
    longer chain. `server_addresses` are IP addresses the server certificate must also carry (a workshop port
    exposed on the network, for participants who connect by address); a certificate that already names them
    all is kept. Raises CertError when the CA key cannot be decrypted or a file cannot be written.
    """
    paths = pki_paths(settings)
    names = _client_names(settings.client_names, paths, setting="LAB_CLIENT_NAMES")
    _prepare_dir(paths.dir)
    results: list[FileResult] = []
    ca = _ensure_ca(settings, paths, new_ca=new_ca, results=results)
    wanted = ServerNames(server_dns_names(settings), tuple(str(ipaddress.ip_address(a)) for a in server_addresses))
    server = [(settings.hostname, paths.server_key, paths.server_cert)]
    results += _ensure_leaves(ca, server, days=settings.server_days, server=wanted)
    clients = [(name, *paths.client(name)) for name in names]
    results += _ensure_leaves(ca, clients, days=settings.client_days)
    return results


def lab_ca(settings: Settings) -> LabCa:
    """The lab CA, loaded with its passphrase (made first when there is none, as `invoke client-cert` does)."""
    paths = pki_paths(settings)
    _prepare_dir(paths.dir)
    return _ensure_ca(settings, paths, new_ca=False, results=[])


def ensure_leaves(
    ca: LabCa, leaves: Sequence[tuple[str, Path, Path]], *, days: int, force: bool = False
) -> list[FileResult]:
    """Client certificates (common name, key path, certificate path) signed by `ca`: reused while good.

    The same rules as the lab's own client certificates: re-issued when missing, not from `ca`, for another
    CN, mismatched or expiring within RENEW_WITHIN_DAYS; `force` re-issues them all (new key, new serial).
    Keys are written 0600; new keys are generated in parallel.
    """
    return _ensure_leaves(ca, list(leaves), days=days, force=force)


def issue_client_certs(settings: Settings, names: Iterable[str], *, force: bool = False) -> list[FileResult]:
    """Make client certificates `<name>.key`/`<name>.crt` signed by the lab CA (made first if missing).

    Existing valid ones are reused unless `force`. The CA key is decrypted once, so many names are cheap
    (the RSA key generation, ~40 ms each, dominates).
    """
    paths = pki_paths(settings)
    wanted = _client_names(names, paths, setting="--name")
    if not wanted:
        raise CertError("no client name given", "pass --name NAME, or several at once: --name a,b,c")
    _prepare_dir(paths.dir)
    results: list[FileResult] = []
    ca = _ensure_ca(settings, paths, new_ca=False, results=results)
    clients = [(name, *paths.client(name)) for name in wanted]
    results += _ensure_leaves(ca, clients, days=settings.client_days, force=force)
    return results


def _client_names(names: Iterable[str], paths: PkiPaths, *, setting: str) -> list[str]:
    """The names without repeats; CertError for one that is no safe file name or would overwrite the CA/server."""
    wanted = list(dict.fromkeys(names))
    reserved = {paths.ca_key.stem, paths.server_key.stem}
    for name in wanted:
        if not _CLIENT_NAME.match(name) or name in reserved:
            raise CertError(
                f"{setting}: {name!r} is not a usable client name",
                "use letters, digits, '.', '_' or '-', at most 64, and neither 'myCA' nor 'test.server'",
            )
    return wanted


def make_foreign_client(directory: Path, name: str = "intruder") -> tuple[Path, Path, Path]:
    """Write a throwaway CA plus a client key/cert it signed, NOT from the lab CA: for negative tests.

    Returns (foreign CA certificate, client key, client certificate); a mutual-TLS port must refuse them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = new_key()
    ca = LabCa(ca_key, build_ca_cert(ca_key, days=30, cn=f"{name} foreign CA"))
    key = new_key()
    cert = build_leaf(ca, key, name, days=30)
    ca_path = directory / f"{name}-CA.pem"
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    _write(ca_path, cert_pem(ca.cert), mode=0o644)
    _write(key_path, key_pem(key), mode=0o600)
    _write(cert_path, cert_pem(cert), mode=0o644)
    return ca_path, key_path, cert_path


def foreign_client(directory: Path, name: str = "intruder") -> tuple[Path, Path]:
    """(key, certificate) of a client from another CA, kept in `directory` and made again only when missing or
    about to expire: the verification's row 4, without two fresh RSA keys on every run."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    if not (key.is_file() and cert.is_file()) or describe_certificate(cert).days_left < 1:
        _ca, key, cert = make_foreign_client(directory, name)
    return key, cert


# --- the CA ---------------------------------------------------------------------------------------------


def _ensure_ca(settings: Settings, paths: PkiPaths, *, new_ca: bool, results: list[FileResult]) -> LabCa:
    """Load the existing CA (byte for byte untouched) or make one; record what happened in `results`."""
    have_key, have_cert = paths.ca_key.exists(), paths.ca_cert.exists()
    if not new_ca and have_key:
        passphrase = _passphrase(settings, paths, results=results, create=False)
        key = _load_ca_key(paths.ca_key, passphrase)
        if have_cert:
            cert = _read_cert(paths.ca_cert)
            if not key_matches(key, cert):
                raise CertError(
                    f"{paths.ca_cert} does not belong to the key {paths.ca_key}",
                    "restore the matching pair from a backup, or start over with `invoke certs --new-ca`",
                )
            _refuse_expired_ca(cert, paths.ca_cert)
            results += [
                FileResult(paths.ca_key, Action.REUSED, "existing CA key (encrypted)"),
                FileResult(paths.ca_cert, Action.REUSED, f"valid for {days_left(cert)} more days"),
            ]
            return LabCa(key, cert)
        # Same key and subject give the same SKI, so certificates it signed before still chain.
        cert = build_ca_cert(key, days=settings.ca_days)
        _write(paths.ca_cert, cert_pem(cert), mode=0o644)
        results += [
            FileResult(paths.ca_key, Action.REUSED, "existing CA key (encrypted)"),
            FileResult(paths.ca_cert, Action.REISSUED, "was missing; re-made from the existing CA key"),
        ]
        return LabCa(key, cert)
    if not new_ca and have_cert:
        raise CertError(
            f"the CA certificate {paths.ca_cert} exists but its key {paths.ca_key} is missing",
            "restore myCA.key from a backup; or make a new CA with `invoke certs --new-ca` "
            "and trust the new myCA.pem wherever the old one was trusted",
        )
    passphrase = _passphrase(settings, paths, results=results, create=True)
    key = new_key()
    cert = build_ca_cert(key, days=settings.ca_days)
    action, reason = (Action.REISSUED, "--new-ca asked for it") if have_key else (Action.CREATED, "new CA")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    # Key first: a crash between the writes leaves a key without its certificate, which the next run repairs.
    _write(paths.ca_key, key_pem, mode=0o600)
    _write(paths.ca_cert, cert_pem(cert), mode=0o644)
    results += [
        FileResult(paths.ca_key, action, f"{reason}; RSA {KEY_BITS}, encrypted with the CA passphrase"),
        FileResult(paths.ca_cert, action, f"{reason}; valid for {settings.ca_days} days"),
    ]
    return LabCa(key, cert)


def _passphrase(settings: Settings, paths: PkiPaths, *, results: list[FileResult], create: bool) -> bytes:
    """LAB_CA_PASSPHRASE if set, else the one kept in the lab directory, generated once when `create`."""
    # An empty LAB_CA_PASSPHRASE= line in .env means "not set" (and PEM encryption needs a non-empty one).
    if settings.ca_passphrase is not None and settings.ca_passphrase.get_secret_value():
        return settings.ca_passphrase.get_secret_value().encode()
    file = paths.passphrase_file
    if file.exists():
        try:
            value = file.read_bytes().strip()
        except OSError as exc:
            raise CertError(f"cannot read {file}: {exc.strerror}", "check its permissions") from exc
        if value:
            results.append(FileResult(file, Action.REUSED, "CA passphrase (never printed)"))
            return value
    if not create:
        raise CertError(
            f"the CA key {paths.ca_key} is encrypted, but LAB_CA_PASSPHRASE is not set and {file} is missing",
            "set LAB_CA_PASSPHRASE to the CA's passphrase; only if it is lost, `invoke certs --new-ca` "
            "makes a new CA, and mind that the CA is precious: everything that trusts it must be updated",
        )
    value = secrets.token_urlsafe(32).encode()
    _write(file, value + b"\n", mode=0o600)
    results.append(FileResult(file, Action.CREATED, "generated CA passphrase (never printed)"))
    return value


def _load_ca_key(path: Path, passphrase: bytes) -> rsa.RSAPrivateKey:
    data = _read(path)
    # OpenSSL's RSA self-check costs ~35 ms per key load; the lab made this key, and `key_matches` still ties
    # it to myCA.pem, so the check would only slow every `up` down.
    try:
        key = serialization.load_pem_private_key(data, password=passphrase, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        # An unencrypted CA key (e.g. the user's own) still works; the lint is not about the CA key.
        key = serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    except ValueError as exc:
        raise CertError(
            f"cannot decrypt the CA key {path}: wrong passphrase (or not a PEM key)",
            "set LAB_CA_PASSPHRASE to the passphrase it was made with; only if it is lost, run "
            "`invoke certs --new-ca`, and mind that the CA is precious: everything that trusts it must be updated",
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertError(f"the CA key {path} is not an RSA key", "make a new CA with `invoke certs --new-ca`")
    return key


def _refuse_expired_ca(cert: x509.Certificate, path: Path) -> None:
    if cert.not_valid_after_utc <= now():
        raise CertError(
            f"the CA {path} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
            "make a new CA with `invoke certs --new-ca` and trust the new myCA.pem",
        )


# --- leaves ---------------------------------------------------------------------------------------------


def _ensure_leaves(
    ca: LabCa,
    leaves: list[tuple[str, Path, Path]],
    *,
    days: int,
    server: ServerNames | None = None,
    force: bool = False,
) -> list[FileResult]:
    """Reuse each working (name, key path, cert path) pair, or issue a fresh one and say why.

    `server` makes them server certificates naming those DNS names and addresses; otherwise client ones.
    """
    problems = ["--force" if force else _leaf_problem(ca, k, c, n, server=server) for n, k, c in leaves]
    keys = iter(new_keys(sum(problem is not None for problem in problems)))
    results: list[FileResult] = []
    for (name, key_path, cert_path), problem in zip(leaves, problems, strict=True):
        if problem is None:
            cert = _read_cert(cert_path)
            results += [
                FileResult(key_path, Action.REUSED, f"RSA {KEY_BITS}, matches the certificate"),
                FileResult(cert_path, Action.REUSED, f"signed by the CA, valid for {days_left(cert)} more days"),
            ]
            continue
        key = next(keys)
        cert = build_leaf(ca, key, name, days=days, server=server)
        # Key first: a crash in between leaves a mismatched pair, which the next run detects and re-issues.
        _write(key_path, key_pem(key), mode=0o600)
        _write(cert_path, cert_pem(cert), mode=0o644)
        action = Action.CREATED if problem == "missing" else Action.REISSUED
        results += [
            FileResult(key_path, action, f"{problem}; new RSA {KEY_BITS} key, unencrypted (Amlen needs that)"),
            FileResult(cert_path, action, f"{problem}; valid for {lifetime_days(cert)} days"),
        ]
    return results


def _leaf_problem(
    ca: LabCa, key_path: Path, cert_path: Path, name: str, *, server: ServerNames | None
) -> str | None:
    """Why this leaf must be (re-)issued, in words; None when it is fine as it is."""
    if not cert_path.exists():
        return "missing"
    if not key_path.exists():
        return "its key file is missing"
    try:
        cert = x509.load_pem_x509_certificate(_read(cert_path))
        # Only the public half is compared here; the full RSA consistency check (about 35 ms a key) is left to
        # the lint that runs before any upload, so a warm `up` does not pay for it twice.
        key = serialization.load_pem_private_key(_read(key_path), password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        return "the key or certificate cannot be read (or the key is encrypted)"
    if not isinstance(key, rsa.RSAPrivateKey):
        return "the key is not RSA"
    if not key_matches(key, cert):
        return "the key does not match the certificate"
    if not is_issued_by(cert, ca.cert):
        return "not signed by the current CA"
    if server is not None:
        names = dns_names(cert)
        if name not in names:
            return f"issued for {', '.join(names) or 'no DNS name'}, not {name}"
        # Extra names are added, never dropped: a participant may still use an address the lab exposed before.
        missing = [n for n in server.dns if n not in names]
        missing += [a for a in server.ips if a not in _ip_names(cert)]
        if missing:
            return f"does not name {', '.join(missing)}"
    elif common_name(cert) != name:
        return f"its CN is {common_name(cert)!r}, not {name!r}"
    left = days_left(cert)
    if left < RENEW_WITHIN_DAYS:
        return f"expired {-left} days ago" if left < 0 else f"expires in {left} days"
    return None


def _ip_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(address) for address in san.get_values_for_type(x509.IPAddress)]


# --- files ----------------------------------------------------------------------------------------------


def _prepare_dir(directory: Path) -> None:
    try:
        private_dir(directory)
    except OSError as exc:
        raise CertError(f"cannot create {directory}: {exc.strerror}", "check LAB_DIR's permissions") from exc


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from exc


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path))
    except ValueError as exc:
        raise CertError(f"{path} is not a PEM certificate", "restore it, or `invoke certs --new-ca`") from exc


def _write(path: Path, data: bytes, *, mode: int) -> None:
    try:
        atomic_write(path, data, mode=mode)
    except OSError as exc:
        raise CertError(
            f"cannot write {path}: {exc.strerror or exc}", "check free space and permissions of LAB_DIR"
        ) from exc
