"""Deadlines that ride out a paused machine.

A laptop that sleeps, a loaded CI runner or a throttled VM can stop the whole machine for 30 s or more
(`vmstat 1` shows no sample in the gap). When it resumes, the monotonic clock has jumped and every pending
timeout fires at once, although the server on the other end (often on the same machine) was paused too and
never had its chance to answer. A `Deadline` notices such a jump between two of its polls and adds the lost
time back, so a wait counts only time in which the machine was actually running.

Blocking calls (a TCP connect, a TLS handshake) cannot be polled; callers retry those once on a fresh
connection when they got no answer (`lab.clients.checks`), and `Deadline.paused` tells them a pause happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["PAUSE_GAP", "Deadline"]

# A poll loop wakes every 50 ms or so; a gap this long between two polls means the process (or the machine)
# did not run. Starvation on a busy 2-core machine can look the same, and extending a wait then is harmless.
PAUSE_GAP = 1.0


class Deadline:
    """`seconds` from now, not counting gaps longer than `PAUSE_GAP` between two calls to `left()`."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        now = clock()
        self._end = now + seconds
        self._last = now
        self.paused = 0.0  # seconds of detected pauses added back

    def left(self) -> float:
        """Seconds left (0.0 when expired); first adds back a pause since the previous call."""
        now = self._clock()
        gap = now - self._last
        if gap > PAUSE_GAP:
            self._end += gap
            self.paused += gap
        self._last = now
        return max(0.0, self._end - now)

    def expired(self) -> bool:
        """True when no time is left."""
        return self.left() <= 0.0

    def cap(self, seconds: float) -> float:
        """`seconds`, or what is left if that is less: the timeout for one blocking step."""
        return min(seconds, self.left())
