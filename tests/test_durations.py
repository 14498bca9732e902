"""Durations as the lab prints them (lab.durations): a sub-millisecond time reads as such, never as 0 ms, in the
rehearsal's percentiles, the TLS matrix's rows and the step lines alike."""

from __future__ import annotations

import pytest

from lab import report
from lab.clients.checks import VerifyReport
from lab.clients.rows import CheckResult
from lab.durations import format_duration
from lab.events import StepEvent, StepStatus
from lab.workshop import report as workshop_report
from lab.workshop.rehearsal import Rehearsal, SeatRun


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.0, "0 ms"), (-0.001, "0 ms"), (0.000004, "<0.01 ms"), (0.00004, "0.04 ms"), (0.0004, "0.4 ms"),
    (0.000437, "0.44 ms"), (0.00099, "0.99 ms"), (0.001, "1.0 ms"), (0.0032, "3.2 ms"), (0.00996, "10 ms"),
    (0.087, "87 ms"), (0.9994, "999 ms"), (0.9996, "1.0 s"), (1.312, "1.3 s"), (5.457, "5.5 s"), (42.0, "42.0 s"),
])
def test_each_range_of_durations_reads_as_people_write_it(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_the_rehearsal_shows_sub_millisecond_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    seats = [SeatRun(f"{n:02d}", connect_seconds=0.0031, round_trip_seconds=0.0004) for n in range(1, 4)]
    workshop_report.print_rehearsal(Rehearsal(seats, seconds=2.54))
    out = " ".join(capsys.readouterr().out.split())
    assert "p50 0.4 ms, p95 0.4 ms" in out and "p50 3.1 ms, p95 3.1 ms" in out
    assert "took │ 2.5 s" in out and " 0 ms" not in out


def test_verify_rows_and_step_lines_show_sub_millisecond_times(capsys: pytest.CaptureFixture[str]) -> None:
    row = CheckResult("TLS 8889, plain MQTT without TLS", "rejected, no CONNACK", True, "no CONNACK", 0.0007, 6,
                      "3.1.1", "rejected")
    report.print_verify(VerifyReport([row], True, 0.0007))
    report.StepPrinter("up").on_event(StepEvent("hosts entry", StepStatus.SKIPPED, "not asked for", 0.0002, 7, 8))
    out = capsys.readouterr().out
    assert "got rejected (0.7 ms)" in out and "hosts entry: not asked for (0.2 ms)" in out, out
