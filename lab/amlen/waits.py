"""Waiting for Amlen: poll the status API until the server says it runs, with a useful failure.

Readiness is `Server.State == 1 and Server.ErrorCode == 0`, nothing less: the admin port answers with
starting states (4, 11, 16) before that, and refuses connections before even that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import docker.errors
from docker.models.containers import Container

from lab.amlen.admin import is_ready
from lab.container.runtime import read_server_logs
from lab.deadline import Deadline
from lab.errors import AmlenError, ContainerError

__all__ = ["StatusSource", "wait_until_ready"]


class StatusSource(Protocol):
    """What readiness polls: an `AmlenClient`, or `lab.amlen.adminsec.AdminSource` (the lab's Amlen on any lock)."""

    base_url: str

    def status(self, *, timeout: float | None = None) -> dict[str, Any]: ...

# Polled tightly: a status request costs Amlen next to nothing, and every tenth of a second spent sleeping
# past the moment it is ready is added to `up`.
_POLL = 0.05
_STATUS_TIMEOUT = 2.0


def wait_until_ready(
    amlen: StatusSource,
    *,
    timeout: float,
    container: Container | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Poll `GET /ima/v1/service/status` until Amlen is running; returns the last status body.

    Connection refused/reset, no answer and 5xx are expected while the server starts, and are polled through.
    When `container` is given and exits, or on timeout, the error carries the tail of Amlen's log files.
    """
    deadline = Deadline(timeout)
    last = "the admin port did not answer"
    polls = 0
    while True:
        polls += 1
        try:
            status = amlen.status(timeout=_STATUS_TIMEOUT)
        except AmlenError as exc:
            if exc.status is not None and exc.status < 500:
                raise
            status = None
        if status is not None:
            if is_ready(status):
                return status
            server = status.get("Server") or {}
            last = f"State {server.get('State')} ({server.get('StateDescription', '?')})"
            if server.get("ErrorCode"):
                last += f", ErrorCode {server.get('ErrorCode')}: {server.get('ErrorMessage', '')}"
        progress(f"waiting for Amlen: {last}")
        if container is not None and polls % 10 == 1:  # a Docker call every half second is enough for that
            _fail_if_exited(container)
        if deadline.left() < _POLL:
            raise ContainerError(
                f"Amlen at {amlen.base_url} was not ready after {timeout:.0f} s: {last}",
                "raise LAB_READY_TIMEOUT for slow machines; `invoke logs` shows the whole server log",
                details=read_server_logs(container) if container is not None else "",
            )
        time.sleep(_POLL)


def _fail_if_exited(container: Container) -> None:
    try:
        container.reload()
    except docker.errors.NotFound as exc:
        raise ContainerError(f"container {container.name} disappeared while Amlen was starting") from exc
    if container.status in ("exited", "dead"):
        code = container.attrs.get("State", {}).get("ExitCode")
        raise ContainerError(
            f"container {container.name} exited (code {code}) before Amlen was ready",
            "`invoke logs` shows why; check LAB_IMAGE and the memory limit (LAB_MEMORY)",
            details=read_server_logs(container),
        )
