"""`invoke doctor`: the guide's debugging page (ping, netstat, telnet, `openssl s_client -showcerts`,
`openssl x509 -text`) run for the user, each finding as OK / WARN / FAIL with a hint that names the cause.

Checks run in dependency order and never crash on an earlier failure: a check whose prerequisite failed
reports SKIP with "skipped: needs <what>". Amlen's checks need the lab container only when the admin URL is
the lab's own (LAB_ADMIN_URL empty); against a remote Amlen they run without Docker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lab.amlen import AmlenClient
from lab.settings import Settings

__all__ = ["EXPIRY_WARN_DAYS", "DoctorCheck", "DoctorReport", "Run", "Status", "doctor"]

EXPIRY_WARN_DAYS = 30  # a month's notice is enough to re-run `invoke certs` before a workshop


class Status(StrEnum):
    """How a check came out."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class DoctorCheck:
    """One finding: what was checked, how it came out, what it means, what to do; `data` for `--json`."""

    name: str
    status: Status
    detail: str
    hint: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DoctorReport:
    """All findings in order; `ok` when none failed (warnings allowed)."""

    checks: list[DoctorCheck]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(check.status is not Status.FAIL for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


def doctor(settings: Settings) -> DoctorReport:
    """Run every diagnostic against the lab described by `settings` and return the findings."""
    from lab.doctor.admin import admin_plane
    from lab.doctor.amlen import amlen_status, endpoints, server_log, trusted_ca
    from lab.doctor.container import container, docker_engine, image, lab_volume, memory, published_ports
    from lab.doctor.files import local_files, other_clients
    from lab.doctor.network import handshakes, name_resolution, ports

    run = Run(settings)
    for check in (docker_engine, container, image, memory, published_ports, lab_volume, admin_plane, amlen_status,
                  endpoints,
                  trusted_ca, name_resolution, ports, handshakes, server_log, local_files, other_clients):
        check(run)
    return DoctorReport(run.checks)


class Run:
    """What earlier checks found, for later ones to build on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.checks: list[DoctorCheck] = []
        self.engine: Any = None  # lab.engine.Engine, once the engine answered
        self.docker: Any = None
        self.container: Any = None
        self.amlen: AmlenClient | None = None
        self.listening: set[int] = set()
        self.unreachable: list[str] = []  # endpoints or ports that failed, for the log check to explain
        self.remote_admin = bool(settings.admin_url)

    def add(self, name: str, status: Status, detail: str, hint: str = "", **data: Any) -> None:
        self.checks.append(DoctorCheck(name, status, detail, hint, data))

    def skip(self, name: str, needs: str) -> None:
        self.add(name, Status.SKIP, f"skipped: needs {needs}")


