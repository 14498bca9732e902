"""What `invoke doctor` finds: a check's status, a finding, the report, and the run that collects them
(the check modules add to a `Run`; `lab.doctor.doctor` runs them in order).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lab.amlen.admin import AmlenClient
from lab.settings import Settings

__all__ = ["EXPIRY_WARN_DAYS", "DoctorCheck", "DoctorReport", "Run", "Status"]


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


class Run:
    """What earlier checks found, for later ones to build on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.checks: list[DoctorCheck] = []
        self.engine: Any = None  # lab.container.engine.Engine, once the engine answered
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
