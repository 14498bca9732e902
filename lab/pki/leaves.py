"""Server and client certificates from the lab CA: issued, reused while good, re-issued when they would not work.

Files live in `settings.pki_dir` (mode 0700) under the guide's names: `test.server.key` / `test.server.crt`,
`<client>.key` / `<client>.crt`. Amlen's rules shape the choices: every key is RSA 2048 (Amlen matches key
and certificate by RSA modulus and rejects other key types) and leaf keys are written unencrypted (Amlen
crashes on encrypted keys, issues #188/#189).

Everything is idempotent: the CA (`lab.pki.ca`) is reused unless `new_ca=True`; leaves are re-issued only
when they would not work (missing, wrong CA, wrong host name, key mismatch, expiring soon).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.errors import CertError
from lab.pki.build import (
    KEY_BITS,
    RENEW_WITHIN_DAYS,
    KeyPool,
    LabCa,
    ServerNames,
    build_ca_cert,
    build_leaf,
    cert_pem,
    key_pem,
    key_stream,
    lifetime_days,
    new_keys,
    now,
)
from lab.pki.ca import ensure_signing_ca
from lab.pki.chain import after_leaf
from lab.pki.disk import Action, FileResult, prepare_dir, read, read_cert, write, write_if_changed
from lab.pki.info import common_name, days_left, describe_certificate, dns_names, is_issued_by, key_matches
from lab.pki.paths import PkiPaths, chain_of, pki_paths
from lab.settings import Settings
from lab.values import RESERVED_CLIENT

__all__ = [
    "Validity",
    "ensure_certificates",
    "ensure_leaves",
    "foreign_client",
    "issue_client_certs",
    "make_foreign_client",
    "parse_validity",
    "rotate_server",
    "server_dns_names",
]

# Client names become file names and CNs; the same rule as LAB_CLIENT_NAMES in lab.settings.
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def server_dns_names(settings: Settings) -> tuple[str, ...]:
    """The DNS names the server certificate carries: the lab's host name, and LAB_WORKSHOP_HOSTNAME if set."""
    extra = (settings.workshop_hostname,) if settings.workshop_hostname else ()
    return tuple(dict.fromkeys((settings.hostname, *extra)))


def ensure_certificates(
    settings: Settings, *, new_ca: bool = False, server_addresses: Sequence[str] = ()
) -> list[FileResult]:
    """Make or refresh the guide's set: CA (and intermediate), server certificate, the configured clients.

    An existing CA is reused unless `new_ca` is true; then every leaf is re-issued, since the old ones no
    longer chain. `server_addresses` are IP addresses the server certificate must also carry (a workshop port
    exposed on the network, for participants who connect by address); a certificate that already names them
    all is kept. With LAB_SERVER_CERT the user's certificate is checked and its chain written in serving order
    instead of a server certificate being made. Raises CertError when the CA key cannot be decrypted, a file
    cannot be written, or the user's certificate would not work.
    """
    paths = pki_paths(settings)
    names = _client_names(settings.client_names, paths, setting="LAB_CLIENT_NAMES")
    own = None
    if settings.own_server:
        from lab.pki.own import load_own_server

        own = load_own_server(settings)  # before anything is written: a bad file changes nothing
    prepare_dir(paths.dir)
    results: list[FileResult] = []
    with KeyPool(_keys_for_a_new_set(settings, paths, len(names), new_ca=new_ca)) as keys:
        ca = ensure_signing_ca(settings, paths, new_ca=new_ca, results=results, keys=keys)
        if own is not None:
            from lab.pki.own import write_own_server

            results += write_own_server(settings, own)
        else:
            results += _ensure_server(settings, ca, server_addresses, keys=keys)
        clients = [(name, *paths.client(name)) for name in names]
        results += _ensure_leaves(ca, clients, days=settings.client_days, keys=keys)
    return results


def _keys_for_a_new_set(settings: Settings, paths: PkiPaths, clients: int, *, new_ca: bool) -> int:
    """How many keys a set made from nothing needs (a new CA means new everything); 0 when a CA is there."""
    new_root = new_ca or not paths.ca_key.exists()
    new_intermediate = paths.two_tier and (new_root or not paths.intermediate_key.exists())
    if not new_root and not new_intermediate:
        return 0  # a warm set: leaves are re-issued one by one, if at all
    return int(new_root) + int(new_intermediate) + (0 if settings.own_server else 1) + clients


def rotate_server(settings: Settings) -> list[FileResult]:
    """A new server key and certificate (new serial) from the same CA, and its chain file: `--rotate`."""
    paths = pki_paths(settings)
    prepare_dir(paths.dir)
    results: list[FileResult] = []
    ca = ensure_signing_ca(settings, paths, new_ca=False, results=results)
    return results + _ensure_server(settings, ca, (), force=True)


