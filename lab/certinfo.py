"""Reading the lab's certificate set: where it lives, what a certificate says, and Amlen's lint.

`describe_certificate` is `openssl x509 -text` as data for `doctor`/`status`; `lint_certificates` checks a set
against the rules Amlen enforces at upload time (RSA server key, unencrypted, matching its certificate,
a CA:TRUE trust anchor, the host name in the SAN, a chain that verifies, dates) and says what is wrong in
words, before Amlen answers with a misleading CWLNA code. Making certificates is `lab.certs`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.errors import CertError
from lab.settings import Settings

__all__ = [
    "EKU_NAMES",
    "KEY_USAGE_NAMES",
    "CertInfo",
    "PkiPaths",
    "check_certificates",
    "common_name",
    "days_left",
    "describe_certificate",
    "dns_names",
    "is_issued_by",
    "key_matches",
    "lint_certificates",
    "pki_paths",
]


@dataclass(frozen=True)
class PkiPaths:
    """Where each file of the certificate set lives (all absolute)."""

    dir: Path
    ca_key: Path
    ca_cert: Path
    server_key: Path
    server_cert: Path
    passphrase_file: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """The (key, certificate) paths of client `name`."""
        return self.dir / f"{name}.key", self.dir / f"{name}.crt"


def pki_paths(settings: Settings) -> PkiPaths:
    """The guide's file names in `settings.pki_dir`; a generated CA passphrase sits in the lab directory."""
    pki = settings.pki_dir
    return PkiPaths(
        dir=pki,
        ca_key=pki / "myCA.key",
        ca_cert=pki / "myCA.pem",
        server_key=pki / "test.server.key",
        server_cert=pki / "test.server.crt",
        passphrase_file=settings.lab_dir / "ca-passphrase",
    )


@dataclass(frozen=True)
class CertInfo:
    """What a certificate says, as data (the interesting half of `openssl x509 -text`)."""

    path: Path | None
    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    days_left: int
    san: tuple[str, ...]
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    is_ca: bool
    key_type: str
    key_bits: int
    sha256_fingerprint: str


# OpenSSL's names, so the output reads like `openssl x509 -text` and `invoke guide` writes extensions with them.
KEY_USAGE_NAMES = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}
EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}


def describe_certificate(pem_or_path: bytes | Path) -> CertInfo:
    """Parse a PEM (or DER) certificate, as bytes or a file, into a CertInfo; CertError if unreadable."""
    path = pem_or_path if isinstance(pem_or_path, Path) else None
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CertError(f"cannot read {path}: {exc.strerror}", "check the path and permissions") from exc
    else:
        data = bytes(pem_or_path)
    try:
        pem = b"-----BEGIN" in data
        cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
    except ValueError as exc:
        what = path or "the data"
        raise CertError(f"{what} is not an X.509 certificate", "give a PEM certificate file") from exc
    key_type, key_bits = _key_kind(cert.public_key())
    return CertInfo(
        path=path.resolve() if path else None,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:X}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        days_left=days_left(cert),
        san=tuple(dns_names(cert)),
        key_usage=_key_usage(cert),
        extended_key_usage=_extended_key_usage(cert),
        is_ca=_is_ca(cert),
        key_type=key_type,
        key_bits=key_bits,
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )


def lint_certificates(settings: Settings) -> list[str]:
    """Problems with the lab's certificate set under Amlen's rules, in words; empty when all is fine.

    Checked before any upload, because Amlen's own answers mislead (an EC key is reported as
    "key file has a password", CWLNA6191).
    """
    paths = pki_paths(settings)
    problems: list[str] = []
    ca = _load_cert(paths.ca_cert, problems)
    if ca is not None:
        if not _is_ca(ca):
            problems.append(
                f"{paths.ca_cert.name}: not a CA certificate (needs basicConstraints CA:TRUE); "
                "Amlen refuses it as a trusted certificate (CWLNA6183)"
            )
        problems += _date_problems(paths.ca_cert.name, ca)
    leaves = [(paths.server_key, paths.server_cert, True)]
    leaves += [(*paths.client(name), False) for name in dict.fromkeys(settings.client_names)]
    for key_path, cert_path, server in leaves:
        cert = _load_cert(cert_path, problems)
        key = _load_leaf_key(key_path, problems)
        if cert is None:
            continue
        label = cert_path.name
        if key is not None and not key_matches(key, cert):
            problems.append(f"{label}: does not match the key {key_path.name} (Amlen: CWLNA6189)")
        problems += _date_problems(label, cert)
        purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        ekus = _extended_key_usage(cert)
        if ekus and EKU_NAMES[purpose] not in ekus:
            problems.append(f"{label}: extendedKeyUsage is {', '.join(ekus)}, without {EKU_NAMES[purpose]}")
        if server and not _name_matches(settings.hostname, dns_names(cert)):
            problems.append(
                f"{label}: its SAN ({', '.join(dns_names(cert)) or 'none'}) does not contain the host name "
                f"{settings.hostname}, so clients refuse the server"
            )
        if ca is not None:
            problems += _chain_problems(label, cert, ca)
    return problems


