"""Connection and topic policies are enforced like on Amlen, with the client certificate's CN as the identity.

Recorded on a real server (reference appendix, "Policies work as the guide hints"): ``CommonNames "seat.*"``
refuses CN ``intruder`` (CONNACK return code 5 / reason 0x87) and admits ``seat.alice``; ``ClientID
"${CommonName}*"`` admits IDs starting with the CN; a topic policy ``workshop/${CommonName}/*`` plus a room
``workshop/all/*`` lets each seat use its own topics and the room; another seat's topic is denied: 3.1.1 SUBACK
0x80, QoS 1 publish closes the connection; MQTT 5 SUBACK and PUBACK 0x87, the connection stays.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.standin_helpers import (
    DATA_PATH,
    SERVER_NAME,
    AdminApi,
    Issued,
    MqttClient,
    Pki,
    RunningStandin,
    assert_answer,
    assert_success,
    client_certificate,
    client_context,
    endpoint,
    make_pki,
    mqtt_connect_packet,
    poll,
    secure_profile,
    standin_with_api,
    tls_mqtt_probe,
)

pytestmark = pytest.mark.docker

SEATS_PORT, IDS_PORT = 8890, 8891
SECURITY_LOG = f"{DATA_PATH}/diag/logs/imaserver-security.log"
CONNECTION_LOG = f"{DATA_PATH}/diag/logs/imaserver-connection.log"
CONNACK_OK_V3, CONNACK_REFUSED_V3 = b"\x20\x02\x00\x00", b"\x20\x02\x00\x05"
CONNACK_REFUSED_V5 = b"\x20\x03\x00\x87\x00"
NOT_AUTHORIZED, SUBACK_FAILURE = 0x87, 0x80
ACTIONS = "Publish,Subscribe"


@dataclass
class Workshop:
    """The running stand-in, configured with the appendix's policies, and the seats' certificates."""

    standin: RunningStandin
    api: AdminApi
    pki: Pki
    alice: Issued
    bob: Issued
    intruder: Issued

    def client(self, seat: Issued, client_id: str | None = None, *, version: int = 5) -> MqttClient:
        """A connected MQTT client on the seats endpoint, using ``seat``'s certificate."""
        cn = seat.cert.subject.rfc4514_string().removeprefix("CN=")
        client = MqttClient(
            self.standin.host_port(SEATS_PORT),
            client_context(self.pki, cert=seat),
            client_id or f"{cn}-{uuid.uuid4().hex[:6]}",
            version=version,
        )
        assert client.connect() == 0, f"{cn} connects"
        return client


@pytest.fixture(scope="module")
def workshop(standin_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workshop]:
    pki = make_pki(tmp_path_factory.mktemp("standin-policies-pki"))
    with standin_with_api(standin_image, ports=(9089, SEATS_PORT, IDS_PORT)) as (standin, api):
        secure_profile(api, pki, "WorkshopMtls", client_certificates=True)
        configure_workshop(api)
        yield Workshop(
            standin,
            api,
            pki,
            alice=client_certificate(pki, "seat.alice"),
            bob=client_certificate(pki, "seat.bob"),
            intruder=client_certificate(pki, "intruder"),
        )


def configure_workshop(api: AdminApi) -> None:
    """The appendix's policies and the two mutual-TLS endpoints that use them."""
    for body in (
        {"ConnectionPolicy": {"SeatsOnly": {"CommonNames": "seat.*", "Protocol": "MQTT"}}},
        {"ConnectionPolicy": {"OwnClientId": {"ClientID": "${CommonName}*"}}},
        {
            "TopicPolicy": {
                "OwnSeat": {"Topic": "workshop/${CommonName}/*", "ActionList": ACTIONS, "CommonNames": "*"},
                "Room": {"Topic": "workshop/all/*", "ActionList": ACTIONS, "CommonNames": "*"},
            }
        },
    ):
        assert_success(api.post(body))
    for name, port, connection_policy in (("Seats", SEATS_PORT, "SeatsOnly"), ("OwnIds", IDS_PORT, "OwnClientId")):
        body = endpoint(
            port,
            "WorkshopMtls",
            connection_policies=connection_policy,
            topic_policies="OwnSeat,Room",
            subscription_policies="",
        )
        assert_success(api.post({"Endpoint": {name: body}}))