def _ensure_server(settings: Settings, ca: LabCa, addresses: Sequence[str], *, force: bool = False,
                   keys: KeyPool | None = None) -> list[FileResult]:
    paths = pki_paths(settings)
    wanted = ServerNames(server_dns_names(settings), tuple(str(ipaddress.ip_address(a)) for a in addresses))
    server = [(settings.hostname, paths.server_key, paths.server_cert)]
    results = _ensure_leaves(ca, server, days=settings.server_days, server=wanted, force=force, chains=False,
                             keys=keys)
    # What Amlen serves after the leaf: the intermediate (LAB_PKI=intermediate), then the root (LAB_SERVE_ROOT).
    after = [read_cert(path) for path in after_leaf(paths, server=True, serve_root=settings.serve_root)]
    results += _write_chain(paths.server_cert, after)
    return results


def ensure_leaves(
    ca: LabCa, leaves: Sequence[tuple[str, Path, Path]], *, days: int, force: bool = False
) -> list[FileResult]:
    """Client certificates (common name, key path, certificate path) signed by `ca`: reused while good.

    The same rules as the lab's own client certificates: re-issued when missing, not from `ca`, for another
    CN, mismatched or expiring within RENEW_WITHIN_DAYS; `force` re-issues them all (new key, new serial).
    Keys are written 0600; new keys are generated in parallel. A CA that is an intermediate puts a chain file
    (leaf, then intermediate) beside each certificate.
    """
    return _ensure_leaves(ca, list(leaves), days=days, force=force)


@dataclass(frozen=True)
class Validity:
    """An explicit validity for `invoke client-cert` (the expiry drills): from `not_before`, for `days`."""

    not_before: dt.datetime | None = None
    days: int | None = None


def parse_validity(*, expired: bool = False, days: int = 0, not_before: str = "") -> Validity | None:
    """`invoke client-cert`'s --expired / --days / --not-before as a Validity (None: the usual lifetime)."""
    if expired and (days or not_before):
        raise CertError("--expired goes alone (it means: valid for a day, ended yesterday)",
                        "use --expired, or --days N with --not-before DATE")
    if days < 0:
        raise CertError(f"--days must be positive, not {days}", "e.g. --days 3; --expired for one that ended")
    if expired:
        return Validity(now() - dt.timedelta(days=2), 1)
    start = None
    if not_before:
        try:
            start = dt.datetime.fromisoformat(not_before)
        except ValueError:
            raise CertError(f"--not-before {not_before!r} is not a date", "e.g. 2030-01-01 or 2030-01-01T08:00 "
                            "(UTC)") from None
        start = start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start.astimezone(dt.UTC)
    return Validity(start, days or None) if start is not None or days else None


def issue_client_certs(settings: Settings, names: Iterable[str], *, force: bool = False,
                       validity: Validity | None = None) -> list[FileResult]:
    """Make client certificates `<name>.key`/`<name>.crt` signed by the lab CA (made first if missing).

    Existing valid ones are reused unless `force`, or a `validity` is asked for (then they are re-issued with
    it, even one that expired already or starts in the future: a certificate Amlen must refuse). The CA key
    is decrypted once, so many names are cheap (the RSA key generation, ~40 ms each, dominates).
    """
    paths = pki_paths(settings)
    wanted = _client_names(names, paths, setting="--name")
    if not wanted:
        raise CertError("no client name given", "pass --name NAME, or several at once: --name a,b,c")
    prepare_dir(paths.dir)
    results: list[FileResult] = []
    ca = ensure_signing_ca(settings, paths, new_ca=False, results=results)
    clients = [(name, *paths.client(name)) for name in wanted]
    start = validity.not_before if validity is not None else None
    if start is not None and start >= ca.cert.not_valid_after_utc:
        raise CertError(f"--not-before {start:%Y-%m-%d} is after the CA's own end "
                        f"({ca.cert.not_valid_after_utc:%Y-%m-%d}): no certificate from it can start then",
                        "pick an earlier date")
    days = validity.days if validity is not None and validity.days is not None else settings.client_days
    results += _ensure_leaves(ca, clients, days=days, force=force or validity is not None, not_before=start)
    return results


def _client_names(names: Iterable[str], paths: PkiPaths, *, setting: str) -> list[str]:
    """The names without repeats; CertError for one that is no safe file name or would overwrite the CA/server."""
    wanted = list(dict.fromkeys(names))
    reserved = {paths.ca_key.stem, paths.server_key.stem, paths.intermediate_key.stem, paths.server_ca.stem}
    for name in wanted:
        if not _CLIENT_NAME.match(name) or name in reserved or name.lower() == RESERVED_CLIENT:
            raise CertError(
                f"{setting}: {name!r} is not a usable client name",
                "use letters, digits, '.', '_' or '-', at most 64, and none of the CA and server files' names"
                " nor lab.admin (the admin identity)",
            )
    return wanted


