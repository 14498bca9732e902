"""What a run of the plan reports: step events as they happen, and how the run ended.

Plain records, with no heavy imports, so that the report (and `invoke status`) can name them without loading
Docker, TLS or MQTT code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from lab.errors import LabError

__all__ = ["Listener", "Outcome", "PlanFailed", "Progress", "RunReport", "StepEvent", "StepStatus"]


class StepStatus(StrEnum):
    """Where a step stands."""

    RUNNING = "running"
    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNDONE = "undone"
    NOTICE = "notice"  # a step tells the user something before it goes on (e.g. why sudo asks)


class Outcome(StrEnum):
    """How a run ended."""

    OK = "ok"
    ROLLED_BACK = "rolled back"
    KEPT = "kept for inspection"
    ROLLBACK_FAILED = "rollback failed"


@dataclass(frozen=True)
class StepEvent:
    """One thing that happened to a step; `detail` is a line for people."""

    step: str
    status: StepStatus
    detail: str = ""
    seconds: float = 0.0
    index: int = 0
    total: int = 0


@dataclass
class RunReport:
    """What a run did, step by step, and how it ended."""

    events: list[StepEvent] = field(default_factory=list)
    outcome: Outcome = Outcome.OK
    leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0


class PlanFailed(LabError):
    """A step failed; `report` says what was undone. The message and hint are the failing step's."""

    def __init__(self, error: LabError, step: str, report: RunReport) -> None:
        super().__init__(f"{step} failed: {error.message}", error.hint, details=error.details)
        self.report = report
        self.cause = error


Listener = Callable[[StepEvent], None]
Progress = Callable[[str, str], None]