def check_certificates(settings: Settings) -> None:
    """Raise CertError naming the first problems `lint_certificates` finds; return quietly if none."""
    problems = lint_certificates(settings)
    if not problems:
        return
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    ca_broken = any(p.startswith(pki_paths(settings).ca_cert.name) for p in problems)
    raise CertError(
        f"the certificates in {settings.pki_dir} break Amlen's rules: " + "; ".join(problems[:3]) + more,
        "run `invoke certs --new-ca` to replace the CA and everything it signed"
        if ca_broken
        else "run `invoke certs` to re-issue what is wrong; it keeps the CA",
        details="\n".join(f"  - {problem}" for problem in problems) if len(problems) > 3 else "",
    )


# --- small inspections, shared with lab.certs -----------------------------------------------------------


def is_issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """True when `ca_cert` is `cert`'s issuer by name and its key made `cert`'s signature."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def key_matches(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bool:
    """True when `cert` carries the public half of `key` (a certificate with a non-RSA key never does)."""
    public = cert.public_key()
    # Only RSA and DSA/EC keys have public_numbers(); an Ed25519 certificate must not end in an AttributeError.
    return isinstance(public, rsa.RSAPublicKey) and public.public_numbers() == key.public_key().public_numbers()


def dns_names(cert: x509.Certificate) -> list[str]:
    """The DNS names of the subjectAltName, lower-cased (clients ignore the CN when a SAN is present)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)]


def common_name(cert: x509.Certificate) -> str:
    """The subject's CN, or "" when it has none."""
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def days_left(cert: x509.Certificate) -> int:
    """Whole days until the certificate expires; negative once expired."""
    return (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days


# --- helpers --------------------------------------------------------------------------------------------


def _load_cert(path: Path, problems: list[str]) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        problems.append(f"{path.name}: missing")
    except OSError as exc:
        problems.append(f"{path.name}: cannot be read ({exc.strerror})")
    except ValueError:
        problems.append(f"{path.name}: not a PEM certificate (Amlen: CWLNA6180)")
    return None


def _load_leaf_key(path: Path, problems: list[str]) -> rsa.RSAPrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        problems.append(f"{path.name}: missing")
        return None
    except OSError as exc:
        problems.append(f"{path.name}: cannot be read ({exc.strerror})")
        return None
    except TypeError:
        problems.append(f"{path.name}: encrypted; Amlen crashes on encrypted keys, it must be unencrypted")
        return None
    except ValueError:
        problems.append(f"{path.name}: not a PEM private key (Amlen: CWLNA6190)")
        return None
    if not isinstance(key, rsa.RSAPrivateKey):
        kind, _ = _key_kind(key.public_key())
        problems.append(f"{path.name}: an {kind} key; Amlen accepts only RSA keys (it reports CWLNA6191)")
        return None
    return key


def _date_problems(label: str, cert: x509.Certificate) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        return [f"{label}: expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"]
    if cert.not_valid_before_utc > now:
        start = f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        return [f"{label}: not valid yet (from {start}; check the clock)"]
    return []


def _chain_problems(label: str, cert: x509.Certificate, ca: x509.Certificate) -> list[str]:
    if cert.issuer != ca.subject:
        issuer, lab_ca = cert.issuer.rfc4514_string(), ca.subject.rfc4514_string()
        return [f"{label}: issued by {issuer!r}, not by the lab CA {lab_ca!r}"]
    problems = []
    aki, ski = _authority_key_id(cert), _subject_key_id(ca)
    if aki is not None and ski is not None and aki != ski:
        problems.append(f"{label}: its authority key id is not the lab CA's subject key id (another CA's)")
    if not is_issued_by(cert, ca):
        problems.append(f"{label}: its signature does not verify with the lab CA's key")
    return problems


def _name_matches(hostname: str, names: list[str]) -> bool:
    host = hostname.lower()
    # One-label wildcards only, the rule TLS clients apply (RFC 6125 6.4.3).
    return any(n == host or (n.startswith("*.") and host.partition(".")[2] == n[2:]) for n in names)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _key_usage(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name for attr, name in KEY_USAGE_NAMES.items() if getattr(usage, attr))


def _extended_key_usage(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(EKU_NAMES.get(oid, oid.dotted_string) for oid in usage)


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _key_kind(public_key: object) -> tuple[str, int]:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC", public_key.key_size
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA", public_key.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(public_key).__name__, 0