def make_foreign_client(directory: Path, name: str = "intruder") -> tuple[Path, Path, Path]:
    """Write a throwaway CA plus a client key/cert it signed, NOT from the lab CA: for negative tests.

    Returns (foreign CA certificate, client key, client certificate); a mutual-TLS port must refuse them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, key = new_keys(2)  # side by side: on a cold `up` this runs while Amlen boots
    ca = LabCa(ca_key, build_ca_cert(ca_key, days=30, cn=f"{name} foreign CA"))
    cert = build_leaf(ca, key, name, days=30)
    ca_path = directory / f"{name}-CA.pem"
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    write(ca_path, cert_pem(ca.cert), mode=0o644)
    write(key_path, key_pem(key), mode=0o600)
    write(cert_path, cert_pem(cert), mode=0o644)
    return ca_path, key_path, cert_path


def foreign_client(directory: Path, name: str = "intruder") -> tuple[Path, Path]:
    """(key, certificate) of a client from another CA, kept in `directory` and made again only when missing or
    about to expire: the verification's row 4, without two fresh RSA keys on every run."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    if not (key.is_file() and cert.is_file()) or describe_certificate(cert).days_left < 1:
        _ca, key, cert = make_foreign_client(directory, name)
    return key, cert


# --- leaves ---------------------------------------------------------------------------------------------


def _ensure_leaves(
    ca: LabCa,
    leaves: list[tuple[str, Path, Path]],
    *,
    days: int,
    server: ServerNames | None = None,
    force: bool = False,
    not_before: dt.datetime | None = None,
    chains: bool = True,
    keys: KeyPool | None = None,
) -> list[FileResult]:
    """Reuse each working (name, key path, cert path) pair, or issue a fresh one and say why.

    `server` makes them server certificates naming those DNS names and addresses; otherwise client ones.
    With `chains`, each certificate gets its chain file when `ca` is an intermediate (and loses a stale one
    when it is not).
    """
    problems = ["--force" if force else _leaf_problem(ca, k, c, n, server=server) for n, k, c in leaves]
    needed = sum(problem is not None for problem in problems)
    # Keys arrive as they are made: each certificate is signed and written while the next keys are being made.
    fresh = keys.take_many(needed) if keys is not None else key_stream(needed)
    results: list[FileResult] = []
    for (name, key_path, cert_path), problem in zip(leaves, problems, strict=True):
        if problem is None:
            cert = read_cert(cert_path)
            results += [
                FileResult(key_path, Action.REUSED, f"RSA {KEY_BITS}, matches the certificate"),
                FileResult(cert_path, Action.REUSED, f"signed by the CA, valid for {days_left(cert)} more days"),
            ]
            results += _write_chain(cert_path, ca.chain) if chains else []
            continue
        key = next(fresh)
        cert = build_leaf(ca, key, name, days=days, server=server, not_before=not_before)
        # Key first: a crash in between leaves a mismatched pair, which the next run detects and re-issues.
        write(key_path, key_pem(key), mode=0o600)
        write(cert_path, cert_pem(cert), mode=0o644)
        action = Action.CREATED if problem == "missing" else Action.REISSUED
        results += [
            FileResult(key_path, action, f"{problem}; new RSA {KEY_BITS} key, unencrypted (Amlen needs that)"),
            FileResult(cert_path, action, f"{problem}; {_validity_words(cert)}"),
        ]
        results += _write_chain(cert_path, ca.chain) if chains else []
    return results


def _write_chain(cert_path: Path, after: Sequence[x509.Certificate]) -> list[FileResult]:
    """`<leaf>.chain.pem` = the leaf, then `after`; written only when its bytes change, removed when `after`
    is empty (the one-tier PKI needs none). The FileResult is there only when something was done."""
    chain = chain_of(cert_path)
    if not after:
        if chain.exists():
            chain.unlink()
            return [FileResult(chain, Action.REISSUED, "removed: nothing goes after the leaf in this PKI")]
        return []
    action = write_if_changed(chain, read(cert_path) + b"".join(cert_pem(c) for c in after), mode=0o644)
    if action is None:
        return []
    names = ", then ".join(common_name(c) or "a CA" for c in after)
    return [FileResult(chain, action, f"the leaf, then {names}: what a client trusting only the root needs")]


def _validity_words(cert: x509.Certificate) -> str:
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC (asked for: Amlen must refuse it)"
    if cert.not_valid_before_utc > now:
        return f"valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (not yet: Amlen must refuse it until then)"
    return f"valid for {lifetime_days(cert)} days"


def _leaf_problem(
    ca: LabCa, key_path: Path, cert_path: Path, name: str, *, server: ServerNames | None
) -> str | None:
    """Why this leaf must be (re-)issued, in words; None when it is fine as it is."""
    if not cert_path.exists():
        return "missing"
    if not key_path.exists():
        return "its key file is missing"
    try:
        cert = x509.load_pem_x509_certificate(read(cert_path))
        # Only the public half is compared here; the full RSA consistency check (about 35 ms a key) is left to
        # the lint that runs before any upload, so a warm `up` does not pay for it twice.
        key = serialization.load_pem_private_key(read(key_path), password=None, unsafe_skip_rsa_key_validation=True)
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