# ---- validation of the objects -----------------------------------------------------------------------------


def test_topic_policy_without_a_connection_filter_is_refused_with_0139(workshop: Workshop) -> None:
    assert_answer(
        workshop.api.post({"TopicPolicy": {"Bare": {"Topic": "workshop/*", "ActionList": "Publish"}}}),
        400,
        "CWLNA0139",
        "The object: TopicPolicy must have one of the properties "
        "ClientID,ClientAddress,UserID,GroupID,CommonNames,Protocol specified",
    )


def test_endpoint_naming_a_missing_topic_policy_is_404_0136(workshop: Workshop) -> None:
    body = endpoint(8892, "WorkshopMtls", connection_policies="SeatsOnly", topic_policies="NoSuchSeatPolicy")
    assert_answer(
        workshop.api.post({"Endpoint": {"Orphan": body}}),
        404,
        "CWLNA0136",
        "The item or object cannot be found. Type: TopicPolicy Name: NoSuchSeatPolicy",
    )


# ---- connection policies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "refused"), [(4, CONNACK_REFUSED_V3), (5, CONNACK_REFUSED_V5)])
def test_common_names_policy_refuses_an_intruder_and_admits_a_seat(
    workshop: Workshop, version: int, refused: bytes
) -> None:
    port = workshop.standin.host_port(SEATS_PORT)
    before = workshop.api.monitor("Seats").json()["Endpoint"][0]["BadConnections"]
    intruder = tls_mqtt_probe(port, client_context(workshop.pki, cert=workshop.intruder), version=version)
    assert intruder.answer == refused, intruder
    assert poll(lambda: workshop.api.monitor("Seats").json()["Endpoint"][0]["BadConnections"] > before)
    log = poll(lambda: "CertificateCommonName=intruder" in workshop.standin.read_file(SECURITY_LOG))
    assert log, workshop.standin.read_file(SECURITY_LOG)
    assert "CWLNA6104" in workshop.standin.read_file(SECURITY_LOG)

    alice = tls_mqtt_probe(port, client_context(workshop.pki, cert=workshop.alice), version=version)
    assert (alice.answer[0], alice.answer[3]) == (0x20, 0), f"CONNACK accepted: {alice}"


def test_client_id_policy_admits_ids_starting_with_the_common_name(workshop: Workshop) -> None:
    port = workshop.standin.host_port(IDS_PORT)
    context = client_context(workshop.pki, cert=workshop.alice)
    subscriber = MqttClient(port, context, "seat.alice-sub")
    publisher = MqttClient(port, context, "seat.alice-pub")
    try:
        assert subscriber.connect() == 0
        assert publisher.connect() == 0, "two IDs with the CN as prefix at the same time"
        assert not subscriber.disconnected.is_set()
        assert tls_mqtt_probe(port, context, client_id="seat.bob-pub").answer == CONNACK_REFUSED_V3
        assert tls_mqtt_probe(port, context, client_id="seat.alice").answer == CONNACK_OK_V3
    finally:
        subscriber.close()
        publisher.close()


# ---- topic policies ----------------------------------------------------------------------------------------


