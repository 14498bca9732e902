"""Seats on disk: each one a bundle directory `.lab/workshop/<name>/` holding its certificate from the lab CA.

The bundle directories are the record of which seats exist (no other list is kept), so a seat's files can be
handed out, zipped or deleted without the lab losing track. Certificates follow the lab's rules for client
certificates (`lab.pki.leaves.ensure_leaves`): kept while good, re-issued when they would not work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from lab.errors import WorkshopError
from lab.files import private_dir
from lab.pki.build import LabCa
from lab.pki.disk import FileResult
from lab.pki.leaves import ensure_leaves
from lab.pki.paths import chain_of
from lab.settings import Settings
from lab.workshop.roster import cn

__all__ = ["SeatFiles", "existing_seats", "issue_seat_certs", "read_seat_cert", "seat_files", "workshop_dir"]


@dataclass(frozen=True)
class SeatFiles:
    """Where one seat's files live; the key is 0600 and the directory 0700 (the bundle holds a private key)."""

    name: str
    dir: Path

    @property
    def cn(self) -> str:
        """The certificate's common name, `seat.<name>`: the seat's identity on the broker."""
        return cn(self.name)

    @property
    def ca(self) -> Path:
        """The lab CA certificate, copied in so the bundle is complete on its own."""
        return self.dir / "myCA.pem"

    @property
    def cert(self) -> Path:
        """The seat's certificate."""
        return self.dir / f"{self.cn}.crt"

    @property
    def chain(self) -> Path:
        """The seat's chain file (its certificate, then the intermediate) in the two-tier PKI."""
        return chain_of(self.cert)

    @property
    def presented(self) -> Path:
        """What the seat's clients present: the chain file when there is one (LAB_PKI=intermediate)."""
        return self.chain if self.chain.is_file() else self.cert

    @property
    def key(self) -> Path:
        """The seat's private key (unencrypted RSA, as the guide's client keys)."""
        return self.dir / f"{self.cn}.key"

    @property
    def readme(self) -> Path:
        """The seat's exact commands."""
        return self.dir / "README.md"

    @property
    def zip(self) -> Path:
        """The whole bundle as one file to hand out."""
        return self.dir / f"{self.name}.zip"


def workshop_dir(settings: Settings) -> Path:
    """`<lab dir>/workshop`: one directory per seat, plus the CRL (`.crl.pem`, a name no seat can have)."""
    return settings.lab_dir / "workshop"


def seat_files(settings: Settings, name: str) -> SeatFiles:
    """The files of seat `name` (whether they exist or not)."""
    return SeatFiles(name, workshop_dir(settings) / name)


def existing_seats(settings: Settings) -> list[str]:
    """The seats that have a certificate, sorted by name."""
    root = workshop_dir(settings)
    if not root.is_dir():
        return []
    return sorted(
        (entry.name for entry in root.iterdir() if entry.is_dir() and seat_files(settings, entry.name).cert.is_file()),
        key=str.lower,
    )


def issue_seat_certs(
    settings: Settings, ca: LabCa, names: Sequence[str], *, force: bool = False
) -> list[FileResult]:
    """Certificates for seats `names` (CN `seat.<name>`): new ones made, good ones kept; `force` re-issues."""
    seats = [seat_files(settings, name) for name in names]
    for seat in seats:
        _private_dir(seat.dir)
    return ensure_leaves(ca, [(s.cn, s.key, s.cert) for s in seats], days=settings.client_days, force=force)


def read_seat_cert(seat: SeatFiles) -> x509.Certificate:
    """The seat's certificate; WorkshopError when it cannot be read."""
    try:
        return x509.load_pem_x509_certificate(seat.cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise WorkshopError(f"cannot read {seat.cert}", f"`invoke workshop --reissue {seat.name}` makes a new one") \
            from exc


def _private_dir(directory: Path) -> None:
    try:
        private_dir(directory)
    except OSError as exc:
        raise WorkshopError(f"cannot create {directory}: {exc.strerror}", "check LAB_DIR's permissions") from exc
