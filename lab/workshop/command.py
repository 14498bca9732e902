"""`invoke workshop`: the one action its flags ask for, carried out on the room and printed.

The flags are checked together first (one action; `--json`/`--watch` only with `--status`; `--kits` only when
seats are made), so a wrong combination is one line before anything is read or changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import WorkshopError
from lab.settings import Settings

__all__ = ["WorkshopFlags", "run_workshop"]


@dataclass(frozen=True)
class WorkshopFlags:
    """The workshop task's flags as given; making one checks that they go together and parses `--kits`."""

    seats: int = 0
    roster: str = ""
    revoke: str = ""
    reissue: str = ""
    status: bool = False
    json: bool = False
    watch: bool = False
    rehearse: bool = False
    expose: str = ""
    kits: str = ""
    # The languages each new bundle carries: None without --kits (the default set), () for `--kits none`.
    languages: tuple[str, ...] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        chosen = [flag for flag, value in (("--seats", self.seats), ("--roster", self.roster),
                                           ("--revoke", self.revoke), ("--reissue", self.reissue),
                                           ("--status", self.status), ("--rehearse", self.rehearse),
                                           ("--expose", self.expose)) if value]
        if len(chosen) > 1:
            raise WorkshopError(f"choose one of {', '.join(chosen)}")
        for flag, given in (("--json", self.json), ("--watch", self.watch)):
            if given and chosen not in ([], ["--status"]):
                raise WorkshopError(f"{flag} goes with --status")
        if self.json and self.watch:
            raise WorkshopError("choose one of --json, --watch")
        if self.kits and not (self.seats or self.roster):
            raise WorkshopError("--kits goes with --seats or --roster")
        if self.kits:
            from lab.kit import parse_languages

            object.__setattr__(self, "languages", () if self.kits == "none" else parse_languages(self.kits))


def run_workshop(settings: Settings, flags: WorkshopFlags) -> bool:
    """Carry out what `flags` ask for and print it (the room's status by default); False when a rehearsal failed."""
    import lab.workshop as room
    from lab.report import StepPrinter, console, print_json
    from lab.workshop import report

    if flags.seats or flags.roster:
        wanted = room.numbered(flags.seats) if flags.seats else room.read_roster(Path(flags.roster))
        report.print_room(room.build_room(settings, wanted, kits=flags.languages))
    elif flags.revoke:
        report.print_room(room.revoke_seat(settings, flags.revoke))
    elif flags.reissue:
        report.print_room(room.reissue_seat(settings, flags.reissue))
    elif flags.expose:
        with StepPrinter("up") as printer:
            exposed = room.expose(settings, flags.expose, on_event=printer.on_event, on_progress=printer.on_progress)
        report.print_expose(exposed)
    elif flags.rehearse:
        with console.status("rehearsal") as spinner:
            rehearsal = room.rehearse(settings, progress=lambda text: spinner.update(f"rehearsal: {text}"))
        report.print_rehearsal(rehearsal)
        return bool(rehearsal.ok)
    elif flags.watch:
        room.watch(settings, console=console)
    elif flags.json:
        print_json(room.workshop_status(settings).as_dict())
    else:
        report.print_workshop_status(room.workshop_status(settings))
    return True
