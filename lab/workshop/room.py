"""The instructor's commands on the room: make or grow it, revoke a seat, re-issue a seat.

Each command checks everything it can before it changes anything (names, the lab being up), then converges:
seat certificates, the CRL, the workshop's Amlen objects and every bundle, each touched only when it differs.
The lab directory's lock is held throughout, as `up` and `down` hold it.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lab.amlen.admin import AmlenClient, is_ready
from lab.amlen.adminsec import admin_client
from lab.amlen.configure import EndpointProbe, ObjectAction, ObjectResult, confirm_live
from lab.clients.tls import tls_context
from lab.errors import WorkshopError
from lab.files import lab_lock
from lab.ledger import Ledger
from lab.pki.build import LabCa
from lab.pki.ca import signing_ca
from lab.pki.crl import ensure_crl, read_crl, revoked_serials
from lab.pki.disk import Action, FileResult
from lab.pki.paths import pki_paths
from lab.settings import Settings
from lab.workshop.bundle import Access, access, write_bundle
from lab.workshop.objects import ENDPOINT, apply_workshop, workshop_objects
from lab.workshop.roster import SeatName, validate
from lab.workshop.seats import SeatFiles, existing_seats, issue_seat_certs, read_seat_cert, seat_files, workshop_dir

__all__ = [
    "RoomResult",
    "SeatChange",
    "build_room",
    "crl_path",
    "exposed_address",
    "refresh_room",
    "reissue_seat",
    "revoke_seat",
]

Progress = Callable[[str], None]
_BUNDLE_WRITERS = 8


@dataclass(frozen=True)
class SeatChange:
    """What happened to one seat's certificate: created, reused or re-issued, and why."""

    name: str
    action: Action
    reason: str


@dataclass
class RoomResult:
    """What a workshop command did: per seat, to Amlen's objects, to the bundles, and where the room is."""

    seats: list[SeatChange]
    access: Access
    bundle_dir: Path
    objects: list[ObjectResult] = field(default_factory=list)
    bundles_changed: list[str] = field(default_factory=list)
    revoked: str | None = None
    already_revoked: bool = False
    seconds: float = 0.0

    @property
    def objects_changed(self) -> list[str]:
        """The Amlen objects created or updated (labels)."""
        return [r.object.label for r in self.objects if r.action is not ObjectAction.UNCHANGED]


def crl_path(settings: Settings) -> Path:
    """The workshop's CRL (a dot name, which no seat name can have)."""
    return workshop_dir(settings) / ".crl.pem"


def exposed_address(ledger: Ledger) -> str | None:
    """The address the workshop port is published on (`--expose`), or None for loopback."""
    return (ledger.entries.get("workshop") or {}).get("expose") or None


def build_room(settings: Settings, wanted: Sequence[SeatName], *, kits: Sequence[str] | None = None,
               progress: Progress = lambda _: None) -> RoomResult:
    """Make or grow the room: a certificate and bundle per seat, the workshop endpoint and its policies.

    `kits`: the languages whose programs every bundle carries (lab.kit); None keeps what each bundle holds.

    All names are validated (against each other and the seats that exist) and the lab must be up before
    anything is created. Seats that exist but are not in `wanted` stay and are kept working.
    """
    started = time.monotonic()
    with lab_lock(settings.lab_dir):
        existing = existing_seats(settings)
        names = validate(wanted, existing)
        ledger = Ledger.load(settings.state_file)
        with admin_client(settings) as amlen:
            _require_lab(amlen, settings)
            progress("seat certificates")
            ca = signing_ca(settings)
            everyone = sorted({*existing, *names}, key=str.lower)
            seats = _changes(issue_seat_certs(settings, ca, everyone))
            result = _converge(settings, ca, ledger, amlen, seats, progress=progress, kits=kits)
    result.seconds = time.monotonic() - started
    return result


def revoke_seat(settings: Settings, name: str, *, progress: Progress = lambda _: None) -> RoomResult:
    """Put seat `name`'s certificate on the workshop CRL and give Amlen the new CRL.

    New connections with that certificate fail in the TLS handshake; the other seats are untouched. A
    connection that is already open is not cut (Amlen has no REST call to disconnect a client).
    """
    started = time.monotonic()
    with lab_lock(settings.lab_dir):
        seat = _known_seat(settings, name)
        serial = read_seat_cert(seat).serial_number
        ledger = Ledger.load(settings.state_file)
        with admin_client(settings) as amlen:
            _require_lab(amlen, settings)
            ca = signing_ca(settings)
            already = serial in revoked_serials(read_crl(crl_path(settings)))
            ensure_crl(crl_path(settings), ca, revoke=[serial])
            # A revocation changes no bundle: another seat's broken bundle (a deleted key) must not stop it.
            result = _converge(settings, ca, ledger, amlen, [], progress=progress, bundles=False)
    result.revoked, result.already_revoked = name, already
    result.seconds = time.monotonic() - started
    return result


