"""The stand-in's monitor state machines in-process, on a clock the test moves (no Docker, no waiting).

`tests/test_standin_monitor.py` checks the same behaviour through a container's REST API with a shortened
rebuild interval; here the default (60 s) and the rebuild phase are checked exactly, which a container could
only show by waiting a minute (reference, "Observed later (2026-12-02)"; `connections.py` cites Amlen's source).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

STANDIN = Path(__file__).resolve().parent / "standin"


@pytest.fixture(scope="module")
def standin() -> Iterator[dict[str, ModuleType]]:
    """The stand-in's modules (flat imports, as in its image: its directory goes first on sys.path)."""
    sys.path.insert(0, str(STANDIN))
    try:
        import connections  # type: ignore[import-not-found]
        import monitor  # type: ignore[import-not-found]
        import server  # type: ignore[import-not-found]
        import subscriptions  # type: ignore[import-not-found]

        yield {"connections": connections, "monitor": monitor, "server": server, "subscriptions": subscriptions}
    finally:
        sys.path.remove(str(STANDIN))


def connected(mods: dict[str, ModuleType], registry: Any, client_id: str, *, endpoint: str = "Seats") -> Any:
    record = mods["connections"].ConnectionRecord(endpoint=endpoint, port=8891, client_addr="172.17.0.1",
                                                  client_port=40000)
    registry.add(record)
    registry.mqtt_connected(record, client_id, None)
    return record


def names(registry: Any, stat_type: str = "OldestConnection", endpoint: str | None = None) -> list[str]:
    return [entry["Name"] for entry in registry.listed(endpoint, stat_type)]


def test_the_default_rebuild_interval_is_amlens_60_seconds(standin: dict[str, ModuleType]) -> None:
    assert standin["server"].Settings.from_env({}).conn_monitor_interval == 60.0
    assert standin["server"].Settings.from_env({"STANDIN_CONN_MONITOR_INTERVAL": "3"}).conn_monitor_interval == 3.0


def test_cache_is_rebuilt_at_the_first_tick_then_once_per_interval(standin: dict[str, ModuleType]) -> None:
    registry = standin["connections"].ConnectionRegistry(60.0)
    early = connected(standin, registry, "seat.01-sub")
    assert names(registry) == [], "nothing is listed before the first rebuild"
    assert registry.tick(lambda: ["Seats"], now=1000.0) is True
    assert names(registry) == ["seat.01-sub"]
    connected(standin, registry, "seat.02-sub")
    registry.closed(early)
    for now in (1002.0, 1030.0, 1059.9):  # 2 s ticks: nothing changes inside the interval
        assert registry.tick(lambda: ["Seats"], now=now) is False
        assert names(registry) == ["seat.01-sub"], "new connections wait, closed ones stay listed"
    assert registry.tick(lambda: ["Seats"], now=1060.0) is True
    assert names(registry) == ["seat.02-sub"]


def test_entries_are_frozen_at_the_rebuild_with_duration_in_nanoseconds(standin: dict[str, ModuleType]) -> None:
    registry = standin["connections"].ConnectionRegistry(60.0)
    record = connected(standin, registry, "seat.03-sub")
    record.connected_at -= 8.9  # connected 8.9 s before the rebuild
    registry.tick(lambda: ["Seats"])
    (entry,) = registry.listed("Seats", "OldestConnection")
    assert 8.8e9 < entry["Duration"] < 9.5e9 and isinstance(entry["Duration"], int)
    assert entry["ConnectTime"].endswith("Z") and len(entry["ConnectTime"]) == len("2026-12-02T08:47:41.941Z")
    record.read_msg = 5
    assert registry.listed("Seats", "OldestConnection") == [entry], "counters are those of the rebuild"


