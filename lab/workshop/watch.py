"""`invoke workshop --status --watch`: the room on one screen, redrawn every 2 s until Ctrl-C.

Made for a room of 200 on a laptop screen: the totals first (seats connected, messages in the last minute,
bad connections, revoked seats refused), then every seat as a short cell in a grid sorted by name and
coloured by state, then only what needs the instructor (who joined or left since the last look, revoked
seats, certificates about to expire, clients that match no seat). Nothing scrolls.

Messages in the last minute are the difference of the endpoint's live `Messages` counter between now and the
oldest sample of the last 60 s: Amlen keeps totals only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lab.settings import Settings
from lab.workshop.status import SeatStatus, WorkshopStatus, workshop_status

__all__ = ["INTERVAL", "RoomView", "render", "watch"]

INTERVAL = 2.0  # seconds between redraws
MINUTE = 60.0
EXPIRING_DAYS = 7
_STYLES = {"live": "bold green", "listed": "green", "away": "grey50", "revoked": "red", "unknown": "yellow"}


@dataclass
class RoomView:
    """What the watch remembers between redraws: message counts of the last minute, who was here last time."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)
    last_here: set[str] | None = None
    joined: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def update(self, status: WorkshopStatus, now: float) -> None:
        if status.messages is not None:
            self.samples.append((now, status.messages))
            # Keep one sample at least a minute old as the baseline, and nothing older than it.
            while len(self.samples) > 2 and now - self.samples[1][0] >= MINUTE:
                self.samples.popleft()
        here = {seat.name for seat in status.connected}
        if self.last_here is not None and status.monitor_error is None:
            self.joined = sorted(here - self.last_here, key=str.lower)
            self.left = sorted(self.last_here - here, key=str.lower)
        if status.monitor_error is None:
            self.last_here = here

    def messages_recently(self) -> tuple[int, float] | None:
        """(messages, over how many seconds): the last minute, or less while the watch is younger than that."""
        if len(self.samples) < 2:
            return None
        (first, start), (last, end) = self.samples[0], self.samples[-1]
        return max(0, end - start), last - first


def watch(settings: Settings, *, console: Console, interval: float = INTERVAL,
          read: Callable[[Settings], WorkshopStatus] = workshop_status) -> None:
    """Redraw the room every `interval` seconds until Ctrl-C (which ends it quietly)."""
    from rich.live import Live

    view = RoomView()
    status = read(settings)
    view.update(status, time.monotonic())
    try:
        with Live(render(status, view, console.width), console=console, auto_refresh=False,
                  vertical_overflow="crop") as live:
            while True:
                time.sleep(interval)
                status = read(settings)
                view.update(status, time.monotonic())
                live.update(render(status, view, console.width), refresh=True)
    except KeyboardInterrupt:
        return


def render(status: WorkshopStatus, view: RoomView, width: int) -> RenderableType:
    """The whole screen for one look at the room."""
    parts: list[RenderableType] = [_title(status), _totals(status, view)]
    if status.seats:
        parts += [_grid(status.seats, width), _legend()]
    parts += _attention(status, view)
    return Group(*parts)


def _title(status: WorkshopStatus) -> Text:
    where = f"{status.host}:{status.port} on {status.address}" + ("" if status.exposed else " (loopback only)")
    live = {None: ("Amlen not answering", "yellow"), True: ("live", "green"), False: ("NOT live", "red")}[status.live]
    title = Text.assemble((f"{status.endpoint} ", "bold"), where, "  ", live, f"   {status.read_at[11:19]} UTC")
    if status.monitor_error:
        title.append(f"\n{status.monitor_error}", style="yellow")
    return title


def _totals(status: WorkshopStatus, view: RoomView) -> Text:
    """One line (it wraps on a narrow screen): the room's numbers, bold, with what they count."""
    recently = view.messages_recently()
    if recently is None:
        messages = ("…" if status.messages is not None else "?", " messages in the last minute")
    else:
        count, seconds = recently
        messages = (str(count), " messages in the last minute" if seconds >= MINUTE - INTERVAL
                    else f" messages in the last {seconds:.0f} s")
    details = (f"connection details as of {status.details_as_of[11:19]} (Amlen: every "
               f"{status.details_refresh_seconds} s)" if status.details_as_of else "no connection details yet")
    parts: list[tuple[str, str]] = [
        (f"{len(status.connected)}/{len(status.seats)}", " seats here"),
        (_number(status.active), " connections"),
        messages,
        (_number(status.bad_connections), " bad connections"),
        (str(sum(1 for seat in status.seats if seat.revoked)), " revoked (refused)"),
    ]
    line = Text()
    for number, words in parts:
        line.append(number, style="bold")
        line.append(words + "  ·  ")
    line.append(details, style="dim")
    return line


def _state(seat: SeatStatus) -> str:
    if seat.revoked:
        return "revoked"
    if seat.connected is None:
        return "unknown"
    if seat.connected:
        return "live" if seat.subscriptions else "listed"
    return "away"


def _grid(seats: list[SeatStatus], width: int) -> Table:
    """Every seat once, sorted by name, in as many columns as the screen holds."""
    cell = max(len(seat.name) for seat in seats) + 2
    columns = max(1, min(len(seats), width // (cell + 1)))
    grid = Table.grid(padding=(0, 1))
    for _ in range(columns):
        grid.add_column(min_width=cell, no_wrap=True)
    ordered = sorted(seats, key=lambda seat: seat.name.lower())
    for start in range(0, len(ordered), columns):
        row = [_cell(seat) for seat in ordered[start : start + columns]]
        grid.add_row(*row, *([""] * (columns - len(row))))
    return grid


def _cell(seat: SeatStatus) -> Text:
    state = _state(seat)
    mark = {"live": "●", "listed": "◐", "away": "·", "revoked": "✘", "unknown": "?"}[state]
    return Text(f"{mark} {seat.name}", style=_STYLES[state] + (" underline" if seat.days_left <= EXPIRING_DAYS else ""))


def _legend() -> Text:
    return Text.assemble(("● subscribed", _STYLES["live"]), "  ", ("◐ connected, not subscribed", _STYLES["listed"]),
                         "  ", ("· not connected", _STYLES["away"]), "  ", ("✘ revoked", _STYLES["revoked"]),
                         "  ", ("underlined: expires in a week", "dim"))


def _attention(status: WorkshopStatus, view: RoomView) -> list[RenderableType]:
    lines: list[RenderableType] = []
    if view.joined:
        lines.append(Text(f"joined: {_names(view.joined)}", style="green"))
    if view.left:
        lines.append(Text(f"left: {_names(view.left)}", style="yellow"))
    revoked = [seat.name for seat in status.seats if seat.revoked]
    if revoked:
        lines.append(Text(f"revoked, refused at the TLS handshake: {_names(revoked)}", style="red"))
    expiring = [f"{seat.name} ({seat.days_left} d)" for seat in status.seats if seat.days_left <= EXPIRING_DAYS]
    if expiring:
        lines.append(Text(f"certificates expiring: {_names(expiring)}", style="yellow"))
    if status.others:
        lines.append(Text(f"clients matching no seat: {_names(status.others)}", style="yellow"))
    return lines


def _names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _number(value: int | None) -> str:
    return "?" if value is None else str(value)
