"""The engine's subscriptions, for ``GET /ima/v1/monitor/Subscription`` (live, unlike the connection monitor).

A real server listed a seat's subscription 1.5 s after its SUBACK, with the fields of :func:`entry` (reference,
"Observed later (2026-12-02)"). The stand-in records a subscription when mosquitto grants it (before the SUBACK
reaches the client), so a caller that got its SUBACK finds it at once. What the engine keeps, as Amlen's MQTT
protocol layer makes it (``server_protocol/src/mqtt.c``):

- a clean session's subscriptions end with its connection; a persistent session's (MQTT 3.1.1 clean session 0,
  MQTT 5 session expiry > 0) stay, durable, with ``Consumers`` 0 until the client ID connects again; a clean
  (re)connect of that client ID discards them;
- an UNSUBSCRIBE removes one; subscribing to the same filter again replaces it (counters kept);
- ``MessagingPolicy`` is the topic policy that granted the subscription (the first of the endpoint's list);
  ``MaxMessages`` is that policy's;
- ``PublishedMsgs`` counts the messages delivered on it.

Queries follow ``server_main/config/monitoringSchema.json`` (see ``monitor.py``).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from policies import wildcard_match

_ORDER = itertools.count(1)


@dataclass
class Subscription:
    client_id: str
    topic_filter: str
    policy: str
    max_messages: int
    durable: bool
    owner: int | None  # the connection that consumes it; None while a durable one's client is away
    share: str | None = None
    published: int = 0
    order: int = field(default_factory=lambda: next(_ORDER))


@dataclass(frozen=True)
class Query:
    """The Subscription monitor's filters (wildcards: ``*`` matches any characters) and result shape."""

    sub_name: str = "*"
    topic: str = "*"
    client_id: str = "*"
    policy: str = "*"
    sub_type: str = "All"
    stat_type: str = "PublishedMsgsHighest"
    count: int = 25


class SubscriptionRegistry:
    """Every subscription, keyed by (client ID, filter), as Amlen's engine holds them."""

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str], Subscription] = {}
        self._lock = threading.Lock()

    def connected(self, ident: int, client_id: str, *, clean: bool, durable: bool) -> None:
        """A client ID's session starts on connection ``ident``: take over its durable subscriptions, or drop them."""
        with self._lock:
            for key, sub in list(self._subs.items()):
                if sub.client_id != client_id:
                    continue
                if clean or not sub.durable:
                    del self._subs[key]
                else:
                    sub.owner, sub.durable = ident, durable

    def subscribed(self, ident: int, client_id: str, topic_filter: str, *, policy: str, max_messages: int,
                   durable: bool, share: str | None = None) -> None:
        with self._lock:
            old = self._subs.get((client_id, topic_filter))
            new = Subscription(client_id, topic_filter, policy, max_messages, durable, ident, share)
            if old is not None:
                new.published, new.order = old.published, old.order
            self._subs[(client_id, topic_filter)] = new

    def unsubscribed(self, client_id: str, topic_filter: str) -> None:
        with self._lock:
            self._subs.pop((client_id, topic_filter), None)

    def delivered(self, ident: int, topic: str) -> None:
        """A message on ``topic`` went to connection ``ident``: count it on its subscriptions that match."""
        with self._lock:
            for sub in self._subs.values():
                if sub.owner == ident and topic_matches(sub.topic_filter, topic):
                    sub.published += 1

    def closed(self, ident: int) -> None:
        """Connection ``ident`` ended: its non-durable subscriptions go, the durable ones wait for their client."""
        with self._lock:
            for key, sub in list(self._subs.items()):
                if sub.owner != ident:
                    continue
                if sub.durable:
                    sub.owner = None
                else:
                    del self._subs[key]

    def listed(self, query: Query) -> list[dict[str, Any]]:
        """The matching subscriptions, ordered by ``query.stat_type``, at most ``query.count``."""
        with self._lock:
            subs = [s for s in self._subs.values() if _matches(s, query)]
            rows = [(s.order, entry(s)) for s in subs]
        rows.sort(key=lambda row: row[0])
        field_name, highest = _ordering(query.stat_type)
        entries = [row[1] for row in rows]
        if field_name is not None:
            entries.sort(key=lambda e: e[field_name], reverse=highest)  # stable: ties in subscription order
        return entries[: query.count]


def _matches(sub: Subscription, query: Query) -> bool:
    if query.sub_type == "Durable" and not sub.durable:
        return False
    if query.sub_type == "Nondurable" and sub.durable:
        return False
    if query.sub_type == "Admin":
        return False  # no administratively made subscriptions in the stand-in
    return (wildcard_match(sub.share or "", query.sub_name) and wildcard_match(sub.topic_filter, query.topic)
            and wildcard_match(sub.client_id, query.client_id) and wildcard_match(sub.policy, query.policy))


# The counters a StatType can order by (each also a field of the entry).
_FIELDS = ("PublishedMsgs", "BufferedMsgs", "BufferedPercent", "RejectedMsgs", "BufferedHWMPercent",
           "DiscardedMsgs", "ExpiredMsgs")


def stat_types() -> tuple[str, ...]:
    """The StatType options of the schema: each field as `X`, `XHighest`, `XLowest`, `-X`, and AllUnsorted."""
    return ("AllUnsorted", *(f"{prefix}{name}{suffix}" for name in _FIELDS
                             for prefix, suffix in (("", "Highest"), ("", ""), ("", "Lowest"), ("-", ""))))


def _ordering(stat_type: str) -> tuple[str | None, bool]:
    """(entry field to sort by, highest first) for a StatType (``engineMonData.c`` ``STAT_TYPE``)."""
    if stat_type == "AllUnsorted":
        return None, False
    lowest = stat_type.startswith("-") or stat_type.endswith("Lowest")
    return stat_type.lstrip("-").removesuffix("Highest").removesuffix("Lowest"), not lowest


def entry(sub: Subscription) -> dict[str, Any]:
    """The monitor's object for one subscription, in the recorded field order."""
    return {
        "SubName": sub.share or "",
        "TopicString": sub.topic_filter,
        "ClientID": sub.client_id,
        "IsDurable": sub.durable,
        "BufferedMsgs": 0,
        "BufferedMsgsHWM": 0,
        "BufferedPercent": 0.0,
        "MaxMessages": sub.max_messages,
        "PublishedMsgs": sub.published,
        "RejectedMsgs": 0,
        "BufferedHWMPercent": 0.0,
        "IsShared": sub.share is not None,
        "Consumers": 0 if sub.owner is None else 1,
        "DiscardedMsgs": 0,
        "ExpiredMsgs": 0,
        "MessagingPolicy": sub.policy,
    }


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching: ``+`` one level, ``#`` the rest; wildcards never match a leading ``$`` level."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels, wanted = topic.split("/"), topic_filter.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(levels) == len(wanted)
