"""`invoke workshop --expose ADDRESS`: serve a real room by publishing the workshop port on a network address.

Only the workshop port moves: the admin API (no password) and the guide's 8889/8890 stay on 127.0.0.1
(`runtime.ContainerSpec.from_settings`). The address is recorded in the ledger's `workshop` entry, which the
container step reads, and the lab is converged with `lab.plan.up`: the container is re-created on its volume
with the new binding (Amlen's configuration survives in the volume), the server certificate is re-issued
with the address as an IP SAN (and LAB_WORKSHOP_HOSTNAME), and every seat's README names the address.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

from lab.errors import LabError, WorkshopError
from lab.events import Progress
from lab.files import lab_lock
from lab.hosts import HostsState, hosts_status
from lab.ledger import Ledger
from lab.settings import Settings
from lab.steps import Options
from lab.workshop.bundle import Access, access
from lab.workshop.room import RoomResult, exposed_address, refresh_room

__all__ = ["ExposeResult", "expose"]

_HINT = "give this machine's address on the room's network (`ip -brief address` lists them)"


@dataclass(frozen=True)
class ExposeResult:
    """Where the workshop port is now, what stays on loopback, and the line participants need."""

    access: Access
    loopback_ports: tuple[int, ...]
    room: RoomResult | None


def expose(settings: Settings, address: str, *, converge: Callable[[Options], object],
           on_progress: Progress = lambda _s, _d: None) -> ExposeResult:
    """Publish the workshop port on `address` (a loopback address puts it back on 127.0.0.1) and converge.

    `converge(options)` runs the lab's plan: `lab.plan.expose` passes `lab.plan.up` (the plan holds the
    workshop's step, so the workshop does not import the plan). If the lab cannot be converged, the previous
    binding is recorded again, so the next `up` restores it.
    """
    target = _checked(settings, address)
    with lab_lock(settings.lab_dir):
        ledger = Ledger.load(settings.state_file)
        previous = exposed_address(ledger)
        if target is not None and target != previous:
            _check_port_free(target, settings.workshop_port)
        _record(ledger, target)
    # Keep the hosts step as the user left it: on if the lab's line (or theirs) is there, else --no-hosts.
    state = hosts_status(settings).state
    options = Options(hosts=state in (HostsState.OURS_PRESENT, HostsState.USER_PROVIDES), verify=False)
    try:
        converge(options)
    except LabError:
        with lab_lock(settings.lab_dir):
            _record(Ledger.load(settings.state_file), previous)
        raise
    room = refresh_room(settings, progress=lambda text: on_progress("workshop", text))
    loopback = (settings.admin_port, settings.tls_port, settings.mtls_port)
    return ExposeResult(access(settings, target), loopback, room)


def _record(ledger: Ledger, address: str | None) -> None:
    if address is None:
        ledger.forget("workshop")
    else:
        ledger.record("workshop", {"expose": address})


def _checked(settings: Settings, address: str) -> str | None:
    """The address to publish on, normalised; None for loopback. WorkshopError for one that cannot work."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise WorkshopError(f"--expose {address!r} is not an IP address", _HINT) from None
    if ip.is_loopback:
        return None
    if ip.is_unspecified:
        raise WorkshopError(f"--expose {ip} would publish the workshop port on every interface", _HINT)
    if ip.is_multicast or ip.is_reserved or ip.is_link_local:
        raise WorkshopError(f"--expose {ip} is not an address participants can connect to", _HINT)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise WorkshopError(f"--expose {ip}: that address is not on this machine", _HINT) from None
            raise WorkshopError(f"--expose {ip}: cannot use that address ({exc.strerror})", _HINT) from exc
    return str(ip)


def _check_port_free(address: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise WorkshopError(
                f"port {port} on {address} is already in use ({exc.strerror})",
                f"stop what holds it (`ss -ltnp 'sport = :{port}'`), or set LAB_WORKSHOP_PORT to a free port",
            ) from exc
