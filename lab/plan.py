"""The lab plan: ordered steps from settings, run forward with rollback (`up`) or backward (`down`).

`up` skips steps whose check passes and applies the rest. When a step fails it undoes what this run
created, in reverse, and ends with one of three plain outcomes: rolled back; kept for inspection
(`--keep-on-failure`); or rollback failed too, with the leftovers listed. Nothing here prints: events go
to a callback and the results come back as data for `lab.report` to render.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lab.errors import LabError
from lab.events import Listener, Outcome, PlanFailed, Progress, RunReport, StepEvent, StepStatus
from lab.files import lab_lock
from lab.ledger import Ledger
from lab.settings import Settings
from lab.steps import (
    AmlenConfigStep,
    CertificatesStep,
    ContainerStep,
    EndpointsLiveStep,
    HostsStep,
    LabContext,
    Options,
    PreflightStep,
    ReadyStep,
    Step,
    VerifyStep,
)
from lab.steps.admin import AdminCertificatesStep, AdminPlaneStep
from lab.workshop.step import WorkshopStep

if TYPE_CHECKING:
    from lab.workshop.exposure import ExposeResult

__all__ = ["Outcome", "PlanFailed", "RunReport", "StepEvent", "StepStatus", "configure", "down", "expose", "up"]




def up_steps() -> list[Step]:
    """The whole lab, in order (the guide's steps, plus the checks it does by hand).

    The container starts before the certificates are made: Amlen needs about a second to boot, and the RSA
    keys (the admin plane's too) are made in that second instead of before it. The admin plane is locked
    right after readiness, before any other object reaches Amlen.
    """
    return [PreflightStep(), ContainerStep(), CertificatesStep(), AdminCertificatesStep(), ReadyStep(),
            AdminPlaneStep(), AmlenConfigStep(), EndpointsLiveStep(), HostsStep(), VerifyStep()]


def configure_steps() -> list[Step]:
    """Steps 5-7 of `up` for an Amlen that already runs somewhere (`invoke configure`)."""
    return [CertificatesStep(), AdminCertificatesStep(), ReadyStep(), AdminPlaneStep(), AmlenConfigStep(),
            EndpointsLiveStep(), HostsStep(), VerifyStep()]


def up(settings: Settings, options: Options | None = None, *, on_event: Listener = lambda _: None,
       on_progress: Progress = lambda _s, _d: None) -> RunReport:
    """Bring the lab up (or converge a running one); raises PlanFailed after rolling back."""
    return _forward(settings, options or Options(), up_steps(), on_event, on_progress)


def configure(settings: Settings, options: Options | None = None, *, on_event: Listener = lambda _: None,
              on_progress: Progress = lambda _s, _d: None) -> RunReport:
    """Apply the guide's configuration to the Amlen at `settings.admin_base_url`."""
    return _forward(settings, options or Options(), configure_steps(), on_event, on_progress)


def down(settings: Settings, options: Options | None = None, *, on_event: Listener = lambda _: None) -> RunReport:
    """Undo everything the ledger records (and anything marked as this lab's), in reverse order.

    Idempotent: with nothing up, every step says so and `down` succeeds.
    """
    report = RunReport()
    started = time.monotonic()
    # The workshop's objects go with the guide's (AmlenConfigStep); its step forgets the exposed port and purges seats.
    # The admin plane is undone while the container is still in the ledger: it must know whether the lock goes
    # with the container (then --purge may remove .lab/admin) or stays on a kept one (then the files must stay).
    steps: list[Step] = list(reversed([CertificatesStep(), WorkshopStep(), ContainerStep(), AdminPlaneStep(),
                                       AmlenConfigStep(), HostsStep()]))
    with lab_lock(settings.lab_dir):
        ctx = LabContext(settings, Ledger.load(settings.state_file), _run_id(), options or Options(), undo_all=True)
        failures: list[LabError] = []
        try:
            for index, step in enumerate(steps, 1):
                ctx.notice = functools.partial(_notice, on_event, step.name)
                on_event(StepEvent(step.name, StepStatus.RUNNING, index=index, total=len(steps)))
                t0 = time.monotonic()
                try:
                    detail, status = step.undo(ctx), StepStatus.UNDONE
                except LabError as exc:
                    # Go on with the other steps: a hosts file we may not write must not keep a container alive.
                    failures.append(exc)
                    detail, status = exc.message, StepStatus.FAILED
                event = StepEvent(step.name, status, detail, time.monotonic() - t0, index, len(steps))
                report.events.append(event)
                on_event(event)
        finally:
            ctx.close()
        if ctx.ledger.is_empty():
            ctx.ledger.delete()
    report.seconds = time.monotonic() - started
    if failures:
        report.outcome = Outcome.ROLLBACK_FAILED
        report.leftovers = [f.message for f in failures]
        first = failures[0]
        raise PlanFailed(first, "down", report)
    report.seconds = time.monotonic() - started
    return report


def _forward(settings: Settings, options: Options, steps: Sequence[Step], on_event: Listener,
             on_progress: Progress) -> RunReport:
    report = RunReport()
    started = time.monotonic()
    with lab_lock(settings.lab_dir):
        ctx = LabContext(settings, Ledger.load(settings.state_file), _run_id(), options)
        try:
            current = ""
            ctx.progress = lambda text: on_progress(current, text)
            ctx.notice = lambda text: on_event(StepEvent(current, StepStatus.NOTICE, text))
            for index, step in enumerate(steps, 1):
                current = step.name
                on_event(StepEvent(step.name, StepStatus.RUNNING, index=index, total=len(steps)))
                t0 = time.monotonic()
                try:
                    if skip := step.check(ctx):
                        status, detail = StepStatus.SKIPPED, skip if isinstance(skip, str) else "already done"
                    else:
                        status, detail = StepStatus.APPLIED, step.apply(ctx)
                except (LabError, KeyboardInterrupt) as exc:
                    error = exc if isinstance(exc, LabError) else LabError("interrupted (Ctrl-C)")
                    event = StepEvent(step.name, StepStatus.FAILED, error.message, time.monotonic() - t0,
                                      index, len(steps))
                    report.events.append(event)
                    on_event(event)
                    _roll_back(ctx, steps, report, on_event)
                    report.seconds = time.monotonic() - started
                    raise PlanFailed(error, step.name, report) from exc
                event = StepEvent(step.name, status, detail, time.monotonic() - t0, index, len(steps))
                report.events.append(event)
                on_event(event)
            ctx.ledger.save()
        finally:
            ctx.close()
    report.seconds = time.monotonic() - started
    return report


def _roll_back(ctx: LabContext, steps: Sequence[Step], report: RunReport, on_event: Listener) -> None:
    if ctx.options.keep_on_failure:
        report.outcome = Outcome.KEPT
        return
    report.outcome = Outcome.ROLLED_BACK
    for step in reversed(steps):
        t0 = time.monotonic()
        try:
            detail = step.undo(ctx)
        except LabError as exc:
            report.outcome = Outcome.ROLLBACK_FAILED
            report.leftovers.append(f"{step.name}: {exc.message}")
            continue
        if detail:
            event = StepEvent(step.name, StepStatus.UNDONE, detail, time.monotonic() - t0)
            report.events.append(event)
            on_event(event)
    if ctx.ledger.is_empty():
        ctx.ledger.delete()


def _notice(on_event: Listener, step: str, text: str) -> None:
    on_event(StepEvent(step, StepStatus.NOTICE, text))


def _run_id() -> str:
    return uuid.uuid4().hex[:12]


def expose(settings: Settings, address: str, *, on_event: Listener = lambda _: None,
           on_progress: Progress = lambda _s, _d: None) -> ExposeResult:
    """Publish the workshop port on `address` (loopback: back to 127.0.0.1) and converge the lab with `up`.

    `on_event` / `on_progress` are `up`'s callbacks, to show the lab's steps as they run. The workshop's
    modules are imported here, not with the plan: `up` and `down` never need them.
    """
    from lab.workshop.exposure import expose as expose_port

    def converge(options: Options) -> None:
        up(settings, options, on_event=on_event, on_progress=on_progress)

    return expose_port(settings, address, converge=converge, on_progress=on_progress)
