"""The ledger: a JSON record, in the lab directory, of everything `up` created and which run created it.

`up` writes it atomically after each step, so a crash leaves an accurate record; a failed `up` undoes only
the entries of its own run; `down` undoes them all and then deletes the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.files import atomic_write

__all__ = ["Ledger"]

_FORMAT = 1


@dataclass
class Ledger:
    """What this lab created. `entries` maps a kind ("container", "volume", "hosts", "files", "amlen") to data."""

    path: Path
    entries: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)  # uploaded file -> sha256 of what Amlen has

    @classmethod
    def load(cls, path: Path) -> Ledger:
        """The ledger at `path`, or an empty one when there is none (or it is unreadable)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(path)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return cls(path)
        return cls(path, dict(data.get("entries") or {}), dict(data.get("fingerprints") or {}))

    def save(self) -> None:
        """Write the ledger atomically (the lab directory is the user's; 0600 keeps it private)."""
        body = {"format": _FORMAT, "entries": self.entries, "fingerprints": self.fingerprints}
        atomic_write(self.path, json.dumps(body, indent=2, sort_keys=True).encode() + b"\n", mode=0o600)

    def record(self, kind: str, value: Any) -> None:
        """Set one entry and save at once."""
        self.entries[kind] = value
        self.save()

    def append(self, kind: str, value: Any) -> None:
        """Add one item to a list entry and save at once."""
        self.entries.setdefault(kind, []).append(value)
        self.save()

    def forget(self, kind: str) -> None:
        """Drop an entry (after its undo succeeded) and save."""
        if self.entries.pop(kind, None) is not None:
            self.save()

    def is_empty(self) -> bool:
        """True when nothing is recorded any more."""
        return not any(self.entries.values())

    def delete(self) -> None:
        """Remove the ledger file (after a complete `down`)."""
        self.path.unlink(missing_ok=True)
