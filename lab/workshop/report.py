"""Printing for `invoke workshop`: what a command did, the room's status, and what `--expose` means."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.table import Table

from lab.durations import format_duration
from lab.pki.disk import Action
from lab.report import console
from lab.workshop.bundle import Access
from lab.workshop.exposure import ExposeResult
from lab.workshop.objects import ENDPOINT
from lab.workshop.room import RoomResult
from lab.workshop.status import SeatStatus, WorkshopStatus

if TYPE_CHECKING:
    from lab.workshop.rehearsal import Rehearsal

__all__ = [
    "percentile",
    "print_expose",
    "print_rehearsal",
    "print_room",
    "print_workshop_status",
    "room_summary",
    "seat_presence",
]


def print_room(result: RoomResult) -> None:
    """What `--seats`/`--roster`/`--revoke`/`--reissue` did, in a few lines."""
    if result.revoked is not None:
        if result.already_revoked:
            _say(f"seat.{result.revoked} was already revoked: nothing to do")
        else:
            _say(f"revoked seat.{result.revoked}: its new connections are refused in the TLS handshake; the other "
                "seats are untouched (a connection already open stays until it closes; Amlen cannot cut it)")
    if result.seats:
        counts = {action: [s.name for s in result.seats if s.action is action] for action in Action}
        parts = [f"{len(names)} {action.value}" for action, names in counts.items() if names]
        _say(f"{len(result.seats)} seats: {', '.join(parts)}")
        groups: dict[tuple[Action, str], list[str]] = {}
        for seat in result.seats:
            if seat.action is not Action.REUSED:
                groups.setdefault((seat.action, seat.reason), []).append(seat.name)
        for (action, reason), names in groups.items():
            _say(f"  {action.value}: {', '.join(names)} ({reason})")
    if result.objects:
        changed = result.objects_changed
        matching = f"all {len(result.objects)} workshop objects already match"
        _say(f"Amlen: {'applied ' + ', '.join(changed) if changed else matching}")
    if result.bundles_changed:
        _say(f"bundles updated: {', '.join(result.bundles_changed)}")
    _say(f"bundles in {result.bundle_dir}/<name>/ (hand out <name>.zip; README.md has the seat's commands)")
    _say_endpoint(result.access)
    _say(f"done in {format_duration(result.seconds)}")


def print_workshop_status(status: WorkshopStatus) -> None:
    """The room's totals, how old the connection details are, then one line per seat (never folded: an instructor
    greps and scans this during a session)."""
    where = f"{status.host}:{status.port} on {status.address}" + ("" if status.exposed else " (loopback only)")
    live = {None: "unknown", True: "live", False: "NOT live (run `invoke workshop --seats N` or --roster)"}[status.live]
    _say(f"{ENDPOINT}: {where}, {live}")
    if status.monitor_error:
        _say(f"connections unknown: {status.monitor_error}")
    if not status.seats:
        _say("no seats yet: `invoke workshop --seats N` or `--roster FILE`")
        return
    for line in room_summary(status):
        _say(line)
    width = max(len(seat.cn) for seat in status.seats)
    for seat in status.seats:
        parts = [f"{seat.cn:<{width}}", f"expires {seat.expires[:10]} ({seat.days_left} d)",
                 "REVOKED" if seat.revoked else "not revoked", seat_presence(seat)]
        _say("  ".join(parts))
    if status.others:
        _say(f"clients matching no seat: {', '.join(status.others)}")


def room_summary(status: WorkshopStatus) -> list[str]:
    """Who is here (live), what the endpoint counts (live), and how old the connection details are."""
    here = status.connected
    subscribed = sum(1 for seat in here if seat.subscriptions)
    lines = [f"{len(status.seats)} seats, {len(here)} connected now ({subscribed} subscribed, "
             f"{len(here) - subscribed} in the connection list only)"]
    if status.active is not None:
        named = sum(len(seat.client_ids) for seat in here) + len(status.others)
        waiting = max(0, status.active - named)
        lines.append(f"{ENDPOINT}: {status.active} connections now"
                     + (f" ({waiting} not named yet)" if waiting else "")
                     + f", {status.bad_connections} bad connections, {status.messages} messages since it started")
    refresh = f"Amlen refreshes them every {status.details_refresh_seconds} s"
    if status.details_as_of:
        clock = status.details_as_of[11:19]
        lines.append(f"connection details (since, address, bytes) as of {clock} UTC; {refresh}")
    elif status.live:
        lines.append(f"connection details (since, address, bytes): none listed yet; {refresh}")
    if not status.details_complete:
        lines.append("connection details are partial: Amlen lists at most 50 connections per ordering")
    return lines


def seat_presence(seat: SeatStatus) -> str:
    """`connected since ... as ...`, `connected as ... (details not listed yet)`, or `not connected`."""
    if seat.connected is None:
        return "connected: unknown"
    if not seat.connected:
        return "not connected"
    who = ", ".join(seat.client_ids)
    how = "subscribed" if seat.subscriptions else "not subscribed, seen in the connection list"
    if seat.since is None:
        return f"connected as {who} ({how}; since when: not in Amlen's connection list yet)"
    since = seat.since.replace("T", " ").replace("+00:00", "Z")
    return (f"connected since {since} as {who} from {seat.address} ({how}), "
            f"messages in {seat.messages_in} / out {seat.messages_out}")


def print_rehearsal(result: Rehearsal) -> None:
    """One line per seat that failed (or was refused as a revoked seat must be), then the summary table."""
    for seat in result.failures:
        _say(f"FAILED seat.{seat.name}: {seat.problem}")
    for program in result.programs:
        if program.missing is not None:
            _say(f"not run: the {program.language} kit program ({program.missing})")
        elif not program.ok:
            _say(f"FAILED the {program.language} kit program as seat.{result.program_seat}: {program.line}")
    revoked = [seat for seat in result.seats if seat.revoked and not seat.problem]
    for seat in revoked:
        _say(f"revoked seat.{seat.name}: refused at the TLS handshake, as it must be "
             f"(`invoke workshop --reissue {seat.name}` gives it a new certificate)")
    expected = [seat for seat in result.seats if not seat.revoked]
    joined = [seat for seat in expected if not seat.problem]
    connects = [s.connect_seconds for s in joined if s.connect_seconds is not None]
    trips = [s.round_trip_seconds for s in joined if s.round_trip_seconds is not None]
    table = Table(title="rehearsal", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("seats ok", f"{len(joined)} of {len(expected)}")
    if revoked or any(seat.revoked for seat in result.seats):
        table.add_row("revoked seats refused", f"{len(revoked)} of {sum(1 for s in result.seats if s.revoked)}")
    table.add_row("connect (TLS + CONNACK)", _p50_p95(connects))
    table.add_row("round trip (own topic)", _p50_p95(trips))
    if result.broadcast_from:
        table.add_row("room broadcast", f"from seat.{result.broadcast_from}, received by {result.broadcast_received}")
    if result.address:
        where = f"{result.address}:{result.port}" + (" (the exposed address)" if result.exposed else "")
        table.add_row("answered on", where)
    cleanup = ("no rehearsal client left (clean sessions, nothing retained)" if not result.leftovers
               else f"left on the server: {', '.join(result.leftovers)}")
    table.add_row("left behind", result.cleanup_error or cleanup)
    ran = [program for program in result.programs if program.missing is None]
    if result.programs:
        passed = ", ".join(f"{p.language} {format_duration(p.seconds)}" for p in ran if p.ok) or "none"
        table.add_row("kit programs", f"as seat.{result.program_seat}: {sum(p.ok for p in ran)} of "
                                      f"{len(result.programs)} received their message ({passed})")
    table.add_row("took", format_duration(result.seconds))
    console.print(table)
    problems = [f"{len(result.failures)} seats"] if result.failures else []
    problems += [f"{len(result.program_failures)} kit programs"] if result.program_failures else []
    verdict = "the room is ready" if result.ok else f"rehearsal FAILED ({', '.join(problems) or 'see above'})"
    _say(verdict)


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (p50: 0.5, p95: 0.95) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def _p50_p95(values: list[float]) -> str:
    p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
    if p50 is None or p95 is None:
        return "-"
    return f"p50 {format_duration(p50)}, p95 {format_duration(p95)}"


def print_expose(result: ExposeResult) -> None:
    """Say plainly what `--expose` opened, what stays closed, and the participants' hosts line."""
    where = result.access
    loopback = ", ".join(str(port) for port in result.loopback_ports)
    if not where.exposed:
        _say(f"The workshop port {where.port} is back on 127.0.0.1 only: no longer reachable from the network.")
    else:
        console.print(f"[bold yellow]The workshop port {where.port} is now reachable from the network[/] at "
                      f"{where.address}:{where.port}: anyone who can reach this machine can connect to it, and only "
                      "seat certificates from the lab CA get past the handshake and the policies.", soft_wrap=True)
        _say(f"Still on 127.0.0.1 only: {loopback} (the admin API and the guide's endpoints).")
        _say("Each participant adds this line to their hosts file:")
        console.print(f"    {where.hosts_line}", markup=False, soft_wrap=True)
    if result.room is None:
        _say("No seats yet: `invoke workshop --seats N` or `--roster FILE` makes them (READMEs name this address).")
    else:
        _say(f"Seat READMEs and zips updated: {len(result.room.bundles_changed)} (in {result.room.bundle_dir}).")


def _say_endpoint(where: Access) -> None:
    if where.exposed:
        _say(f"{ENDPOINT}: mqtts://{where.host}:{where.port} on {where.address}; participants add: {where.hosts_line}")
    else:
        _say(f"{ENDPOINT}: mqtts://{where.host}:{where.port} on 127.0.0.1 only; `invoke workshop --expose ADDRESS` "
             "opens it to the room")


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)
