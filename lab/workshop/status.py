"""`invoke workshop --status`: one line per seat, its certificate joined with Amlen's connection monitor.

Amlen's monitor names a connection by its MQTT client ID, not by the certificate's CN; the workshop's
ConnectionPolicy makes every client ID start with its seat's CN (`${CommonName}*`), and no seat's CN begins
another's (lab.workshop.roster), so a connection belongs to the seat whose CN its client ID starts with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.amlen import AmlenClient
from lab.errors import LabError
from lab.ledger import Ledger
from lab.pki.crl import read_crl, revoked_serials
from lab.pki.info import days_left
from lab.settings import Settings
from lab.workshop.bundle import access
from lab.workshop.objects import ENDPOINT
from lab.workshop.room import crl_path, exposed_address
from lab.workshop.roster import cn
from lab.workshop.seats import existing_seats, read_seat_cert, seat_files

__all__ = ["SeatStatus", "WorkshopStatus", "join_connections", "workshop_status"]


@dataclass(frozen=True)
class SeatStatus:
    """One seat: its certificate, and what Amlen says about its connections right now.

    `connected` is None when Amlen could not be asked. Messages are counted as Amlen sees them: `messages_in`
    were published by the seat (ReadMsg), `messages_out` delivered to it (WriteMsg).
    """

    name: str
    cn: str
    expires: str
    days_left: int
    revoked: bool
    connected: bool | None
    client_ids: tuple[str, ...] = ()
    since: str | None = None
    messages_in: int = 0
    messages_out: int = 0


@dataclass(frozen=True)
class WorkshopStatus:
    """The room: where its endpoint is, whether it is live, and each seat."""

    endpoint: str
    host: str
    address: str
    port: int
    exposed: bool
    live: bool | None
    seats: list[SeatStatus]
    monitor_error: str | None = None
    # Connections on the endpoint that match no seat (a seat deleted by hand; should not happen otherwise).
    others: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return asdict(self)


def join_connections(
    cns: Sequence[str], connections: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, list[Mapping[str, Any]]], list[str]]:
    """Each CN's connections (client ID starts with the CN; the longest CN wins) and the unmatched IDs."""
    by_length = sorted(cns, key=len, reverse=True)
    joined: dict[str, list[Mapping[str, Any]]] = {name: [] for name in cns}
    others = []
    for connection in connections:
        client_id = str(connection.get("Name", ""))
        owner = next((name for name in by_length if client_id.startswith(name)), None)
        if owner is None:
            others.append(client_id)
        else:
            joined[owner].append(connection)
    return joined, others


def workshop_status(settings: Settings) -> WorkshopStatus:
    """Every seat with its expiry, revocation and live connections; never raises for an Amlen that is down."""
    names = existing_seats(settings)
    revoked = revoked_serials(read_crl(crl_path(settings)))
    where = access(settings, exposed_address(Ledger.load(settings.state_file)))
    certs = {name: read_seat_cert(seat_files(settings, name)) for name in names}
    connections: list[dict[str, Any]] | None = None
    live: bool | None = None
    error = None
    try:
        with AmlenClient(settings.admin_base_url, timeout=2.0) as amlen:
            entry = amlen.endpoint_monitor(ENDPOINT)
            live = bool(entry and entry.get("Enabled") and not entry.get("LastErrorCode"))
            connections = amlen.connections(ENDPOINT) if live else []
    except LabError as exc:
        error = exc.message
    joined, others = join_connections([cn(name) for name in names], connections or [])
    seats = []
    for name in names:
        cert, mine = certs[name], joined[cn(name)]
        seats.append(SeatStatus(
            name=name,
            cn=cn(name),
            expires=cert.not_valid_after_utc.isoformat(),
            days_left=days_left(cert),
            revoked=cert.serial_number in revoked,
            connected=None if connections is None else bool(mine),
            client_ids=tuple(sorted(str(c.get("Name", "")) for c in mine)),
            since=min((t for t in (_when(c.get("ConnectTime")) for c in mine) if t), default=None),
            messages_in=sum(int(c.get("ReadMsg") or 0) for c in mine),
            messages_out=sum(int(c.get("WriteMsg") or 0) for c in mine),
        ))
    return WorkshopStatus(ENDPOINT, where.host, where.address, where.port, where.exposed, live, seats, error, others)


def _when(value: Any) -> str | None:
    """Amlen's ConnectTime (nanoseconds since the epoch; an ISO string is passed through) as ISO 8601 UTC."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        seconds = value / 1e9 if value > 1e14 else value / 1e3 if value > 1e11 else value
        return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=0).isoformat()
    return str(value) if value else None