def test_each_ordering_holds_at_most_50_and_endpoints_are_separate(standin: dict[str, ModuleType]) -> None:
    registry = standin["connections"].ConnectionRegistry(60.0)
    records = [connected(standin, registry, f"seat.{index:02d}") for index in range(60)]
    for age, record in enumerate(records):
        record.connected_at -= 100 - age  # seat.00 is the oldest
    connected(standin, registry, "guide-client", endpoint="TLSTestPort")
    registry.tick(lambda: ["Seats", "TLSTestPort"])
    oldest, newest = names(registry, endpoint="Seats"), names(registry, "NewestConnection", "Seats")
    assert len(oldest) == len(newest) == 50
    assert oldest[:2] == ["seat.00", "seat.01"] and newest[0] == "seat.59"
    assert len(set(oldest) | set(newest)) == 60, "the two orderings together name every seat"
    assert names(registry, endpoint="TLSTestPort") == ["guide-client"]
    assert "guide-client" in names(registry, "NewestConnection"), "no endpoint: all of them"
    assert names(registry, endpoint="Created-after-the-rebuild") == []


def test_subscriptions_follow_the_session_rules(standin: dict[str, ModuleType]) -> None:
    subs = standin["subscriptions"]
    registry = subs.SubscriptionRegistry()

    def listed(**query: Any) -> list[tuple[str, str, bool, int]]:
        wanted = subs.Query(**{"stat_type": "AllUnsorted", "count": 100, **query})
        return [(e["ClientID"], e["TopicString"], e["IsDurable"], e["Consumers"]) for e in registry.listed(wanted)]

    registry.connected(1, "seat.01-sub", clean=True, durable=False)
    for topic in ("workshop/seat.01/#", "workshop/all/#"):
        registry.subscribed(1, "seat.01-sub", topic, policy="WorkshopSeatsOwnTopics", max_messages=5000,
                            durable=False)
    registry.connected(2, "seat.02-keep", clean=False, durable=True)
    registry.subscribed(2, "seat.02-keep", "workshop/seat.02/#", policy="WorkshopSeatsOwnTopics",
                        max_messages=5000, durable=True)
    registry.delivered(1, "workshop/all/hello")
    registry.delivered(1, "workshop/seat.01/x/y")
    registry.delivered(1, "elsewhere")
    (top,) = registry.listed(subs.Query(count=1))  # PublishedMsgsHighest by default
    assert (top["ClientID"], top["PublishedMsgs"]) in {("seat.01-sub", 1)}
    assert listed(client_id="seat.0*-sub") == [("seat.01-sub", "workshop/seat.01/#", False, 1),
                                                ("seat.01-sub", "workshop/all/#", False, 1)]
    assert listed(topic="*/all/*") == [("seat.01-sub", "workshop/all/#", False, 1)]
    assert listed(sub_type="Durable") == [("seat.02-keep", "workshop/seat.02/#", True, 1)]
    registry.unsubscribed("seat.01-sub", "workshop/all/#")
    registry.closed(1)
    registry.closed(2)
    assert listed() == [("seat.02-keep", "workshop/seat.02/#", True, 0)], "a durable one waits, Consumers 0"
    registry.connected(3, "seat.02-keep", clean=False, durable=True)
    assert listed() == [("seat.02-keep", "workshop/seat.02/#", True, 1)]
    registry.closed(3)
    registry.connected(4, "seat.02-keep", clean=True, durable=False)
    assert listed() == [], "a clean connect of the client ID discards them"


def test_subscription_query_values_outside_the_schema_are_refused(standin: dict[str, ModuleType]) -> None:
    monitor, registry = standin["monitor"], standin["subscriptions"].SubscriptionRegistry()
    assert monitor.subscription_monitor(registry, {}) == {"Version": "v1", "Subscription": []}
    assert monitor.subscription_monitor(registry, {"Bogus": ["1"], "StatType": ["-BufferedMsgs"]})["Subscription"] == []
    for name, value in (("ResultCount", "0"), ("ResultCount", "101"), ("ResultCount", "x"), ("StatType", "Loudest"),
                        ("SubType", "Shared")):
        with pytest.raises(standin["server"].AmlenError) as refused:
            monitor.subscription_monitor(registry, {name: [value]})
        assert (refused.value.status, refused.value.body()["Code"]) == (400, "CWLNA0112")
