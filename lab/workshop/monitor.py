"""Amlen's three monitors, read for the room: who is here now (live) and the details only the slow one has.

What a real server does (reference, "Observed later (2026-12-02)"; Amlen's server_monitoring/src):

- `monitor/Subscription` is live. Every seat's client subscribes under `workshop/<cn>/` or `workshop/all/`, and
  the workshop's topic policies name the subscription (`MessagingPolicy`), so a seat that subscribed is here.
  It answers at most 100 per call (`ResultCount`, default 25; monitoringSchema.json), so the room is read by
  client ID prefix (`ClientID=seat.*`, Amlen's `*` wildcard), and a full page is split by the next character of
  the seat names under it until every page has room to spare.
- `monitor/Endpoint` is live: `Active` connections, `BadConnections` (failed handshakes, refused CONNECTs),
  `Messages` (read and written).
- `monitor/Connection` is a cache Amlen rebuilds every 60 s: since when, from where, bytes and messages. Each
  call lists at most 50, in one of six orders (`StatType`); a full list is completed with the other orders.
  All entries are as of the rebuild (`ConnectTime` + `Duration`), which says how old they are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lab.amlen.admin import AmlenClient
from lab.workshop.objects import ENDPOINT
from lab.workshop.roster import CN_PREFIX

__all__ = ["CONNECTION_REFRESH", "POLICIES", "RoomReading", "connection_key", "read_room", "rebuilt_at"]

CONNECTION_REFRESH = 60  # seconds: DEFAULT_CONN_DATA_UPDATE_INTERVAL (server_monitoring/src/connectionMonData.h)
SUBSCRIPTION_PAGE = 100  # the Subscription monitor's largest ResultCount
CONNECTION_PAGE = 50  # what the connection monitor keeps per ordering
STAT_TYPES = ("OldestConnection", "NewestConnection", "HighestThroughputMsgs", "LowestThroughputMsgs",
              "HighestThroughputKB", "LowestThroughputKB")
# The workshop's topic policies are named after its endpoint (lab.workshop.objects); subscriptions made through
# other endpoints' policies (the guide's DemoTopicPolicy) do not match.
POLICIES = ENDPOINT + "*"


@dataclass(frozen=True)
class RoomReading:
    """One look at the room through Amlen's monitors."""

    endpoint: dict[str, Any] | None  # the live endpoint entry; None when the endpoint is not listening
    subscriptions: list[dict[str, Any]]  # the seats' subscriptions, live
    subscriptions_complete: bool  # False when a single seat filled a whole page
    connections: list[dict[str, Any]]  # the connection cache's entries for the endpoint
    connections_complete: bool  # False when every ordering was full and fewer than Active were seen
    details_as_of: dt.datetime | None  # when Amlen rebuilt the connection cache (None: it lists nothing)
    requests: int


def read_room(amlen: AmlenClient, cns: Sequence[str]) -> RoomReading:
    """The endpoint, every seat's subscriptions and the connection cache; AmlenError when Amlen cannot answer."""
    entry = amlen.endpoint_monitor(ENDPOINT)
    if entry is None or not entry.get("Enabled") or entry.get("LastErrorCode"):
        return RoomReading(entry, [], True, [], True, None, 1)
    pager = _SubscriptionPager(amlen, cns)
    subscriptions = pager.read(CN_PREFIX)
    connections, complete, asked = _connections(amlen, active=int(entry.get("Active") or 0))
    instants = [t for t in (rebuilt_at(c) for c in connections) if t is not None]
    return RoomReading(entry, subscriptions, pager.complete, connections, complete,
                       max(instants) if instants else None, 1 + pager.requests + asked)


class _SubscriptionPager:
    """Reads `ClientID=<prefix>*` pages, splitting each full page by the seat names under its prefix."""

    def __init__(self, amlen: AmlenClient, cns: Iterable[str]) -> None:
        self.amlen, self.cns = amlen, sorted(set(cns))
        self.requests, self.complete = 0, True

    def read(self, prefix: str) -> list[dict[str, Any]]:
        self.requests += 1
        page = self.amlen.subscriptions(ClientID=prefix + "*", MessagingPolicy=POLICIES, StatType="AllUnsorted",
                                        ResultCount=str(SUBSCRIPTION_PAGE))
        if len(page) < SUBSCRIPTION_PAGE:
            return page
        longer = sorted({cn[: len(prefix) + 1] for cn in self.cns if cn.startswith(prefix) and len(cn) > len(prefix)})
        if not longer:  # one seat holds 100 subscriptions or more: it is here, whatever the rest says
            self.complete = False
            return page
        return [sub for child in longer for sub in self.read(child)]


def _connections(amlen: AmlenClient, *, active: int) -> tuple[list[dict[str, Any]], bool, int]:
    """The cache's entries for the endpoint: the first ordering, and the others while each comes back full."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for asked, stat_type in enumerate(STAT_TYPES, 1):
        page = amlen.connections(ENDPOINT, stat_type=stat_type)
        for entry in page:
            seen.setdefault(connection_key(entry), entry)
        if len(page) < CONNECTION_PAGE:
            return list(seen.values()), True, asked
    return list(seen.values()), len(seen) >= active, len(STAT_TYPES)


def connection_key(entry: dict[str, Any]) -> tuple[str, str, str]:
    """What tells two entries apart (the monitor has no connection id): client ID, address, connect time."""
    return str(entry.get("Name", "")), str(entry.get("ClientAddr", "")), str(entry.get("ConnectTime", ""))


def rebuilt_at(entry: dict[str, Any]) -> dt.datetime | None:
    """When the cache holding `entry` was built: its ConnectTime plus its Duration (nanoseconds)."""
    connected = instant(entry.get("ConnectTime"))
    duration = entry.get("Duration")
    if connected is None or not isinstance(duration, int | float) or isinstance(duration, bool):
        return None
    return connected + dt.timedelta(microseconds=duration / 1000)


def instant(value: Any) -> dt.datetime | None:
    """A monitor timestamp as an aware UTC datetime: Amlen's ISO text (`2026-12-02T08:47:41.941Z`), or a number
    of seconds, milliseconds or nanoseconds since the epoch; None when absent or unreadable."""
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        seconds = value / 1e9 if value > 1e14 else value / 1e3 if value > 1e11 else value
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    return None
