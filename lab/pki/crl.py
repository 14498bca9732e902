"""The workshop's certificate revocation list, made with `cryptography` and signed by the lab CA.

Amlen checks client certificates against a CRL uploaded as a CRLProfile on the security profile (reference,
"Observed later": a revoked certificate fails the TLS handshake, others from the same CA still connect). The
workshop always has one, empty until a seat is revoked, so revoking only ever replaces a file.

The file on disk is the record of who is revoked: a certificate is revoked when its serial is on it. It is
re-made only when a serial is added or it no longer belongs to the CA (`invoke certs --new-ca` makes every
old seat certificate useless anyway), so re-running the workshop leaves it byte for byte alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.errors import CertError
from lab.files import atomic_write
from lab.pki.build import LabCa

__all__ = ["ensure_crl", "read_crl", "revoked_serials"]

# Back-dated like the certificates, so a broker whose clock is a little behind accepts a fresh CRL.
_CLOCK_SKEW = dt.timedelta(minutes=5)


def read_crl(path: Path) -> x509.CertificateRevocationList | None:
    """The CRL at `path`, or None when there is none; CertError when it is not a PEM CRL."""
    try:
        return x509.load_pem_x509_crl(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CertError(f"{path} is not a readable CRL", "delete it; the next `invoke workshop` makes it "
                            "again (re-revoke seats with --revoke)") from exc


def revoked_serials(crl: x509.CertificateRevocationList | None) -> set[int]:
    """The serial numbers a CRL revokes."""
    return {entry.serial_number for entry in crl} if crl is not None else set()


def ensure_crl(path: Path, ca: LabCa, *, revoke: Iterable[int] = ()) -> tuple[bytes, bool]:
    """The CRL's PEM bytes, with the serials in `revoke` added; True when the file was (re-)written.

    Its nextUpdate is the CA's own end: a CRL past its nextUpdate makes OpenSSL refuse every client of that CA,
    and nothing in a lab would be there to renew it.
    """
    current = read_crl(path)
    if current is not None and not _belongs_to(current, ca):
        current = None  # made by a replaced CA: its serials mean nothing any more
    known = {entry.serial_number: entry.revocation_date_utc for entry in current} if current is not None else {}
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    added = {serial: now for serial in revoke if serial not in known}
    if current is not None and not added and current.next_update_utc == ca.cert.not_valid_after_utc:
        return path.read_bytes(), False
    number = _crl_number(current) + 1 if current is not None else 1
    pem = _build(ca, {**known, **added}, number=number, now=now)
    atomic_write(path, pem, mode=0o644)
    return pem, True


def _build(ca: LabCa, revoked: dict[int, dt.datetime], *, number: int, now: dt.datetime) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - _CLOCK_SKEW)
        .next_update(ca.cert.not_valid_after_utc)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


def _belongs_to(crl: x509.CertificateRevocationList, ca: LabCa) -> bool:
    public = ca.cert.public_key()
    if crl.issuer != ca.cert.subject or not isinstance(public, rsa.RSAPublicKey):
        return False
    try:
        return crl.is_signature_valid(public)
    except (InvalidSignature, TypeError):
        return False


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0
