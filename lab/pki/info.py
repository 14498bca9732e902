"""What a certificate says: `openssl x509 -text` as data, and the small inspections the package shares.

`describe_certificate` serves `doctor` and `status`; the lint (`lab.pki.lint`) and the certificate set
(`lab.pki.leaves`) use the inspections (issued by, key matches, names, days left).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.errors import CertError

__all__ = [
    "EKU_NAMES",
    "KEY_USAGE_NAMES",
    "CertInfo",
    "common_name",
    "covers_hostname",
    "days_left",
    "describe_certificate",
    "display_name",
    "dns_names",
    "extended_key_usage",
    "is_ca",
    "is_issued_by",
    "key_kind",
    "key_matches",
    "key_usages",
    "path_length",
]


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
    key_type, key_bits = key_kind(cert.public_key())
    return CertInfo(
        path=path.resolve() if path else None,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:X}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        days_left=days_left(cert),
        san=tuple(dns_names(cert)),
        key_usage=key_usages(cert),
        extended_key_usage=extended_key_usage(cert),
        is_ca=is_ca(cert),
        key_type=key_type,
        key_bits=key_bits,
        sha256_fingerprint=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )


# --- small inspections, shared by the package -----------------------------------------------------------------


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


def display_name(name: x509.Name) -> str:
    """A name as people say it: its CN, or the whole name when it has none."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def days_left(cert: x509.Certificate) -> int:
    """Whole days until the certificate expires; negative once expired."""
    return (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days


def is_ca(cert: x509.Certificate) -> bool:
    """True when basicConstraints says CA:TRUE."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def path_length(cert: x509.Certificate) -> int | None:
    """basicConstraints' pathlen: how many CA certificates may hang below this one (None: no limit, or no CA)."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        return None


def covers_hostname(names: Iterable[str], hostname: str) -> bool:
    """Does one of the certificate's DNS `names` cover `hostname`, as TLS clients judge it?"""
    host = hostname.lower()
    # Case-insensitive, one-label wildcards only: the rule TLS clients apply (RFC 6125 6.4.1, 6.4.3).
    return any(n == host or (n.startswith("*.") and host.partition(".")[2] == n[2:]) for n in map(str.lower, names))


def key_usages(cert: x509.Certificate) -> tuple[str, ...]:
    """The keyUsage flags set, by OpenSSL's names."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name for attr, name in KEY_USAGE_NAMES.items() if getattr(usage, attr))


def extended_key_usage(cert: x509.Certificate) -> tuple[str, ...]:
    """The extendedKeyUsage purposes, by OpenSSL's names (dotted OIDs for unknown ones)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(EKU_NAMES.get(oid, oid.dotted_string) for oid in usage)


def key_kind(public_key: object) -> tuple[str, int]:
    """(algorithm, bits) of a public key, e.g. ("RSA", 2048) or ("EC", 256)."""
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
