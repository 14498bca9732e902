"""Who is connected: per-connection counters, and the cache ``GET /ima/v1/monitor/Connection`` is answered from.

Amlen does not read its connections when asked. Its second monitoring thread (``server_monitoring/src/
monitoring.c``, ``ism_monitoring_threadEndpoint``) wakes every 2 s and, once ``DEFAULT_CONN_DATA_UPDATE_INTERVAL``
(60 s, ``connectionMonData.h``) has passed since the last time, rebuilds a cache (``connectionMonData.c``,
``ism_monitoring_connectionCacheUpdate``): for all endpoints together and for each running endpoint, six lists of
at most 50 connections, one per ``StatType``, serialised then and there. Its clock starts at 0, so the first
rebuild happens at the first tick once the server runs. A real server was seen to list a new connection 11 s late
and a closed one until the next rebuild (reference, "Observed later (2026-12-02)").

The stand-in does the same: :meth:`ConnectionRegistry.run_cache` ticks every 2 s (or every interval, when the
interval set by ``STANDIN_CONN_MONITOR_INTERVAL`` is shorter) and rebuilds when the interval has passed. Entries
are frozen at the rebuild: ``Duration`` (nanoseconds) and the counters are those of that moment, so
``ConnectTime + Duration`` is the time of the rebuild, as on Amlen.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

_IDS = itertools.count(1)
MAX_LISTED = 50  # processConnMonitoringDataResult keeps at most 50 per ordering
TICK = 2.0  # ism_monitoring_threadEndpoint's wait
ALL = ""  # the cache key for all endpoints (DEFAULT_ALL_ENDPOINT_NAME)
STAT_TYPES = (
    "NewestConnection",
    "OldestConnection",
    "HighestThroughputMsgs",
    "LowestThroughputMsgs",
    "HighestThroughputKB",
    "LowestThroughputKB",
)

Cache = dict[str, dict[str, list[dict[str, Any]]]]
"""endpoint name (ALL for every endpoint) -> StatType -> the serialised entries."""


@dataclass
class ConnectionRecord:
    """One client connection on an endpoint; counters are updated by the connection's own thread."""

    endpoint: str
    port: int
    client_addr: str
    client_port: int
    ident: int = field(default_factory=lambda: next(_IDS))
    client_id: str | None = None  # set once the MQTT CONNECT succeeded
    user_id: str = ""
    connected_wall: float = 0.0
    connected_at: float | None = None  # monotonic
    closed_at: float | None = None  # monotonic
    read_bytes: int = 0
    read_msg: int = 0
    write_bytes: int = 0
    write_msg: int = 0
    lost_msg: int = 0


class ConnectionRegistry:
    """All connections of all endpoints, and the connection monitor's cache of them."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._records: list[ConnectionRecord] = []
        self._cache: Cache = {}
        self._last_rebuild: float | None = None
        self._lock = threading.Lock()

    def add(self, record: ConnectionRecord) -> None:
        with self._lock:
            self._records.append(record)

    def mqtt_connected(self, record: ConnectionRecord, client_id: str, user_id: str | None) -> None:
        record.client_id, record.user_id = client_id, user_id or ""
        record.connected_wall, record.connected_at = time.time(), time.monotonic()

    def closed(self, record: ConnectionRecord) -> None:
        with self._lock:
            record.closed_at = time.monotonic()
            self._records = [r for r in self._records if r.closed_at is None]

    def rebuild(self, endpoints: Iterable[str], *, now: float | None = None) -> None:
        """``ism_monitoring_connectionCacheUpdate``: all endpoints, then each running one; endpoints gone drop out."""
        now = time.monotonic() if now is None else now
        wall = time.time() - (time.monotonic() - now)
        with self._lock:
            records = [r for r in self._records if r.client_id is not None and r.connected_at is not None]
        cache: Cache = {ALL: _orderings(records, now, wall)}
        for name in endpoints:
            cache[name] = _orderings([r for r in records if r.endpoint == name], now, wall)
        with self._lock:
            self._cache = cache

    def listed(self, endpoint: str | None, stat_type: str) -> list[dict[str, Any]]:
        """What the cache holds for ``endpoint`` (None: all); an endpoint not in it yet has no entries."""
        with self._lock:
            return list(self._cache.get(ALL if endpoint is None else endpoint, {}).get(stat_type, []))

    def tick(self, endpoints: Callable[[], Iterable[str]], *, now: float | None = None) -> bool:
        """One wake-up of the monitoring thread: rebuild if this is the first or the interval has passed."""
        now = time.monotonic() if now is None else now
        if self._last_rebuild is not None and now - self._last_rebuild < self.interval:
            return False
        self.rebuild(endpoints(), now=now)
        self._last_rebuild = now
        return True

    def run_cache(self, endpoints: Callable[[], Iterable[str]], stop: threading.Event) -> None:
        """Tick every 2 s (every interval, if shorter) until ``stop`` is set (in the caller's thread)."""
        period = min(TICK, self.interval) if self.interval > 0 else TICK
        while not stop.wait(period):
            self.tick(endpoints)


def _orderings(records: list[ConnectionRecord], now: float, wall: float) -> dict[str, list[dict[str, Any]]]:
    """The six lists of at most 50, ordered by Amlen's comparators (``monitoringutil.c``), ties by arrival."""
    durations = {r.ident: max(now - (r.connected_at or now), 1e-9) for r in records}

    def msgs(r: ConnectionRecord) -> float:
        return (r.read_msg + r.write_msg) / durations[r.ident]

    def kbytes(r: ConnectionRecord) -> float:
        return (r.read_bytes + r.write_bytes) / durations[r.ident]

    keys: dict[str, tuple[Callable[[ConnectionRecord], float], bool]] = {
        "OldestConnection": (lambda r: durations[r.ident], True),
        "NewestConnection": (lambda r: durations[r.ident], False),
        "HighestThroughputMsgs": (msgs, True),
        "LowestThroughputMsgs": (msgs, False),
        "HighestThroughputKB": (kbytes, True),
        "LowestThroughputKB": (kbytes, False),
    }
    lists = {}
    for stat_type, (key, highest_first) in keys.items():
        ordered = sorted(records, key=key, reverse=highest_first)  # stable: ties keep their arrival order
        lists[stat_type] = [_entry(r, durations[r.ident]) for r in ordered[:MAX_LISTED]]
    return lists


def _entry(record: ConnectionRecord, duration: float) -> dict[str, Any]:
    """The JSON object Amlen's monitor shows for a connection (as recorded; the certificate's CN is not in it)."""
    return {
        "Name": record.client_id,
        "Protocol": "mqtt",
        "ClientAddr": record.client_addr,
        "UserId": record.user_id,
        "Endpoint": record.endpoint,
        "Port": record.port,
        "ConnectTime": iso_millis(record.connected_wall),
        "Duration": int(duration * 1e9),  # nanoseconds connected, as of the rebuild
        "ReadBytes": record.read_bytes,
        "ReadMsg": record.read_msg,
        "WriteBytes": record.write_bytes,
        "WriteMsg": record.write_msg,
    }


def iso_millis(seconds: float) -> str:
    """``2026-12-02T08:47:41.941Z``: Amlen's monitor timestamps (UTC, milliseconds)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