def test_each_seat_uses_its_own_topics_and_the_room(workshop: Workshop) -> None:
    alice, bob = workshop.client(workshop.alice), workshop.client(workshop.bob, version=4)
    try:
        assert alice.subscribe("workshop/seat.alice/#", "workshop/all/#") == [1, 1]
        assert bob.subscribe("workshop/seat.bob/#", "workshop/all/#") == [1, 1]
        assert alice.publish("workshop/all/hello", b"room from alice").reason == 0
        assert bob.wait_message(b"room from alice") and alice.wait_message(b"room from alice")
        assert bob.publish("workshop/seat.bob/notes", b"bob to himself").acked
        assert bob.wait_message(b"bob to himself")
        assert alice.publish("workshop/seat.alice/notes", b"alice to herself", qos=0).disconnected is False
        assert alice.wait_message(b"alice to herself")
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize(("version", "denied"), [(4, SUBACK_FAILURE), (5, NOT_AUTHORIZED)])
def test_subscribing_to_another_seat_is_denied_filter_by_filter(
    workshop: Workshop, version: int, denied: int
) -> None:
    bob = workshop.client(workshop.bob, version=version)
    try:
        codes = bob.subscribe("workshop/seat.alice/#", "workshop/all/#", "workshop/seat.bob/+")
        assert codes == [denied, 1, 1]
        assert bob.subscribe("workshop/seat.alice/secret") == [denied], "a packet with only forbidden filters"
        assert not bob.disconnected.is_set()
        assert "CWLNA2202" in workshop.standin.read_file(CONNECTION_LOG)
    finally:
        bob.close()


def test_mqtt311_publish_to_another_seat_closes_the_connection(workshop: Workshop) -> None:
    alice, bob = workshop.client(workshop.alice), workshop.client(workshop.bob, version=4)
    try:
        assert alice.subscribe("workshop/seat.alice/#") == [1]
        result = bob.publish("workshop/seat.alice/inbox", b"bob intrudes (3.1.1)")
        assert (result.acked, result.disconnected) == (False, True), "no PUBACK; the server hangs up"
        # A later message of alice's own arrives; the forbidden one never did.
        assert alice.publish("workshop/seat.alice/inbox", b"alice's own").acked
        assert alice.wait_message(b"alice's own")
        assert b"bob intrudes (3.1.1)" not in [body for _, body in alice.messages]
        assert "CWLNA2106" in workshop.standin.read_file(CONNECTION_LOG)
    finally:
        alice.close()
        bob.close()


def test_mqtt5_publish_to_another_seat_gets_puback_0x87_and_stays_connected(workshop: Workshop) -> None:
    alice, bob = workshop.client(workshop.alice), workshop.client(workshop.bob)
    try:
        assert alice.subscribe("workshop/seat.alice/#") == [1]
        denied = bob.publish("workshop/seat.alice/inbox", b"bob intrudes (5)")
        assert (denied.acked, denied.reason, denied.disconnected) == (True, NOT_AUTHORIZED, False)
        room = bob.publish("workshop/all/sorry", b"bob in the room")  # 0x10: no subscribers, still success
        assert room.acked and room.reason is not None and room.reason < 0x80, f"still connected: {room}"
        assert alice.publish("workshop/seat.alice/inbox", b"alice again").acked
        assert alice.wait_message(b"alice again")
        assert b"bob intrudes (5)" not in [body for _, body in alice.messages]
    finally:
        alice.close()
        bob.close()


def test_mqtt5_qos0_publish_to_another_seat_closes_the_connection(workshop: Workshop) -> None:
    """Amlen's ``ism_mqtt_replyPublish``: a forbidden QoS 0 publish has nothing to NAK, so MQTT 5 disconnects."""
    bob = workshop.client(workshop.bob)
    try:
        bob.publish("workshop/seat.alice/inbox", b"fire and forget", qos=0)
        assert bob.wait_disconnected()
    finally:
        bob.close()


def test_the_front_reassembles_packets_split_across_reads_and_large_ones(workshop: Workshop) -> None:
    """The policy front frames packets itself: a CONNECT sent byte by byte, a publish of several hundred KiB."""
    port = workshop.standin.host_port(SEATS_PORT)
    context = client_context(workshop.pki, cert=workshop.alice)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        for byte in mqtt_connect_packet("seat.alice-bytewise"):
            tls.sendall(bytes([byte]))
        assert tls.recv(4) == CONNACK_OK_V3
    alice = workshop.client(workshop.alice)
    try:
        assert alice.subscribe("workshop/seat.alice/big") == [1]
        payload = bytes(range(256)) * 1200  # 300 KiB: a four-byte remaining length
        assert alice.publish("workshop/seat.alice/big", payload).acked
        assert alice.wait_message(payload)
    finally:
        alice.close()
