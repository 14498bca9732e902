"""Who is connected: per-connection counters for ``GET /ima/v1/monitor/Connection`` and the endpoint monitor.

Amlen's connection monitor reads a cache that a timer refreshes (``server_monitoring/src/connectionMonData.c``;
the docs say up to 60 s old; a real server listed a new client about a second later). The stand-in imitates the
lag without a cache: a connection becomes visible ``lag`` seconds after its MQTT CONNECT succeeded, and stays
visible ``lag`` seconds after it closed, so callers have to poll either way. Only connections that completed an
MQTT CONNECT are listed; the list holds at most 50 entries, ordered by ``StatType`` as in Amlen.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_IDS = itertools.count(1)
MAX_LISTED = 50  # processConnMonitoringDataResult keeps at most 50 per ordering
STAT_TYPES = (
    "NewestConnection",
    "OldestConnection",
    "HighestThroughputMsgs",
    "LowestThroughputMsgs",
    "HighestThroughputKB",
    "LowestThroughputKB",
)


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

    def uptime(self, now: float) -> float:
        if self.connected_at is None:
            return 0.0
        return (self.closed_at or now) - self.connected_at


class ConnectionRegistry:
    """All connections of all endpoints, for the monitors."""

    def __init__(self, lag: float) -> None:
        self.lag = lag
        self._records: list[ConnectionRecord] = []
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
            now = time.monotonic()
            # Forget what nobody can see any more.
            self._records = [
                r for r in self._records if r.closed_at is None or now - r.closed_at < max(self.lag, 0.0) + 1
            ]

    def visible(self, endpoint: str | None, stat_type: str) -> list[dict[str, Any]]:
        """The monitor entries: lagging behind connects and closes, ordered by ``stat_type``, at most 50."""
        now = time.monotonic()
        with self._lock:
            records = [
                r
                for r in self._records
                if r.client_id is not None
                and r.connected_at is not None
                and now - r.connected_at >= self.lag
                and (r.closed_at is None or now - r.closed_at < self.lag)
                and (endpoint is None or r.endpoint == endpoint)
            ]
        records.sort(key=lambda r: _order_key(r, stat_type, now))
        return [_entry(r, now) for r in records[:MAX_LISTED]]


def _order_key(record: ConnectionRecord, stat_type: str, now: float) -> float:
    uptime = max(record.uptime(now), 1e-9)
    msgs = (record.read_msg + record.write_msg) / uptime
    kbytes = (record.read_bytes + record.write_bytes) / 1024 / uptime
    return {
        "NewestConnection": -(record.connected_at or 0.0),
        "OldestConnection": record.connected_at or 0.0,
        "HighestThroughputMsgs": -msgs,
        "LowestThroughputMsgs": msgs,
        "HighestThroughputKB": -kbytes,
        "LowestThroughputKB": kbytes,
    }[stat_type]


def _entry(record: ConnectionRecord, now: float) -> dict[str, Any]:
    """The JSON object Amlen's monitor shows for a connection (the certificate's CN is not part of it)."""
    return {
        "Name": record.client_id,
        "Protocol": "mqtt",
        "ClientAddr": record.client_addr,
        "UserId": record.user_id,
        "Endpoint": record.endpoint,
        "Port": record.port,
        # ism_time_t values: nanoseconds since the epoch, and nanoseconds connected.
        "ConnectTime": int(record.connected_wall * 1e9),
        "Duration": int(record.uptime(now) * 1e9),
        "ReadBytes": record.read_bytes,
        "ReadMsg": record.read_msg,
        "WriteBytes": record.write_bytes,
        "WriteMsg": record.write_msg,
    }
