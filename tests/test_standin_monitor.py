"""Who is connected, and what the monitors answer (reference appendix, "Who is connected" and "Monitor of an
endpoint that does not exist").

``GET /ima/v1/monitor/Connection`` lists the MQTT client IDs with their endpoint and message counts, a moment
after they connected (a call right after the CONNACK listed nothing on the real server); there is no REST call
to disconnect a client; the endpoint monitor of an endpoint that does not exist is HTTP 500 CWLNA0100.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.standin_helpers import (
    AdminApi,
    MqttClient,
    Pki,
    RunningStandin,
    assert_answer,
    assert_success,
    client_context,
    endpoint,
    make_pki,
    poll,
    secure_profile,
    standin_with_api,
)

pytestmark = pytest.mark.docker

TLS_PORT, OTHER_PORT = 8889, 8892
LAG = 3.0  # STANDIN_MONITOR_LAG for this module: long enough to see the lag, short enough to poll past it
ENTRY_KEYS = {
    "Name",
    "Protocol",
    "ClientAddr",
    "UserId",
    "Endpoint",
    "Port",
    "ConnectTime",
    "Duration",
    "ReadBytes",
    "ReadMsg",
    "WriteBytes",
    "WriteMsg",
}


@dataclass
class Monitored:
    standin: RunningStandin
    api: AdminApi
    pki: Pki

    def connections(self, **query: str) -> list[dict[str, Any]]:
        response = self.api.session.get(self.api.url("monitor/Connection"), params=query, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"Version", "Connection"} and body["Version"] == "v1"
        return list(body["Connection"])

    def by_name(self, **query: str) -> dict[str, dict[str, Any]]:
        return {entry["Name"]: entry for entry in self.connections(**query)}

    def client(self, client_id: str, *, version: int = 5) -> MqttClient:
        client = MqttClient(self.standin.host_port(TLS_PORT), client_context(self.pki), client_id, version=version)
        assert client.connect() == 0
        return client


@pytest.fixture(scope="module")
def monitored(standin_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    pki = make_pki(tmp_path_factory.mktemp("standin-monitor-pki"))
    ports, environment = (9089, TLS_PORT, OTHER_PORT), {"STANDIN_MONITOR_LAG": str(LAG)}
    with standin_with_api(standin_image, ports=ports, environment=environment) as (standin, api):
        secure_profile(api, pki, "MonitorTls", client_certificates=False)
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


def test_connection_monitor_lists_mqtt_clients_after_a_lag_with_their_counts(monitored: Monitored) -> None:
    api = monitored.api
    assert_success(api.post({"Endpoint": {"TLSTestPort": endpoint(TLS_PORT, "MonitorTls")}}))
    assert_success(api.post({"Endpoint": {"OtherPort": endpoint(OTHER_PORT, "MonitorTls")}}))
    began = time.monotonic()
    subscriber = monitored.client("mon-sub")
    publisher = monitored.client("mon-pub", version=4)
    try:
        early = monitored.by_name()
        if time.monotonic() - began < LAG:  # only meaningful if this machine was not paused meanwhile
            assert not {"mon-sub", "mon-pub"} & set(early), f"listed before the monitor lag: {early}"
        assert subscriber.subscribe("monitor/topic") == [1]
        for index in range(3):
            assert publisher.publish("monitor/topic", f"count {index}".encode()).acked
        assert subscriber.wait_message(b"count 2")

        def counted() -> dict[str, dict[str, Any]] | None:
            listed = monitored.by_name()
            ok = listed.get("mon-pub", {}).get("ReadMsg") == 3 and listed.get("mon-sub", {}).get("WriteMsg") == 3
            return listed if ok else None

        listed = poll(counted, timeout=60)
        assert listed, monitored.connections()
        for name in ("mon-sub", "mon-pub"):
            entry = listed[name]
            assert set(entry) == ENTRY_KEYS, "no certificate CN or other fields"
            assert (entry["Protocol"], entry["UserId"], entry["Endpoint"], entry["Port"]) == (
                "mqtt",
                "",
                "TLSTestPort",
                TLS_PORT,
            )
            assert entry["ClientAddr"] and entry["ReadBytes"] > 0 and entry["WriteBytes"] > 0
            assert isinstance(entry["ConnectTime"], int) and isinstance(entry["Duration"], int)
        assert (listed["mon-pub"]["WriteMsg"], listed["mon-sub"]["ReadMsg"]) == (0, 0)

        # Endpoint filters; ClientID is not a parameter of this monitor, so it is ignored like any unknown one.
        assert set(monitored.by_name(Endpoint="TLSTestPort")) >= {"mon-sub", "mon-pub"}
        assert monitored.connections(Endpoint="OtherPort") == []
        assert set(monitored.by_name(ClientID="mon-sub")) >= {"mon-sub", "mon-pub"}
        newest = [entry["Name"] for entry in monitored.connections(StatType="NewestConnection")]
        assert newest.index("mon-pub") < newest.index("mon-sub")
        oldest = [entry["Name"] for entry in monitored.connections(StatType="OldestConnection")]
        assert oldest.index("mon-sub") < oldest.index("mon-pub")

        (endpoint_entry,) = api.monitor("TLSTestPort").json()["Endpoint"]
        assert endpoint_entry["Messages"] >= 6, "published messages read and written"
    finally:
        subscriber.close()
        publisher.close()
    assert poll(lambda: not {"mon-sub", "mon-pub"} & set(monitored.by_name()), timeout=60)


def test_connection_monitor_query_errors(monitored: Monitored) -> None:
    url = monitored.api.url("monitor/Connection")
    assert_answer(
        requests.get(url, params={"StatType": "Loudest"}, timeout=30),
        400,
        "CWLNA0112",
        'The property value is not valid: Property: StatType Value: "Loudest".',
    )
    assert_answer(requests.get(url, params={"Endpoint": "NoSuchEndpoint"}, timeout=30), 500, "CWLNA0100")
