"""Printing for `invoke workshop`: what a command did, the room's status, and what `--expose` means."""

from __future__ import annotations

from lab.pki.disk import Action
from lab.report import console
from lab.workshop.bundle import Access
from lab.workshop.exposure import ExposeResult
from lab.workshop.objects import ENDPOINT
from lab.workshop.room import RoomResult
from lab.workshop.status import WorkshopStatus

__all__ = ["print_expose", "print_room", "print_workshop_status"]


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
    _say(f"done in {result.seconds:.1f} s")


def print_workshop_status(status: WorkshopStatus) -> None:
    """One line per seat: CN, expiry, revoked, connected now, since when, messages in/out."""
    where = f"{status.host}:{status.port} on {status.address}" + ("" if status.exposed else " (loopback only)")
    live = {None: "unknown", True: "live", False: "NOT live (run `invoke workshop --seats N` or --roster)"}[status.live]
    _say(f"{ENDPOINT}: {where}, {live}")
    if status.monitor_error:
        _say(f"connections unknown: {status.monitor_error}")
    if not status.seats:
        _say("no seats yet: `invoke workshop --seats N` or `--roster FILE`")
        return
    connected = sum(1 for seat in status.seats if seat.connected)
    _say(f"{len(status.seats)} seats, {connected} connected now:")
    width = max(len(seat.cn) for seat in status.seats)
    for seat in status.seats:
        # One line per seat, never folded: an instructor greps and scans this during a session.
        parts = [f"{seat.cn:<{width}}", f"expires {seat.expires[:10]} ({seat.days_left} d)",
                 "REVOKED" if seat.revoked else "not revoked"]
        if seat.connected is None:
            parts.append("connected: unknown")
        elif seat.connected:
            since = (seat.since or "?").replace("T", " ").replace("+00:00", "Z")
            parts.append(f"connected since {since} as {', '.join(seat.client_ids)}")
            parts.append(f"messages in {seat.messages_in} / out {seat.messages_out}")
        else:
            parts.append("not connected")
        _say("  ".join(parts))
    if status.others:
        _say(f"connections matching no seat: {', '.join(status.others)}")


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
