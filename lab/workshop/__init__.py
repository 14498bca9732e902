"""Workshop labs: one instructor, a room of seats, each with its own identity (`invoke workshop`).

Each seat gets a client certificate from the lab CA with CN `seat.<name>` and a bundle to hand out; a third
endpoint (`WorkshopSeats`, LAB_WORKSHOP_PORT) admits only seats, each to its own topics and the room's. The
instructor revokes (a CRL), re-issues, watches who is connected, and exposes the port to the room.

    roster   seat names, validated as a whole      seats    bundle directories and their certificates
    bundle   a seat's kit (lab.kit), README, zip   objects  the Amlen objects
    room     build / revoke / reissue (the CRL is lab.pki.crl)
    monitor  Amlen's monitors, read for the room   status   seats joined with the monitors
    watch    the live table (`--status --watch`)   exposure publish the port on a network address
    handout  a bundle as its participant reads it  rehearsal every seat proven from its bundle
    seatclient one seat's MQTT client              netloop  one network thread for all of them
    step     `down`'s part                         report   printing
    command  `invoke workshop`: its flags checked together, the one action they ask for, printed

Names are imported on first use: `lab.plan` imports `lab.workshop.step`; `expose` is `lab.plan.expose`,
which converges with `up` (the workshop itself never imports the plan).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ExposeResult",
    "RoomResult",
    "WorkshopStatus",
    "WorkshopStep",
    "build_room",
    "expose",
    "numbered",
    "read_roster",
    "rehearse",
    "reissue_seat",
    "revoke_seat",
    "watch",
    "workshop_status",
]

_SURFACE = {
    "ExposeResult": "lab.workshop.exposure",
    "RoomResult": "lab.workshop.room",
    "WorkshopStatus": "lab.workshop.status",
    "WorkshopStep": "lab.workshop.step",
    "build_room": "lab.workshop.room",
    "expose": "lab.plan",
    "numbered": "lab.workshop.roster",
    "read_roster": "lab.workshop.roster",
    "rehearse": "lab.workshop.rehearsal",
    "reissue_seat": "lab.workshop.room",
    "revoke_seat": "lab.workshop.room",
    "watch": "lab.workshop.watch",
    "workshop_status": "lab.workshop.status",
}


def __getattr__(name: str) -> Any:
    if name in _SURFACE:
        return getattr(importlib.import_module(_SURFACE[name]), name)
    raise AttributeError(f"module 'lab.workshop' has no attribute {name!r}")
