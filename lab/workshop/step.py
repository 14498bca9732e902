"""The workshop's part in `invoke down`: forget the exposed port, and with `--purge` remove seats and CRL.

The workshop's Amlen objects are in the ledger's `amlen` list and go with the guide's (AmlenConfigStep). The
bundles stay by default, like the certificates: participants may hold copies, and the CRL keeps revoked
seats revoked when the room is set up again.
"""

from __future__ import annotations

import shutil

from lab.errors import WorkshopError
from lab.steps import LabContext
from lab.workshop.seats import existing_seats, workshop_dir

__all__ = ["WorkshopStep"]


class WorkshopStep:
    """Undo-only: `up` does not make a workshop (`invoke workshop` does), `down` takes it apart."""

    name = "workshop"

    def check(self, ctx: LabContext) -> bool | str:
        return "made by `invoke workshop`"

    def apply(self, ctx: LabContext) -> str:
        return ""

    def undo(self, ctx: LabContext) -> str:
        if not ctx.undo_all:
            return ""  # a failed `up` rolls back its own run only; the workshop is not part of it
        exposed = (ctx.ledger.entries.get("workshop") or {}).get("expose")
        ctx.ledger.forget("workshop")
        moved = f"the workshop port is no longer published on {exposed}; " if exposed else ""
        seats = existing_seats(ctx.settings)
        root = workshop_dir(ctx.settings)
        if not ctx.options.purge:
            kept = f"kept {len(seats)} seat bundles in {root} (`invoke down --purge` removes them)" if seats else \
                "no seat bundles"
            return moved + kept
        if not root.exists():
            return moved + "no seat bundles to remove"
        try:
            shutil.rmtree(root)
        except OSError as exc:
            raise WorkshopError(f"cannot remove {root}: {exc.strerror}", "check its permissions") from exc
        return moved + f"removed {len(seats)} seat bundles and the workshop CRL"
