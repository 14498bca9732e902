"""How the lab prints a duration: one formatter, so no figure reads "0 ms" when it was 0.4 ms."""

from __future__ import annotations

__all__ = ["format_duration"]


def format_duration(seconds: float) -> str:
    """`seconds` for people: `0.42 ms`, `3.2 ms`, `87 ms`, `1.3 s`; never a zero for a time that passed.

    Below 1 ms two significant digits (a loopback round trip is a few hundred microseconds), below 10 ms one
    decimal, below 1 s whole milliseconds, then seconds with one decimal. Only an exact zero (or a negative,
    which a clock step can give) prints as `0 ms`; under 10 microseconds is `<0.01 ms`.
    """
    ms = seconds * 1000
    if ms <= 0:
        return "0 ms"
    if ms < 0.01:
        return "<0.01 ms"
    if ms < 0.995:
        return f"{ms:.2g} ms"
    if ms < 9.95:
        return f"{ms:.1f} ms"
    if ms < 999.5:
        return f"{ms:.0f} ms"
    return f"{seconds:.1f} s"
