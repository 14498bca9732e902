"""The stand-in's monitors through its REST API, as a real server answered them (reference appendix, "Who is
connected", "Monitor of an endpoint that does not exist" and "Observed later (2026-12-02): the monitors").

- ``GET /ima/v1/monitor/Connection`` is a cache rebuilt every 60 s (here shortened to ``INTERVAL`` with
  ``STANDIN_CONN_MONITOR_INTERVAL``; the default and the phase are checked in-process, in
  ``test_standin_monitor_units.py``, so no test waits a minute). Every entry of an answer is as of one rebuild:
  its ``ConnectTime + Duration``. The assertions compare that instant with the client's own clock, so they hold
  however the machine is scheduled (or paused).
- ``GET /ima/v1/monitor/Subscription`` and ``/Endpoint`` are live: asked right after a SUBACK or a CONNACK,
  they already show it.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.standin_helpers import (
    SERVER_NAME,
    AdminApi,
    MqttClient,
    Pki,
    RunningStandin,
    assert_answer,
    assert_success,
    client_context,
    endpoint,
    make_pki,
    mqtt_connect_packet,
    poll,
    secure_profile,
    standin_with_api,
)

pytestmark = pytest.mark.docker

TLS_PORT, OTHER_PORT = 8889, 8892
INTERVAL = 4.0  # STANDIN_CONN_MONITOR_INTERVAL for this module (Amlen: 60)
ENTRY_KEYS = ["Name", "Protocol", "ClientAddr", "UserId", "Endpoint", "Port", "ConnectTime", "Duration", "ReadBytes",
              "ReadMsg", "WriteBytes", "WriteMsg"]
SUBSCRIPTION_KEYS = ["SubName", "TopicString", "ClientID", "IsDurable", "BufferedMsgs", "BufferedMsgsHWM",
                     "BufferedPercent", "MaxMessages", "PublishedMsgs", "RejectedMsgs", "BufferedHWMPercent",
                     "IsShared", "Consumers", "DiscardedMsgs", "ExpiredMsgs", "MessagingPolicy"]


def as_of(entry: dict[str, Any]) -> float:
    """The rebuild an entry was made at: ConnectTime (ISO, UTC, ms) + Duration (ns), in epoch seconds."""
    connected = dt.datetime.strptime(entry["ConnectTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return connected.timestamp() + entry["Duration"] / 1e9


@dataclass
class Monitored:
    standin: RunningStandin
    api: AdminApi
    pki: Pki

    def get(self, monitor: str, **query: str) -> list[dict[str, Any]]:
        response = self.api.session.get(self.api.url(f"monitor/{monitor}"), params=query, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert list(body) == ["Version", monitor] and body["Version"] == "v1"
        return list(body[monitor])

    def connections(self, **query: str) -> list[dict[str, Any]]:
        entries = self.get("Connection", **query)
        instants = [as_of(entry) for entry in entries]
        # One rebuild: the same instant, give or take ConnectTime's millisecond rounding.
        assert not instants or max(instants) - min(instants) < 0.002, f"two rebuilds in one answer: {entries}"
        return entries

    def by_name(self, **query: str) -> dict[str, dict[str, Any]]:
        return {entry["Name"]: entry for entry in self.connections(**query)}

    def client(self, client_id: str, *, version: int = 5, clean_session: bool = True) -> MqttClient:
        client = MqttClient(self.standin.host_port(TLS_PORT), client_context(self.pki), client_id, version=version,
                            clean_session=clean_session)
        assert client.connect() == 0
        return client


def rebuilt_since(monitored: Monitored, moment: float) -> bool:
    """Whether the cache's last rebuild came after ``moment`` (read from any entry; the marker keeps one)."""
    entries = monitored.connections()
    return bool(entries) and as_of(entries[0]) > moment


