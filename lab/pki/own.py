"""Your own server certificate (the guide's "if you've already got a certificate from a well-known CA").

`LAB_SERVER_CERT` and `LAB_SERVER_KEY` (with `LAB_SERVER_KEY_PASSWORD` for an encrypted key) replace the
server certificate the lab would make; `LAB_TRUST_CA` names the root clients should trust (default: the root
in the file, else the system's trust store). Those files are the user's: read, never written or deleted. The
lab writes what Amlen is given next to its own files: the chain in serving order (`test.server.chain.pem`,
re-ordered when the file had it out of order) and, when the file carries its root, that root
(`server-ca.pem`) for the lab's clients to trust.

Everything Amlen would refuse, or accept and then fail with, is stopped here, before any upload, in one
line with a hint: an EC key (Amlen takes RSA only and says "has a password", CWLNA6191), a key that does not
match, dates (Amlen serves an expired certificate without a word), a SAN without LAB_HOSTNAME, and a missing
intermediate that no client could supply.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.errors import CertError
from lab.pki.build import cert_pem
from lab.pki.chain import is_self_signed, order_bundle, verify_path
from lab.pki.disk import Action, FileResult, write_if_changed
from lab.pki.info import covers_hostname, dns_names, is_issued_by, key_kind, key_matches
from lab.pki.info import display_name as _cn
from lab.pki.paths import pki_paths
from lab.settings import Settings

__all__ = ["OwnServer", "load_own_server", "system_roots", "write_own_server"]

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_RSA_HINT = ("re-issue it with an RSA key: `step certificate create --kty RSA --size 2048 ...`, `mkcert` (RSA "
             "unless you pass -ecdsa), or `openssl req -newkey rsa:2048 ...`")


@dataclass(frozen=True)
class OwnServer:
    """The user's certificate as the lab serves it: the chain in order, the key's bytes, and what was done."""

    chain: tuple[x509.Certificate, ...]
    key: bytes
    root: x509.Certificate | None  # the root from LAB_SERVER_CERT, when it has one
    notes: tuple[str, ...]


def load_own_server(settings: Settings) -> OwnServer:
    """Read and check LAB_SERVER_CERT / LAB_SERVER_KEY; CertError (one line, a hint) for what Amlen would refuse."""
    assert settings.server_cert is not None and settings.server_key is not None  # the caller checked
    cert_file, key_file = settings.server_cert, settings.server_key
    certs = _read_certs(cert_file)
    key_bytes = _read_user(key_file, "LAB_SERVER_KEY")
    key = _load_key(key_bytes, key_file, settings)
    order = order_bundle(certs)
    leaf = order.chain[0]
    if not key_matches(key, leaf):
        raise CertError(f"LAB_SERVER_KEY {key_file} does not belong to the certificate in {cert_file} "
                        "(Amlen would answer CWLNA6189)", "give the key the certificate was issued for")
    _check_dates(leaf, cert_file)
    names = dns_names(leaf)
    if not covers_hostname(names, settings.hostname):
        raise CertError(
            f"{cert_file} is for {', '.join(names) or 'no DNS name'}, not LAB_HOSTNAME={settings.hostname}: "
            "clients would refuse the server",
            f"set LAB_HOSTNAME to a name it covers ({', '.join(names)}), or use a certificate for "
            f"{settings.hostname}" if names else f"use a certificate whose SAN names {settings.hostname}",
        )
    notes: list[str] = []
    if order.reordered:
        notes.append(f"{cert_file.name} had its certificates out of order: uploaded leaf first, then each issuer")
    chain = list(order.chain)
    anchors = _anchors(settings)
    if order.missing_issuer is not None:
        # The chain stops below a root: the next issuer must come from LAB_TRUST_CA (serve any intermediate found
        # there, so clients that trust only the root can follow) or be a root the clients trust.
        extra = _climb(chain[-1], anchors)
        chain += extra
        if extra:
            notes.append(f"added {len(extra)} intermediate(s) from LAB_TRUST_CA after the leaf")
        top = chain[-1]
        if not is_self_signed(top) and not any(is_issued_by(top, a) for a in anchors if is_self_signed(a)):
            where = f"neither in {cert_file.name} nor in LAB_TRUST_CA" if settings.trust_ca else \
                f"not in {cert_file.name}, and no root of the system's trust store signed it"
            raise CertError(
                f"{cert_file} lacks the intermediate {_cn(top.issuer)!r} that signed {_cn(top.subject)!r}: it is "
                f"{where}, so clients that trust only the root cannot build the chain",
                "append the intermediate certificate(s) to LAB_SERVER_CERT (your CA's chain or fullchain file), "
                "or set LAB_TRUST_CA to the CA certificate your clients trust",
            )
    root = chain[-1] if is_self_signed(chain[-1]) else None
    problem = verify_path(chain, anchors + ([root] if root is not None else []))
    if problem is not None:
        raise CertError(f"{cert_file} does not verify: {problem}",
                        "check LAB_SERVER_CERT and LAB_TRUST_CA: the chain must end at the root your clients trust")
    if root is not None and not settings.serve_root:
        chain.pop()
        notes.append("its root is not served (clients have it; LAB_SERVE_ROOT=true sends it for trust on first use)")
    elif root is None and settings.serve_root and settings.trust_ca is not None:
        # LAB_SERVE_ROOT: the root goes last, and LAB_TRUST_CA is where it is.
        trusted_root = next((a for a in anchors if is_self_signed(a) and is_issued_by(chain[-1], a)), None)
        if trusted_root is not None:
            chain.append(trusted_root)
            notes.append("the root from LAB_TRUST_CA is served last (LAB_SERVE_ROOT)")
    return OwnServer(tuple(chain), key_bytes, root, tuple(notes))


def write_own_server(settings: Settings, own: OwnServer) -> list[FileResult]:
    """Write the served chain (and the root, for the lab's clients) next to the lab's files; say what it did."""
    paths = pki_paths(settings)
    results = [_write_if_changed(paths.server_chain, b"".join(cert_pem(c) for c in own.chain),
                                 f"the chain Amlen serves, from {settings.server_cert}: " + (
                                     "; ".join(own.notes) or "leaf, then its issuers"))]
    trust = paths.dir / "server-ca.pem"
    if own.root is not None and settings.trust_ca is None:
        results.append(_write_if_changed(trust, cert_pem(own.root), f"the root from {settings.server_cert}: what "
                                         "clients trust"))
    else:
        trust.unlink(missing_ok=True)  # the lab's copy; the clients trust LAB_TRUST_CA or the system store
    return results


# --- helpers --------------------------------------------------------------------------------------------


def _read_user(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertError(f"{setting}: {path} does not exist", f"point {setting} at the file (an absolute path)") \
            from None
    except OSError as exc:
        raise CertError(f"{setting}: cannot read {path}: {exc.strerror}", "check the file's permissions") from exc


def _read_certs(path: Path, setting: str = "LAB_SERVER_CERT") -> list[x509.Certificate]:
    """Every PEM certificate in one of the user's files; CertError naming the setting when there is none."""
    data = _read_user(path, setting)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise CertError(f"{setting}: {path} holds no PEM certificate (Amlen would answer CWLNA6180)",
                        "give the PEM file (-----BEGIN CERTIFICATE-----); convert DER with `openssl x509 -inform der`")
    return certs


def _load_key(data: bytes, path: Path, settings: Settings) -> rsa.RSAPrivateKey:
    password = settings.server_key_password.get_secret_value().encode() if settings.server_key_password else None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted
        if password is None:
            raise CertError(f"LAB_SERVER_KEY {path} is encrypted and LAB_SERVER_KEY_PASSWORD is not set (Amlen "
                            "would answer CWLNA6191)", "set LAB_SERVER_KEY_PASSWORD; the lab sends it to Amlen as "
                            "KeyFilePassword") from None
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except ValueError:
            raise CertError(f"LAB_SERVER_KEY_PASSWORD does not decrypt {path} (Amlen would answer CWLNA6193)",
                            "set the password the key was encrypted with") from None
    except ValueError:
        raise CertError(f"LAB_SERVER_KEY: {path} is not a PEM private key (Amlen would answer CWLNA6191)",
                        "give the PEM key file (-----BEGIN ... PRIVATE KEY-----)") from None
    else:
        if password is not None:
            raise CertError(f"LAB_SERVER_KEY_PASSWORD is set, but {path} is not encrypted",
                            "unset LAB_SERVER_KEY_PASSWORD")
    if not isinstance(key, rsa.RSAPrivateKey):
        kind, bits = key_kind(key.public_key())
        raise CertError(f"LAB_SERVER_KEY {path} is an {kind} {bits} key: Amlen takes RSA keys only (it would "
                        "answer CWLNA6191, 'the key file has a password')", _RSA_HINT)
    return key


def _check_dates(cert: x509.Certificate, path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        raise CertError(f"{path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: Amlen would accept and "
                        "serve it, and every client would refuse it", "renew it with your CA")
    if cert.not_valid_before_utc > now:
        raise CertError(f"{path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: clients "
                        "would refuse it until then", "check this machine's clock, or wait")


def _anchors(settings: Settings) -> list[x509.Certificate]:
    """What the clients trust: LAB_TRUST_CA's certificates, else the system store's roots."""
    if settings.trust_ca is not None:
        return _read_certs(settings.trust_ca, "LAB_TRUST_CA")
    return system_roots()


def system_roots() -> list[x509.Certificate]:
    """The roots of the system's trust store (OpenSSL's default CA file), for a certificate from a public CA."""
    cafile = ssl.get_default_verify_paths().cafile
    try:
        data = Path(cafile).read_bytes() if cafile else b""
    except OSError:
        return []
    roots = []
    # One by one, quietly: a system store may hold a certificate newer cryptography frowns upon (a negative
    # serial), and one odd root must not hide the others.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in _PEM_BLOCK.findall(data):
            try:
                roots.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return roots


def _climb(top: x509.Certificate, pool: list[x509.Certificate]) -> list[x509.Certificate]:
    """Intermediates from `pool` above `top`, up to (not including) a root."""
    found: list[x509.Certificate] = []
    current = top
    while True:
        issuer = next((c for c in pool if not is_self_signed(c) and c not in found and is_issued_by(current, c)),
                      None)
        if issuer is None:
            return found
        found.append(issuer)
        current = issuer


def _write_if_changed(path: Path, data: bytes, reason: str) -> FileResult:
    return FileResult(path, write_if_changed(path, data, mode=0o644) or Action.REUSED, reason)
