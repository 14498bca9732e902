"""The lab CA: made once, then reused byte for byte, with its key encrypted at rest like the guide's `genrsa -des3`.

The CA is precious (browsers and other participants may trust it), so nothing here replaces it unless asked
(`new_ca`, i.e. `invoke certs --new-ca`). The passphrase is LAB_CA_PASSPHRASE, else one generated once into
the lab directory (0600) and never printed.

With `LAB_PKI=intermediate` the root signs an intermediate CA (`myIntermediateCA.pem`, its key encrypted with
the same passphrase, pathlen 0) and the intermediate signs every leaf, as a real CA's issuing CA does. The
guide's one-tier root has pathlen 0 and so cannot sign an intermediate: switching modes then needs
`--new-ca`, and says so; it never replaces a CA by itself. Switching back keeps both CAs on disk.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.errors import CertError
from lab.pki.build import (
    CA_PATH_LENGTH,
    KEY_BITS,
    RENEW_WITHIN_DAYS,
    ROOT_PATH_LENGTH_TWO_TIER,
    KeyPool,
    LabCa,
    build_ca_cert,
    build_intermediate,
    cert_pem,
    new_key,
    now,
)
from lab.pki.disk import Action, FileResult, prepare_dir, read, read_cert, write
from lab.pki.info import days_left, is_ca, is_issued_by, key_matches, path_length
from lab.pki.paths import PkiPaths, pki_paths
from lab.settings import Settings

__all__ = ["ensure_ca", "ensure_signing_ca", "signing_ca"]


def signing_ca(settings: Settings) -> LabCa:
    """The CA that signs the lab's leaves (the intermediate with LAB_PKI=intermediate, else the root), loaded
    with its passphrase; made first when there is none, as `invoke client-cert` does."""
    paths = pki_paths(settings)
    prepare_dir(paths.dir)
    return ensure_signing_ca(settings, paths, new_ca=False, results=[])


def ensure_signing_ca(settings: Settings, paths: PkiPaths, *, new_ca: bool, results: list[FileResult],
                      keys: KeyPool | None = None) -> LabCa:
    """The root (`ensure_ca`) and, in the two-tier PKI, the intermediate under it; returns the one that signs.

    New keys come from `keys` when given (made ahead, in parallel), else are made on the spot."""
    root = ensure_ca(settings, paths, new_ca=new_ca, results=results, keys=keys)
    if not paths.two_tier:
        return root
    limit = path_length(root.cert)
    if limit is not None and limit < 1:
        raise CertError(
            f"LAB_PKI=intermediate needs a root that may sign a CA, and {paths.ca_cert} may sign leaves only "
            "(pathlen 0, the guide's one-tier CA); nothing was changed",
            "`invoke certs --new-ca` replaces it: a new root and intermediate, every certificate re-issued "
            "(trust the new myCA.pem wherever the old one was trusted); or keep LAB_PKI=root",
        )
    return _ensure_intermediate(settings, paths, root, renew=new_ca, results=results, keys=keys)


def ensure_ca(settings: Settings, paths: PkiPaths, *, new_ca: bool, results: list[FileResult],
              keys: KeyPool | None = None) -> LabCa:
    """Load the existing CA (byte for byte untouched) or make one; record what happened in `results`.

    Raises CertError when the CA key cannot be decrypted, its certificate belongs to another key, or it expired.
    """
    have_key, have_cert = paths.ca_key.exists(), paths.ca_cert.exists()
    if not new_ca and have_key:
        passphrase = _passphrase(settings, paths, results=results, create=False)
        key = _load_ca_key(paths.ca_key, passphrase)
        if have_cert:
            cert = read_cert(paths.ca_cert)
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
        cert = build_ca_cert(key, days=settings.ca_days, path_length=_root_path_length(paths))
        write(paths.ca_cert, cert_pem(cert), mode=0o644)
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
    key = keys.take() if keys is not None else new_key()
    cert = build_ca_cert(key, days=settings.ca_days, path_length=_root_path_length(paths))
    action, reason = (Action.REISSUED, "--new-ca asked for it") if have_key else (Action.CREATED, "new CA")
    # Key first: a crash between the writes leaves a key without its certificate, which the next run repairs.
    write(paths.ca_key, _encrypted(key, passphrase), mode=0o600)
    write(paths.ca_cert, cert_pem(cert), mode=0o644)
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
    write(file, value + b"\n", mode=0o600)
    results.append(FileResult(file, Action.CREATED, "generated CA passphrase (never printed)"))
    return value


def _load_ca_key(path: Path, passphrase: bytes) -> rsa.RSAPrivateKey:
    data = read(path)
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


# --- the intermediate ------------------------------------------------------------------------------------


def _ensure_intermediate(settings: Settings, paths: PkiPaths, root: LabCa, *, renew: bool,
                         results: list[FileResult], keys: KeyPool | None) -> LabCa:
    """Reuse a working intermediate under `root`, or issue one (new key) and say why."""
    passphrase = _passphrase(settings, paths, results=[], create=False)
    problem = "a new root (--new-ca)" if renew else _intermediate_problem(paths, root, passphrase)
    if problem is None:
        key = _load_ca_key(paths.intermediate_key, passphrase)
        cert = read_cert(paths.intermediate_cert)
        results += [
            FileResult(paths.intermediate_key, Action.REUSED, "existing intermediate CA key (encrypted)"),
            FileResult(paths.intermediate_cert, Action.REUSED,
                       f"signed by {paths.ca_cert.name}, valid for {days_left(cert)} more days"),
        ]
        return LabCa(key, cert, (cert,))
    key = keys.take() if keys is not None else new_key()
    cert = build_intermediate(root, key, days=settings.ca_days)
    write(paths.intermediate_key, _encrypted(key, passphrase), mode=0o600)
    write(paths.intermediate_cert, cert_pem(cert), mode=0o644)
    action = Action.CREATED if problem == "missing" else Action.REISSUED
    results += [
        FileResult(paths.intermediate_key, action, f"{problem}; RSA {KEY_BITS}, encrypted with the CA passphrase"),
        FileResult(paths.intermediate_cert, action, f"{problem}; CA:TRUE pathlen 0, signed by {paths.ca_cert.name}"),
    ]
    return LabCa(key, cert, (cert,))


def _intermediate_problem(paths: PkiPaths, root: LabCa, passphrase: bytes) -> str | None:
    """Why the intermediate must be (re-)issued, in words; None when it is fine."""
    if not paths.intermediate_cert.exists() or not paths.intermediate_key.exists():
        return "missing"
    try:
        cert = x509.load_pem_x509_certificate(read(paths.intermediate_cert))
    except ValueError:
        return "its certificate cannot be read"
    if not is_issued_by(cert, root.cert):
        return f"not signed by the current {paths.ca_cert.name}"
    if not is_ca(cert) or path_length(cert) != 0:
        return "not a CA with pathlen 0"
    if days_left(cert) < RENEW_WITHIN_DAYS:
        return f"expires in {days_left(cert)} days"
    if not key_matches(_load_ca_key(paths.intermediate_key, passphrase), cert):
        return "its key does not match"
    return None


def _root_path_length(paths: PkiPaths) -> int:
    return ROOT_PATH_LENGTH_TWO_TIER if paths.two_tier else CA_PATH_LENGTH


def _encrypted(key: rsa.RSAPrivateKey, passphrase: bytes) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase))
