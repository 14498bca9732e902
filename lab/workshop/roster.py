"""Seat names: numbered (`--seats N`) or read from a roster file (`--roster FILE`), and validated as a whole.

A seat name becomes the certificate's CN `seat.<name>`, the bundle directory `.lab/workshop/<name>/`, file
names and MQTT topics, so it is short and plain. Every name is checked before anything is created: a bad
roster line is one error naming the line, and the room stays as it was.

No seat's CN may begin another's: Amlen's ConnectionPolicy admits client IDs that *start with* the CN
(`${CommonName}*`), so seat `anna` could otherwise take the client IDs of seat `annabel` (and knock her
session off), and `--status` could not tell their connections apart.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import WorkshopError

__all__ = ["CN_PREFIX", "MAX_NAME", "SeatName", "cn", "numbered", "read_roster", "validate"]

CN_PREFIX = "seat."
# Short enough that `seat.<name>-sub` stays a comfortable MQTT client ID and a file name on any system.
MAX_NAME = 24
# Letters, digits, '.', '_', '-'; starting with a letter or digit, so no name is hidden (".x") or an option ("-x").
_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}$")
_RULE = f"letters, digits, '.', '_' or '-', at most {MAX_NAME}, starting with a letter or digit"


@dataclass(frozen=True)
class SeatName:
    """A seat name and where it came from (`roster.txt line 4`, `--seats`, `an existing seat`), for errors."""

    name: str
    origin: str


def cn(name: str) -> str:
    """The certificate common name of seat `name`: `seat.<name>`."""
    return CN_PREFIX + name


def numbered(count: int) -> list[SeatName]:
    """Seats `01`..`N`: zero-padded to the width of N, and at least two digits so that growing a room from
    9 to 10 seats adds `10` instead of renaming `1`..`9`."""
    if not 1 <= count <= 999:
        raise WorkshopError(f"--seats {count}: a room has 1 to 999 seats", "e.g. `invoke workshop --seats 12`")
    width = max(2, len(str(count)))
    return [SeatName(f"{number:0{width}d}", "--seats") for number in range(1, count + 1)]


def read_roster(path: Path) -> list[SeatName]:
    """The names in a roster file: one per line; blank lines and lines starting with `#` are skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise WorkshopError(f"roster {path} does not exist", "give a text file with one seat name per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise WorkshopError(f"cannot read roster {path}: {reason}", "give a UTF-8 text file, one name a line") from exc
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if name and not name.startswith("#"):
            names.append(SeatName(name, f"{path.name} line {number}"))
    if not names:
        raise WorkshopError(f"roster {path} names no seats", "put one seat name per line (lines with # are comments)")
    return names


def validate(wanted: Sequence[SeatName], existing: Iterable[str] = ()) -> list[str]:
    """The wanted names, checked against each other and the seats that exist; WorkshopError for the first bad one.

    Raised before anything is created, naming the line (or flag) the bad name came from.
    """
    hint = "fix it and run the same command again; nothing was created"
    seen: dict[str, SeatName] = {}
    for seat in wanted:
        if not _NAME.match(seat.name):
            raise WorkshopError(f"{seat.origin}: {seat.name!r} is not a usable seat name ({_RULE})", hint)
        key = seat.name.lower()  # bundle directories must not collide on case-insensitive file systems
        if key in seen:
            first = seen[key]
            if first.name == seat.name:
                raise WorkshopError(f"{seat.origin}: {seat.name!r} repeats {first.origin}", hint)
            raise WorkshopError(f"{seat.origin}: {seat.name!r} differs from {first.name!r} ({first.origin}) "
                                "only in case", hint)
        seen[key] = seat
    everyone = dict(seen)
    for name in existing:
        everyone.setdefault(name.lower(), SeatName(name, "an existing seat"))
    ordered = sorted(everyone.values(), key=lambda s: s.name.lower())
    # Sorted, a name that begins another sorts right before the first such name, so neighbours suffice.
    for shorter, longer in itertools.pairwise(ordered):
        if longer.name.lower().startswith(shorter.name.lower()):
            culprit, other = (longer, shorter) if longer.origin != "an existing seat" else (shorter, longer)
            raise WorkshopError(
                f"{culprit.origin}: {culprit.name!r} and {other.name!r} ({other.origin}): one begins the other, "
                f"so {cn(shorter.name)} could take {cn(longer.name)}'s client IDs",
                f"rename one so that neither begins the other (e.g. {shorter.name}_1); nothing was created",
            )
    return [seat.name for seat in wanted]
