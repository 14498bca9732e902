"""A paused machine must not cost the user their lab: `up` rides out a freeze of Amlen mid-step.

A laptop that sleeps, a loaded CI runner or a throttled VM stop everything for tens of seconds; when it resumes,
every pending timeout fires at once. The tests freeze the stand-in (`docker pause`, or SIGSTOP where the engine
cannot pause: `tests.freeze`) for longer than a client's timeout, exactly while `endpoints live` or
`verification` runs, and `up` must still succeed: rows that got no answer are retried once on a fresh
connection, and the admin client repeats a request that timed out.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from lab.amlen.admin import AmlenClient
from lab.clients.tls import DEFAULT_TIMEOUT
from lab.deadline import PAUSE_GAP, Deadline
from lab.plan import StepEvent, StepStatus, up
from lab.settings import load_settings
from lab.steps import Options
from tests.conftest import LabEnv
from tests.freeze import freeze
from tests.helpers import serve_http

# Longer than one client's timeout, so the first attempts really fail and the retry is what saves the run.
PAUSE = DEFAULT_TIMEOUT + 2.0


@pytest.mark.parametrize("step", ["endpoints live", "verification"])
def test_up_rides_out_a_paused_amlen_during_a_step(lab_env: LabEnv, monkeypatch: pytest.MonkeyPatch,
                                                   step: str) -> None:
    for key, value in lab_env.env.items():
        if key.startswith("LAB_"):
            monkeypatch.setenv(key, value)
    settings = load_settings(env_file=None)
    unpaused = threading.Event()

    def freeze_when_it_starts(event: StepEvent) -> None:
        if event.step == step and event.status is StepStatus.RUNNING:
            thaw = freeze(lab_env.container_name)  # before the step's first packet: it meets a frozen Amlen

            def thaw_later() -> None:
                time.sleep(PAUSE)
                thaw()
                unpaused.set()

            threading.Thread(target=thaw_later, daemon=True).start()

    try:
        report = up(settings, Options(hosts=False), on_event=freeze_when_it_starts)
    finally:
        unpaused.wait(timeout=60)
    events = {event.step: event for event in report.events}
    assert events[step].status is StepStatus.APPLIED, events[step]
    assert events[step].seconds >= PAUSE - 1.0, "the step waited for Amlen to come back"
    if step == "verification":
        assert "after one retry" in events[step].detail, events[step].detail
    assert report.outcome.value == "ok"


class _SlowOnce(http.server.BaseHTTPRequestHandler):
    """An admin API whose first answer comes too late (a server that was frozen), then answers at once."""

    calls: ClassVar[list[float]] = []

    def do_GET(self) -> None:
        self.calls.append(time.monotonic())
        if len(self.calls) == 1:
            time.sleep(1.5)
        body = json.dumps({"Version": "v1", "Server": {"State": 1, "ErrorCode": 0}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def slow_once_server() -> Iterator[str]:
    _SlowOnce.calls = []
    with serve_http(_SlowOnce) as url:
        yield url


def test_admin_client_repeats_a_request_that_got_no_answer(slow_once_server: str) -> None:
    with AmlenClient(slow_once_server, timeout=0.5) as amlen:
        assert amlen.status()["Server"]["State"] == 1
    assert len(_SlowOnce.calls) == 2, "the timed-out request was sent once more"


def test_deadline_adds_back_a_pause_between_polls() -> None:
    now = [100.0]
    deadline = Deadline(5.0, clock=lambda: now[0])
    now[0] += 1.0
    assert deadline.left() == pytest.approx(4.0)
    now[0] += 35.0  # the machine was paused: no poll for 35 s, then the clock jumped
    assert deadline.left() == pytest.approx(4.0) and deadline.paused == pytest.approx(35.0)
    now[0] += PAUSE_GAP / 2  # ordinary polling counts
    assert deadline.left() == pytest.approx(4.0 - PAUSE_GAP / 2)
    polls = 0
    while not deadline.expired():  # polled every 0.1 s, the rest runs out as usual
        now[0] += 0.1
        polls += 1
    assert 30 <= polls <= 36