def reissue_seat(settings: Settings, name: str) -> RoomResult:
    """A new key and certificate (new serial) for seat `name`, and its bundle rewritten.

    The way back for a revoked seat: the revoked serial stays on the CRL, the new one is not on it. Only
    files change, so this works while the lab is down.
    """
    started = time.monotonic()
    with lab_lock(settings.lab_dir):
        seat = _known_seat(settings, name)
        ca = signing_ca(settings)
        seats = _changes(issue_seat_certs(settings, ca, [name], force=True))
        where = access(settings, exposed_address(Ledger.load(settings.state_file)))
        changed = [name] if write_bundle(seat, _ca_pem(settings), where) else []
    return RoomResult(seats, where, workshop_dir(settings), bundles_changed=changed,
                      seconds=time.monotonic() - started)


def refresh_room(settings: Settings, *, progress: Progress = lambda _: None) -> RoomResult | None:
    """Converge the workshop of existing seats again (after `--expose` moved it); None when there are no seats."""
    with lab_lock(settings.lab_dir):
        if not existing_seats(settings):
            return None
        ledger = Ledger.load(settings.state_file)
        with admin_client(settings) as amlen:
            _require_lab(amlen, settings)
            return _converge(settings, signing_ca(settings), ledger, amlen, [], progress=progress)


# --- helpers -------------------------------------------------------------------------------------------


def _converge(settings: Settings, ca: LabCa, ledger: Ledger, amlen: AmlenClient, seats: list[SeatChange], *,
              progress: Progress, bundles: bool = True, kits: Sequence[str] | None = None) -> RoomResult:
    """CRL, Amlen objects, the endpoint live, and (with `bundles`) every bundle up to date.

    The bundles are written while Amlen is configured and probed: they need only the seats' files, the CA and
    the address, and their cost (PKCS#12 key derivation, fsyncs) then hides behind Amlen's answers.
    """
    crl_pem, _ = ensure_crl(crl_path(settings), ca)
    ca_pem = _ca_pem(settings)
    objects = workshop_objects(settings, ca_pem=ca_pem, crl_pem=crl_pem)
    where = access(settings, exposed_address(ledger))
    names = existing_seats(settings) if bundles else []
    # Each changed file is fsynced (lab.files.atomic_write): I/O waits, which several threads overlap.
    with ThreadPoolExecutor(max_workers=_BUNDLE_WRITERS, thread_name_prefix="bundle") as pool:
        pending = [pool.submit(write_bundle, seat_files(settings, name), ca_pem, where, languages=kits)
                   for name in names]
        results = apply_workshop(amlen, ledger, objects, run_id=uuid.uuid4().hex[:12], progress=progress)
        progress(f"{ENDPOINT} live on {where.address}:{where.port}")
        probe = _probe(settings, where, revoked_serials(read_crl(crl_path(settings))))
        if probe is not None:
            confirm_live(amlen, [probe])
        if bundles:
            progress("bundles")
        wrote = [future.result() for future in pending]
    if not bundles:
        return RoomResult(seats, where, workshop_dir(settings), results)
    changed = [name for name, did in zip(names, wrote, strict=True) if did]
    return RoomResult(seats, where, workshop_dir(settings), results, changed)


def _probe(settings: Settings, where: Access, revoked: set[int]) -> EndpointProbe | None:
    """How to prove the endpoint: a CONNACK for a seat that is not revoked (the policies admit nobody else),
    with a client ID of its own so no participant's session is disturbed; None when every seat is revoked."""
    for name in existing_seats(settings):
        seat = seat_files(settings, name)
        if read_seat_cert(seat).serial_number not in revoked:
            context = tls_context(ca_file=pki_paths(settings).ca_cert, cert=seat.presented, key=seat.key,
                                  server_name=settings.hostname)
            return EndpointProbe(ENDPOINT, where.address, where.port, context,
                                 client_id=f"{seat.cn}-lab-probe-{secrets.token_hex(3)}")
    return None


def _require_lab(amlen: AmlenClient, settings: Settings) -> None:
    """WorkshopError unless Amlen is ready and carries the lab's server certificate profile."""
    if not is_ready(amlen.status()) or amlen.get("CertificateProfile", settings.certificate_profile) is None:
        raise WorkshopError(
            f"the lab is not up at {settings.admin_base_url} (Amlen not ready, or no CertificateProfile "
            f"{settings.certificate_profile})",
            "run `invoke up` first, then this command again; nothing was changed",
        )


def _known_seat(settings: Settings, name: str) -> SeatFiles:
    seats = existing_seats(settings)
    if name not in seats:
        known = ", ".join(seats[:10]) + (" ..." if len(seats) > 10 else "") if seats else "none yet"
        raise WorkshopError(f"there is no seat {name!r} (seats: {known})",
                            "`invoke workshop --status` lists the seats")
    return seat_files(settings, name)


def _ca_pem(settings: Settings) -> bytes:
    return pki_paths(settings).ca_cert.read_bytes()


def _changes(results: list[FileResult]) -> list[SeatChange]:
    """One line per seat from the per-file results (the certificate's line, `seat.<name>.crt`)."""
    changes = []
    for result in results:
        if result.path.suffix == ".crt":
            changes.append(SeatChange(result.path.parent.name, result.action, result.reason))
    return changes
