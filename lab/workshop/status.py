"""`invoke workshop --status`: every seat, its certificate joined with what Amlen's monitors say about it.

Who is here now comes from the live sources (`lab.workshop.monitor`): a seat with a subscription is connected,
and the endpoint's `Active` counts every connection. Since when, from where and how much come from the
connection monitor, which Amlen refreshes every 60 s; each seat says where each of its fields came from, and
the room says how old the connection details are.

Amlen's monitors name clients by MQTT client ID, not by the certificate's CN; the workshop's ConnectionPolicy
makes every client ID start with its seat's CN (`${CommonName}*`), and no seat's CN begins another's
(lab.workshop.roster), so a client belongs to the seat whose CN its ID starts with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography import x509

from lab.amlen.adminsec import admin_client
from lab.errors import LabError
from lab.ledger import Ledger
from lab.pki.crl import read_crl, revoked_serials
from lab.pki.info import days_left
from lab.settings import Settings
from lab.workshop.bundle import Access, access
from lab.workshop.monitor import CONNECTION_REFRESH, RoomReading, instant, read_room
from lab.workshop.objects import ENDPOINT
from lab.workshop.room import crl_path, exposed_address
from lab.workshop.roster import cn
from lab.workshop.seats import existing_seats, read_seat_cert, seat_files

__all__ = ["SeatStatus", "WorkshopStatus", "join_connections", "join_room", "workshop_status"]

LIVE = "subscription monitor (live)"
ENDPOINT_LIVE = "endpoint monitor (live)"


@dataclass(frozen=True)
class SeatStatus:
    """One seat: its certificate, and what Amlen's monitors say about its clients.

    `connected` is None when Amlen could not be asked. `sources` names, for each field Amlen supplied, the
    monitor it came from and, for the connection monitor, the time of its data. Messages are counted as Amlen
    sees them: `messages_in` published by the seat (ReadMsg), `messages_out` delivered to it (WriteMsg).
    """

    name: str
    cn: str
    expires: str
    days_left: int
    revoked: bool
    connected: bool | None
    client_ids: tuple[str, ...] = ()
    subscriptions: tuple[str, ...] = ()
    since: str | None = None
    address: str | None = None
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkshopStatus:
    """The room: where its endpoint is, whether it is live, its totals, how old its details are, and each seat."""

    endpoint: str
    host: str
    address: str
    port: int
    exposed: bool
    live: bool | None
    seats: list[SeatStatus]
    monitor_error: str | None = None
    # Clients on the endpoint that match no seat (a seat deleted by hand; should not happen otherwise).
    others: list[str] = field(default_factory=list)
    active: int | None = None  # connections on the endpoint now, seats or not, named or not yet
    total: int | None = None
    bad_connections: int | None = None  # failed TLS handshakes (revoked seats among them) and refused CONNECTs
    messages: int | None = None  # PUBLISH packets read and written since the endpoint started
    details_as_of: str | None = None  # when Amlen last rebuilt the connection monitor's data
    details_refresh_seconds: int = CONNECTION_REFRESH
    details_complete: bool = True
    subscriptions_complete: bool = True
    read_at: str = ""
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def connected(self) -> list[SeatStatus]:
        """The seats that are here (subscribed now, or in the connection monitor's last list)."""
        return [seat for seat in self.seats if seat.connected]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return asdict(self)


def workshop_status(settings: Settings) -> WorkshopStatus:
    """Every seat with its expiry, revocation and what Amlen says now; never raises for an Amlen that is down."""
    names = existing_seats(settings)
    revoked = revoked_serials(read_crl(crl_path(settings)))
    where = access(settings, exposed_address(Ledger.load(settings.state_file)))
    certs = {name: read_seat_cert(seat_files(settings, name)) for name in names}
    reading: RoomReading | None = None
    error = None
    try:
        with admin_client(settings, timeout=2.0) as amlen:
            reading = read_room(amlen, [cn(name) for name in names])
    except LabError as exc:
        error = exc.message
    return join_room(where, certs, revoked, reading, error)


def join_connections(
    cns: Sequence[str], entries: Sequence[Mapping[str, Any]], *, key: str = "Name"
) -> tuple[dict[str, list[Mapping[str, Any]]], list[str]]:
    """Each CN's monitor entries (the client ID in `key` starts with the CN; the longest CN wins), and the
    client IDs that match no seat."""
    by_length = sorted(cns, key=len, reverse=True)
    joined: dict[str, list[Mapping[str, Any]]] = {name: [] for name in cns}
    others = []
    for entry in entries:
        client_id = str(entry.get(key, ""))
        owner = next((name for name in by_length if client_id.startswith(name)), None)
        if owner is None:
            others.append(client_id)
        else:
            joined[owner].append(entry)
    return joined, others


def join_room(where: Access, certs: Mapping[str, x509.Certificate], revoked: set[int],
              reading: RoomReading | None, error: str | None) -> WorkshopStatus:
    """The room's status from its certificates, the CRL and one reading of Amlen's monitors (None: no answer)."""
    now = _iso(dt.datetime.now(dt.UTC))
    seats_cns = [cn(name) for name in certs]
    live_subs = [s for s in (reading.subscriptions if reading else []) if int(s.get("Consumers") or 0) > 0]
    subs, stray_subs = join_connections(seats_cns, live_subs, key="ClientID")
    conns, stray_conns = join_connections(seats_cns, reading.connections if reading else [])
    as_of = _iso(reading.details_as_of) if reading and reading.details_as_of else None
    details = f"connection monitor (as of {as_of})" if as_of else "connection monitor (nothing listed yet)"
    seats = [
        _seat(name, cert, cert.serial_number in revoked, subs[cn(name)], conns[cn(name)], reading is None, details)
        for name, cert in certs.items()
    ]
    endpoint = reading.endpoint if reading else None
    live = None if reading is None else bool(endpoint and endpoint.get("Enabled") and not endpoint.get("LastErrorCode"))
    return WorkshopStatus(
        ENDPOINT, where.host, where.address, where.port, where.exposed, live, seats, error,
        others=sorted(set(stray_subs) | set(stray_conns)),
        active=_count(endpoint, "Active"), total=_count(endpoint, "Total"),
        bad_connections=_count(endpoint, "BadConnections"), messages=_count(endpoint, "Messages"),
        details_as_of=as_of,
        details_complete=reading.connections_complete if reading else True,
        subscriptions_complete=reading.subscriptions_complete if reading else True,
        read_at=now,
        sources={"live": ENDPOINT_LIVE, "active": ENDPOINT_LIVE, "total": ENDPOINT_LIVE,
                 "bad_connections": ENDPOINT_LIVE, "messages": ENDPOINT_LIVE, "details_as_of": details},
    )


def _seat(name: str, cert: x509.Certificate, revoked: bool, subs: Sequence[Mapping[str, Any]],
          conns: Sequence[Mapping[str, Any]], unknown: bool, details: str) -> SeatStatus:
    sources = {"expires": "certificate", "revoked": "workshop CRL"}
    if unknown:
        connected: bool | None = None
    elif subs:
        connected, sources["connected"] = True, LIVE
    elif conns:
        connected, sources["connected"] = True, details
    else:
        connected, sources["connected"] = False, f"{LIVE} and {details}"
    if not unknown:
        sources.update({"client_ids": f"{LIVE} and {details}", "subscriptions": LIVE})
        sources.update(dict.fromkeys(("since", "address", "messages_in", "messages_out", "bytes_in", "bytes_out"),
                                     details))
    since = min((t for t in (instant(c.get("ConnectTime")) for c in conns) if t), default=None)
    return SeatStatus(
        name=name,
        cn=cn(name),
        expires=cert.not_valid_after_utc.isoformat(),
        days_left=days_left(cert),
        revoked=revoked,
        connected=connected,
        client_ids=tuple(sorted({str(s.get("ClientID", "")) for s in subs} | {str(c.get("Name", "")) for c in conns})),
        subscriptions=tuple(sorted({str(s.get("TopicString", "")) for s in subs})),
        since=_iso(since) if since else None,
        address=next((str(c["ClientAddr"]) for c in conns if c.get("ClientAddr")), None),
        messages_in=sum(int(c.get("ReadMsg") or 0) for c in conns),
        messages_out=sum(int(c.get("WriteMsg") or 0) for c in conns),
        bytes_in=sum(int(c.get("ReadBytes") or 0) for c in conns),
        bytes_out=sum(int(c.get("WriteBytes") or 0) for c in conns),
        sources=sources,
    )


def _count(entry: Mapping[str, Any] | None, key: str) -> int | None:
    value = entry.get(key) if entry else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _iso(moment: dt.datetime) -> str:
    """ISO 8601 UTC to the second, e.g. `2026-12-02T08:47:30+00:00` (as `expires`)."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()