@pytest.fixture(scope="module")
def monitored(standin_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    pki = make_pki(tmp_path_factory.mktemp("standin-monitor-pki"))
    ports, environment = (9089, TLS_PORT, OTHER_PORT), {"STANDIN_CONN_MONITOR_INTERVAL": str(INTERVAL)}
    with standin_with_api(standin_image, ports=ports, environment=environment) as (standin, api):
        secure_profile(api, pki, "MonitorTls", client_certificates=False)
        assert_success(api.post({"Endpoint": {"TLSTestPort": endpoint(TLS_PORT, "MonitorTls")}}))
        assert_success(api.post({"Endpoint": {"OtherPort": endpoint(OTHER_PORT, "MonitorTls")}}))
        yield Monitored(standin, api, pki)


def test_monitor_of_an_endpoint_that_does_not_exist_is_500_0100(monitored: Monitored) -> None:
    response = monitored.api.monitor("Seats")
    assert (response.status_code, response.json()) == (
        500,
        {"Version": "v1", "Code": "CWLNA0100", "Message": "System error"},
    )


def test_there_is_no_rest_call_to_disconnect_a_client(monitored: Monitored) -> None:
    response = monitored.api.session.post(
        monitored.api.url("service/disconnect"), json={"ClientID": "seat.alice-sub"}, timeout=30
    )
    assert_answer(response, 400, "CWLNA0137", "The REST API call: /ima/v1/service/disconnect is not valid.")


def test_connection_monitor_answers_from_a_cache_rebuilt_on_its_interval(monitored: Monitored) -> None:
    marker = monitored.client("mon-marker")
    late: MqttClient | None = None
    try:
        assert poll(lambda: "mon-marker" in monitored.by_name(), timeout=60)
        before = time.time()
        late = monitored.client("mon-late", version=4)
        after = time.time()
        listed = monitored.connections()
        instant = as_of(listed[0])
        if instant < before:
            assert "mon-late" not in {e["Name"] for e in listed}, "listed before the rebuild that could see it"
        # ...and once a rebuild after its CONNACK happened, it is there.
        assert poll(lambda: rebuilt_since(monitored, after), timeout=60)
        entries = monitored.by_name()
        assert "mon-late" in entries
        entry = entries["mon-late"]
        assert list(entry) == ENTRY_KEYS, "the recorded fields, in order, no certificate CN"
        assert (entry["Protocol"], entry["UserId"], entry["Endpoint"], entry["Port"]) == ("mqtt", "", "TLSTestPort",
                                                                                          TLS_PORT)
        assert isinstance(entry["ConnectTime"], str) and isinstance(entry["Duration"], int)
        assert before - 1 <= as_of(entry) - entry["Duration"] / 1e9 <= after + 1, "ConnectTime is the CONNACK's"
        assert entry["ClientAddr"] and entry["ReadBytes"] > 0 and entry["WriteBytes"] > 0

        # Query forms (recorded): no StatType is OldestConnection, no Endpoint (or `all`) is every endpoint,
        # ClientID is not one of this monitor's parameters, so it changes nothing.
        oldest = [e["Name"] for e in monitored.connections(StatType="OldestConnection")]
        assert [e["Name"] for e in monitored.connections()] == oldest
        assert oldest.index("mon-marker") < oldest.index("mon-late")
        newest = [e["Name"] for e in monitored.connections(StatType="NewestConnection")]
        assert newest.index("mon-late") < newest.index("mon-marker")
        assert set(monitored.by_name(Endpoint="TLSTestPort")) == set(monitored.by_name(Endpoint="all")) >= {
            "mon-marker", "mon-late"}
        assert set(monitored.by_name(ClientID="nobody*")) >= {"mon-marker", "mon-late"}
        assert monitored.connections(Endpoint="OtherPort") == []

        # A closed connection stays listed until the next rebuild.
        late.close()
        closed = time.time()
        listed = monitored.connections()
        if as_of(listed[0]) < closed - 1:
            assert "mon-late" in {e["Name"] for e in listed}, "gone before a rebuild"
        assert poll(lambda: rebuilt_since(monitored, closed), timeout=60)
        assert "mon-late" not in monitored.by_name()
    finally:
        marker.close()
        if late is not None:
            late.close()


def test_connection_monitor_lists_at_most_50_per_call(monitored: Monitored) -> None:
    context = client_context(monitored.pki)
    sockets: list[ssl.SSLSocket] = []
    try:
        for index in range(55):
            raw = socket.create_connection(("127.0.0.1", monitored.standin.host_port(TLS_PORT)), timeout=30)
            tls = context.wrap_socket(raw, server_hostname=SERVER_NAME)
            tls.sendall(mqtt_connect_packet(f"mon-many-{index:02d}"))
            assert tls.recv(4) == b"\x20\x02\x00\x00"
            sockets.append(tls)

        def all_listed() -> tuple[list[str], list[str]] | None:
            oldest = [e["Name"] for e in monitored.connections(StatType="OldestConnection")]
            newest = [e["Name"] for e in monitored.connections(StatType="NewestConnection")]
            mine = {name for name in oldest + newest if name.startswith("mon-many-")}
            return (oldest, newest) if len(mine) == 55 else None

        listed = poll(all_listed, timeout=60)
        assert listed, "every connection is in one of the two orderings"
        oldest, newest = listed
        assert len(oldest) == len(newest) == 50
        assert "mon-many-54" not in oldest and "mon-many-00" not in newest
    finally:
        for tls in sockets:
            tls.close()


def test_subscription_monitor_is_live_with_the_recorded_fields_and_filters(monitored: Monitored) -> None:
    subscriber = monitored.client("mon-sub-1", version=4)
    publisher = monitored.client("mon-pub-1")
    try:
        assert subscriber.subscribe("monitor/live/#", "monitor/room/#") == [1, 1]
        # Asked right after the SUBACK, no polling: the engine's subscriptions are read when asked.
        (entry,) = monitored.get("Subscription", ClientID="mon-sub-1", TopicString="monitor/live/*")
        assert list(entry) == SUBSCRIPTION_KEYS
        assert entry == {
            "SubName": "", "TopicString": "monitor/live/#", "ClientID": "mon-sub-1", "IsDurable": False,
            "BufferedMsgs": 0, "BufferedMsgsHWM": 0, "BufferedPercent": 0.0, "MaxMessages": 5000,
            "PublishedMsgs": 0, "RejectedMsgs": 0, "BufferedHWMPercent": 0.0, "IsShared": False, "Consumers": 1,
            "DiscardedMsgs": 0, "ExpiredMsgs": 0, "MessagingPolicy": "DemoTopicPolicy",
        }
        for index in range(3):
            assert publisher.publish("monitor/live/tick", f"tick {index}".encode()).acked
        assert subscriber.wait_message(b"tick 2")
        counted = {e["TopicString"]: e["PublishedMsgs"] for e in monitored.get("Subscription", ClientID="mon-sub-*")}
        assert counted == {"monitor/live/#": 3, "monitor/room/#": 0}
        assert [e["ClientID"] for e in monitored.get("Subscription", MessagingPolicy="Demo*", ClientID="mon-*")] == [
            "mon-sub-1", "mon-sub-1"]
        assert monitored.get("Subscription", MessagingPolicy="Workshop*") == []
        assert monitored.get("Subscription", ClientID="nobody") == [], "no match: an empty list"

        subscriber.client.unsubscribe("monitor/room/#")
        assert poll(lambda: len(monitored.get("Subscription", ClientID="mon-sub-1")) == 1, timeout=30)
    finally:
        subscriber.close()
        publisher.close()
    assert poll(lambda: monitored.get("Subscription", ClientID="mon-sub-1") == [], timeout=30), \
        "a clean session's subscriptions end with it"


def test_subscription_monitor_result_count_and_durable_subscriptions(monitored: Monitored) -> None:
    many = monitored.client("mon-many-subs")
    try:
        filters = [f"monitor/many/{index}" for index in range(30)]
        assert many.subscribe(*filters) == [1] * 30
        assert len(monitored.get("Subscription", ClientID="mon-many-subs")) == 25, "ResultCount defaults to 25"
        assert len(monitored.get("Subscription", ClientID="mon-many-subs", ResultCount="100")) == 30
    finally:
        many.close()
    keeper = monitored.client("mon-durable", version=4, clean_session=False)
    try:
        assert keeper.subscribe("monitor/durable/#") == [1]
    finally:
        keeper.close()

    def away() -> list[dict[str, Any]] | None:
        entries = monitored.get("Subscription", ClientID="mon-durable", SubType="Durable")
        return entries if entries and entries[0]["Consumers"] == 0 else None

    (entry,) = poll(away, timeout=30)
    assert entry["IsDurable"] is True and entry["TopicString"] == "monitor/durable/#"
    assert monitored.get("Subscription", ClientID="mon-durable", SubType="Nondurable") == []
    again = monitored.client("mon-durable", version=4)  # a clean session for the same client ID drops it
    try:
        assert monitored.get("Subscription", ClientID="mon-durable") == []
    finally:
        again.close()


def test_endpoint_monitor_is_live(monitored: Monitored) -> None:
    def active() -> int:
        (entry,) = monitored.api.monitor("OtherPort").json()["Endpoint"]
        return int(entry["Active"])

    before = active()
    client = MqttClient(monitored.standin.host_port(OTHER_PORT), client_context(monitored.pki), "mon-ep")
    try:
        assert client.connect() == 0
        assert active() == before + 1, "counted at once, while the connection monitor waits for its rebuild"
    finally:
        client.close()
    assert poll(lambda: active() == before, timeout=30)


def test_monitor_query_errors(monitored: Monitored) -> None:
    for monitor, name, value in (("Connection", "StatType", "Loudest"), ("Subscription", "ResultCount", "500")):
        assert_answer(
            requests.get(monitored.api.url(f"monitor/{monitor}"), params={name: value}, timeout=30),
            400,
            "CWLNA0112",
            f'The property value is not valid: Property: {name} Value: "{value}".',
        )
    url = monitored.api.url("monitor/Connection")
    assert_answer(requests.get(url, params={"Endpoint": "NoSuchEndpoint"}, timeout=30), 500, "CWLNA0100")
    assert_answer(requests.get(url, params={"Endpoint": "*"}, timeout=30), 500, "CWLNA0100", "System error")
