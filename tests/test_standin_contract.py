"""The Amlen stand-in keeps Amlen's contract: every answer recorded from a real server, then real TLS clients.

The reference (``../shared/reference/amlen-admin-api.md``) records what a real Amlen server answered; its
appendix wins where it differs from the source reading. These tests replay those requests against one stand-in
container on the real Docker engine and compare the HTTP status, the CWLNA code and the body (exactly where
the reference gives the full text, by prefix where it shortened it). Then the guide's REST sequence is
followed by real TLS and MQTT clients: the TLS port accepts a client that trusts the CA, the mutual-TLS port
accepts the client certificate and refuses a client without one or with one from another CA.

Requests that the reference did not record are tested as the stand-in's documented choices
(tests/standin/README.md) and named so.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding

from tests.standin_helpers import (
    SERVER_NAME,
    SUCCESS,
    AdminApi,
    Pki,
    RunningStandin,
    amlen_date,
    assert_answer,
    assert_success,
    client_context,
    endpoint,
    make_pki,
    paho_round_trip,
    start_standin,
    stop_standin,
    tls_mqtt_probe,
    tls_profile,
    unique,
)

pytestmark = pytest.mark.docker

TLS_PORT, MTLS_PORT = 8889, 8890
SPARE_PORTS = (8891, 8892, 8893, 8894)  # for tests that make endpoints of their own
DATA = "/var/lib/amlen-server"

# The guide's objects, named as on the real server in the appendix.
CERT_PROFILE, TLS_PROFILE, MTLS_PROFILE = (
    "TestServerFromToyCA",
    "TestServerSecProfile",
    "TestServerMutualAuthSecProfile",
)
TLS_ENDPOINT, MTLS_ENDPOINT = "TLSTestPort", "ClientCertsTLS"


# ---- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("standin-pki"))


@dataclass
class Fresh:
    """What the stand-in answered before any test changed it."""

    endpoints: dict[str, Any]
    hubs: dict[str, Any]
    security_profiles: dict[str, Any]
    policies: dict[str, dict[str, Any]]
    monitor: dict[str, Any]
    listening: dict[int, bool]


@pytest.fixture(scope="module")
def standin(standin_image: str) -> Iterator[RunningStandin]:
    """One stand-in container for this module, starting slowly so that readiness waiting is exercised."""
    running = start_standin(
        standin_image,
        ports=(9089, TLS_PORT, MTLS_PORT, *SPARE_PORTS),
        environment={"STANDIN_LISTEN_DELAY": "1.0", "STANDIN_START_DELAY": "1.5"},
    )
    yield running
    stop_standin(running)


@pytest.fixture(scope="module")
def api(standin: RunningStandin) -> Iterator[AdminApi]:
    client = AdminApi(standin.admin_base)
    yield client
    client.close()


@pytest.fixture(scope="module")
def fresh(standin: RunningStandin, api: AdminApi) -> Fresh:
    """The fresh server, captured before the guide runs (module fixtures run in dependency order)."""
    return Fresh(
        endpoints=api.get("Endpoint").json(),
        hubs=api.get("MessageHub").json(),
        security_profiles=api.get("SecurityProfile").json(),
        policies={
            kind: api.get(kind).json() for kind in ("ConnectionPolicy", "TopicPolicy", "SubscriptionPolicy")
        },
        monitor=api.monitor().json(),
        listening={port: standin.listening_inside(port) for port in (1883, 16102, TLS_PORT, MTLS_PORT)},
    )


@dataclass
class GuideRun:
    """The answers to the guide's REST sequence (reference section 7, in the appendix's order)."""

    steps: list[tuple[str, requests.Response]] = field(default_factory=list)
    mutual_endpoint_before_trusted_certificate: requests.Response | None = None


GUIDE_CERTIFICATE_PROFILE = {
    "CertificateProfile": {
        CERT_PROFILE: {"Certificate": "test.server.crt", "Key": "test.server.key", "Overwrite": True}
    }
}
GUIDE_TRUSTED_CERTIFICATE = {
    "TrustedCertificate": [
        {"SecurityProfileName": MTLS_PROFILE, "TrustedCertificate": "myCA.pem", "Overwrite": True}
    ]
}


def run_guide(api: AdminApi, pki: Pki, *, early_mutual_endpoint: bool) -> GuideRun:
    """The guide's calls in the appendix's order; optionally the mutual endpoint too early (CWLNA0456)."""
    run = GuideRun()
    uploads = {"test.server.crt": pki.server.cert_pem, "test.server.key": pki.server.key_pem}
    for name, data in uploads.items():
        run.steps.append((f"PUT {name}", api.put_file(name, data)))
    for label, body in (
        ("CertificateProfile", GUIDE_CERTIFICATE_PROFILE),
        ("SecurityProfile TLS", {"SecurityProfile": {TLS_PROFILE: tls_profile(client_certificates=False)}}),
        ("Endpoint TLS", {"Endpoint": {TLS_ENDPOINT: endpoint(TLS_PORT, TLS_PROFILE)}}),
        ("SecurityProfile mTLS", {"SecurityProfile": {MTLS_PROFILE: tls_profile(client_certificates=True)}}),
    ):
        run.steps.append((label, api.post(body)))
    mutual_endpoint = {"Endpoint": {MTLS_ENDPOINT: endpoint(MTLS_PORT, MTLS_PROFILE)}}
    if early_mutual_endpoint:
        run.mutual_endpoint_before_trusted_certificate = api.post(mutual_endpoint)
    run.steps.append(("PUT myCA.pem", api.put_file("myCA.pem", pki.ca.cert_pem)))
    run.steps.append(("TrustedCertificate", api.post(GUIDE_TRUSTED_CERTIFICATE)))
    run.steps.append(("Endpoint mTLS", api.post(mutual_endpoint)))
    return run


@pytest.fixture(scope="module")
def guide(fresh: Fresh, api: AdminApi, pki: Pki) -> GuideRun:
    return run_guide(api, pki, early_mutual_endpoint=True)


def read_backs(api: AdminApi) -> dict[str, Any]:
    return {
        path: api.get(path).json()
        for path in (
            f"CertificateProfile/{CERT_PROFILE}",
            f"SecurityProfile/{TLS_PROFILE}",
            f"SecurityProfile/{MTLS_PROFILE}",
            f"TrustedCertificate/{MTLS_PROFILE}",
            f"Endpoint/{TLS_ENDPOINT}",
            f"Endpoint/{MTLS_ENDPOINT}",
        )
    }


# ---- start-up and the fresh server -------------------------------------------------------------------------


def test_status_refuses_then_reports_starting_states_then_running(
    standin: RunningStandin, api: AdminApi
) -> None:
    states = [observation.state for observation in standin.startup]
    assert states[0] is None, "the admin port does not answer right after the container starts"
    first_answer = next(index for index, state in enumerate(states) if state is not None)
    starting = states[first_answer : states.index(1)]
    assert starting and set(starting) <= {4, 11, 16}, f"HTTP 200 with a starting State before 1: {states}"
    assert None not in starting, "once the admin port answers, it keeps answering"

    response = api.status()
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {
        "Version",
        "Server",
        "Container",
        "HighAvailability",
        "Cluster",
        "Plugin",
        "MQConnectivity",
        "SNMP",
    }
    server = body["Server"]
    assert set(server) == {
        "Name",
        "UID",
        "Status",
        "State",
        "StateDescription",
        "ServerTime",
        "UpTimeSeconds",
        "UpTimeDescription",
        "Version",
        "ErrorCode",
        "ErrorMessage",
    }
    assert (server["State"], server["StateDescription"], server["Status"]) == (
        1,
        "Running (production)",
        "Running",
    )
    assert (server["ErrorCode"], server["ErrorMessage"]) == (0, "")
    assert server["Name"].endswith(":9089")
    assert body["HighAvailability"] == {"Status": "Inactive", "Enabled": False}
    assert body["Container"]["UUID"].startswith(standin.container.id[:12])


def test_fresh_server_has_only_disabled_demo_endpoints_and_the_admin_profile(fresh: Fresh) -> None:
    endpoints = fresh.endpoints["Endpoint"]
    assert set(endpoints) == {"DemoEndpoint", "DemoMqttEndpoint"}
    assert (endpoints["DemoEndpoint"]["Port"], endpoints["DemoEndpoint"]["Enabled"]) == (16102, False)
    assert (endpoints["DemoMqttEndpoint"]["Port"], endpoints["DemoMqttEndpoint"]["Enabled"]) == (1883, False)
    assert fresh.hubs == {"Version": "v1", "MessageHub": {"DemoHub": {"Description": "Demo Message Hub."}}}
    assert set(fresh.security_profiles["SecurityProfile"]) == {"AdminDefaultSecProfile"}
    assert fresh.policies["ConnectionPolicy"]["ConnectionPolicy"]["DemoConnectionPolicy"]["ClientID"] == "*"
    topic = fresh.policies["TopicPolicy"]["TopicPolicy"]["DemoTopicPolicy"]
    assert (topic["Topic"], topic["ActionList"], topic["MaxMessages"]) == ("*", "Publish,Subscribe", 5000)
    subscription = fresh.policies["SubscriptionPolicy"]["SubscriptionPolicy"]["DemoSubscriptionPolicy"]
    assert (subscription["Subscription"], subscription["Protocol"], subscription["ActionList"]) == (
        "*",
        "JMS,MQTT",
        "Receive,Control",
    )
    assert not any(fresh.listening.values()), "a fresh server listens for MQTT on no port"
    assert {entry["Name"]: entry["Enabled"] for entry in fresh.monitor["Endpoint"]} == {
        "DemoEndpoint": False,
        "DemoMqttEndpoint": False,
    }


def test_admin_port_also_speaks_https_with_a_self_signed_certificate(standin: RunningStandin) -> None:
    port = standin.host_port(9089)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with ssl_connection(port, context) as tls:
        certificate = tls.getpeercert(binary_form=True)
        tls.sendall(b"GET /ima/v1/service/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = receive_all(tls)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    assert b'"State": 1' in answer
    assert certificate, "the admin endpoint presents Amlen's default certificate"
    strict = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl_connection(port, strict, server_hostname="127.0.0.1").close()


# ---- the guide's sequence ----------------------------------------------------------------------------------


def test_guide_sequence_is_accepted_in_order(guide: GuideRun) -> None:
    for label, response in guide.steps:
        assert (response.status_code, response.json()) == (200, SUCCESS), f"{label}: {response.text}"


def test_mutual_endpoint_before_its_trusted_certificate_is_refused_with_0456(guide: GuideRun) -> None:
    assert guide.mutual_endpoint_before_trusted_certificate is not None
    assert_answer(
        guide.mutual_endpoint_before_trusted_certificate,
        400,
        "CWLNA0456",
        "UseClientCertificate is enabled in the SecurityProfile. "
        "A Trusted Certificate or a Client Certificate must be associated with the SecurityProfile.",
    )


def test_read_backs_have_the_recorded_shapes(guide: GuideRun, api: AdminApi, pki: Pki) -> None:
    bodies = read_backs(api)
    assert bodies[f"CertificateProfile/{CERT_PROFILE}"] == {
        "Version": "v1",
        "CertificateProfile": {
            CERT_PROFILE: {
                "Certificate": "test.server.crt",
                "Key": "test.server.key",
                "ExpirationDate": amlen_date(pki.server.cert),
            }
        },
    }
    extra_profile = {"AllowNullPassword": False, "LTPAProfile": "", "OAuthProfile": "", "CRLProfile": ""}
    assert bodies[f"SecurityProfile/{TLS_PROFILE}"] == {
        "Version": "v1",
        "SecurityProfile": {TLS_PROFILE: {**tls_profile(client_certificates=False), **extra_profile}},
    }
    assert (
        bodies[f"SecurityProfile/{MTLS_PROFILE}"]["SecurityProfile"][MTLS_PROFILE]["UseClientCertificate"]
        is True
    )
    assert bodies[f"TrustedCertificate/{MTLS_PROFILE}"] == {
        "Version": "v1",
        "TrustedCertificate": [{"SecurityProfileName": MTLS_PROFILE, "TrustedCertificate": "myCA.pem"}],
    }
    extra_endpoint = {
        "InterfaceName": "All",
        "MaxSendSize": 16384,
        "BatchMessages": True,
        "EnableAbout": False,
    }
    assert bodies[f"Endpoint/{TLS_ENDPOINT}"] == {
        "Version": "v1",
        "Endpoint": {TLS_ENDPOINT: {**endpoint(TLS_PORT, TLS_PROFILE), **extra_endpoint}},
    }


def test_monitor_reports_both_endpoints_running(guide: GuideRun, api: AdminApi) -> None:
    for name in (TLS_ENDPOINT, MTLS_ENDPOINT):
        response = api.monitor(name)
        assert response.status_code == 200
        (entry,) = response.json()["Endpoint"]
        assert set(entry) == {
            "Name",
            "IPAddr",
            "Enabled",
            "Total",
            "Active",
            "Messages",
            "Bytes",
            "LastErrorCode",
            "ConfigTime",
            "ResetTime",
            "BadConnections",
        }
        assert (entry["Name"], entry["IPAddr"], entry["Enabled"], entry["LastErrorCode"]) == (
            name,
            "ALL",
            True,
            0,
        )
        assert entry["ResetTime"] is None


# ---- real TLS clients --------------------------------------------------------------------------------------


def test_tls_port_accepts_a_client_trusting_the_ca_and_checks_the_name(
    guide: GuideRun, standin: RunningStandin, pki: Pki
) -> None:
    port = standin.host_port(TLS_PORT)
    accepted = tls_mqtt_probe(port, client_context(pki))
    assert accepted.mqtt_accepted, accepted
    assert accepted.version == "TLSv1.3"
    wrong_name = tls_mqtt_probe(port, client_context(pki), server_hostname="not.the.server.name")
    assert isinstance(wrong_name.handshake_error, ssl.SSLCertVerificationError)
    untrusted = tls_mqtt_probe(port, client_context(pki, trust=pki.other_ca))
    assert isinstance(untrusted.handshake_error, ssl.SSLCertVerificationError)


def test_tls_port_carries_mqtt_messages_for_paho(guide: GuideRun, standin: RunningStandin, pki: Pki) -> None:
    outcome = paho_round_trip(standin.host_port(TLS_PORT), client_context(pki))
    assert outcome.connack is not None and not outcome.connack.is_failure
    assert sorted(outcome.received) == [f"message {index}".encode() for index in range(5)]


def test_tls_port_carries_mqtt_over_websocket_on_the_same_port(
    guide: GuideRun, standin: RunningStandin, pki: Pki
) -> None:
    outcome = paho_round_trip(standin.host_port(TLS_PORT), client_context(pki), transport="websockets")
    assert outcome.connack is not None and not outcome.connack.is_failure
    assert len(outcome.received) == 5


def test_mutual_tls_port_accepts_the_client_certificate(
    guide: GuideRun, standin: RunningStandin, pki: Pki
) -> None:
    context = client_context(pki, cert=pki.client)
    assert tls_mqtt_probe(standin.host_port(MTLS_PORT), context).mqtt_accepted
    outcome = paho_round_trip(standin.host_port(MTLS_PORT), context)
    assert len(outcome.received) == 5


def test_mutual_tls_port_rejects_a_client_without_certificate(
    guide: GuideRun, standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    bad_before = api.monitor(MTLS_ENDPOINT).json()["Endpoint"][0]["BadConnections"]
    outcome = tls_mqtt_probe(standin.host_port(MTLS_PORT), client_context(pki))
    # TLS 1.3: the client's side of the handshake completes; the server's alert arrives on the first read.
    assert outcome.handshake_error is None and outcome.version == "TLSv1.3"
    assert not outcome.mqtt_accepted
    assert "CERTIFICATE_REQUIRED" in str(outcome.read_error), outcome
    paho = paho_round_trip(standin.host_port(MTLS_PORT), client_context(pki), timeout=3)
    assert paho.connack is None and paho.received == [], "no CONNACK for a client without certificate"
    assert api.monitor(MTLS_ENDPOINT).json()["Endpoint"][0]["BadConnections"] > bad_before


def test_mutual_tls_port_rejects_a_certificate_from_another_ca(
    guide: GuideRun, standin: RunningStandin, pki: Pki
) -> None:
    outcome = tls_mqtt_probe(standin.host_port(MTLS_PORT), client_context(pki, cert=pki.other_client))
    assert not outcome.mqtt_accepted
    assert "UNKNOWN_CA" in str(outcome.read_error or outcome.handshake_error), outcome
    paho = paho_round_trip(
        standin.host_port(MTLS_PORT), client_context(pki, cert=pki.other_client), timeout=3
    )
    assert paho.connack is None


# ---- running the sequence again ----------------------------------------------------------------------------


def test_rerunning_the_guide_with_fresh_uploads_changes_nothing(
    guide: GuideRun, api: AdminApi, pki: Pki
) -> None:
    before = read_backs(api)
    again = run_guide(api, pki, early_mutual_endpoint=False)
    for label, response in again.steps:
        assert (response.status_code, response.json()) == (200, SUCCESS), f"{label}: {response.text}"
    assert read_backs(api) == before


def test_certificate_profile_repost_needs_a_fresh_upload_and_overwrite(
    guide: GuideRun, api: AdminApi, pki: Pki
) -> None:
    profile = {"Certificate": "test.server.crt", "Key": "test.server.key"}
    for options in ({"Overwrite": True}, {}):
        assert_answer(
            api.post({"CertificateProfile": {CERT_PROFILE: {**profile, **options}}}),
            400,
            "CWLNA6184",
            "Cannot find the certificate file test.server.crt. Make sure it has been uploaded.",
        )
    api.put_file("test.server.crt", pki.server.cert_pem)
    api.put_file("test.server.key", pki.server.key_pem)
    for options in ({"Overwrite": False}, {}):
        assert_answer(
            api.post({"CertificateProfile": {CERT_PROFILE: {**profile, **options}}}),
            400,
            "CWLNA6186",
            "The certificate already exists. Set Overwrite to true to replace the existing certificate.",
        )
    # The failed POSTs did not consume the uploads: the next one, with Overwrite, uses them...
    assert_success(api.post({"CertificateProfile": {CERT_PROFILE: {**profile, "Overwrite": True}}}))
    # ...and consumes them.
    assert_answer(
        api.post({"CertificateProfile": {CERT_PROFILE: {**profile, "Overwrite": True}}}), 400, "CWLNA6184"
    )


def test_trusted_certificate_repost_without_upload_is_a_no_op_with_overwrite(
    guide: GuideRun, api: AdminApi, pki: Pki
) -> None:
    entry = {"SecurityProfileName": MTLS_PROFILE, "TrustedCertificate": "myCA.pem"}
    assert_success(api.post({"TrustedCertificate": [{**entry, "Overwrite": True}]}))
    api.put_file("myCA.pem", pki.ca.cert_pem)
    assert_answer(api.post({"TrustedCertificate": [{**entry, "Overwrite": False}]}), 400, "CWLNA6186")
    assert_answer(api.post({"TrustedCertificate": [entry]}), 400, "CWLNA6186")
    assert_success(api.post({"TrustedCertificate": [{**entry, "Overwrite": True}]}))


# ---- recorded errors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One error row of the appendix: the request and the answer the real server gave."""

    body: Any
    status: int
    code: str
    message: str
    prefix: bool = False  # the reference shortened the message


GOOD_ENDPOINT = {k: v for k, v in endpoint(8891, "").items() if k != "SecurityProfile"}
RECORDED_POSTS = {
    "endpoint-unknown-property": Recorded(
        {"Endpoint": {"BadEp1": {**GOOD_ENDPOINT, "Bogus": 1}}},
        400,
        "CWLNA0138",
        "The property name is invalid. Object: Endpoint Name: BadEp1 Property: Bogus",
    ),
    "endpoint-port-70000": Recorded(
        {"Endpoint": {"BadEp2": {**GOOD_ENDPOINT, "Port": 70000}}},
        400,
        "CWLNA0112",
        'The property value is not valid: Property: Port Value: "70000".',
    ),
    "endpoint-port-0": Recorded(
        {"Endpoint": {"BadEp2": {**GOOD_ENDPOINT, "Port": 0}}},
        400,
        "CWLNA0112",
        'The property value is not valid: Property: Port Value: "0".',
    ),
    "endpoint-port-abc": Recorded(
        {"Endpoint": {"BadEp3": {**GOOD_ENDPOINT, "Port": "abc"}}},
        400,
        "CWLNA0127",
        "The property type is not valid. Object: Endpoint Name: BadEp3 Property: Port Type: JSON_STRING",
    ),
    "endpoint-port-as-string": Recorded(
        {"Endpoint": {"BadEp4": {**GOOD_ENDPOINT, "Port": "8889"}}},
        400,
        "CWLNA0127",
        "The property type is not valid. Object: Endpoint Name: BadEp4 Property: Port Type: JSON_STRING",
    ),
    "endpoint-enabled-as-string": Recorded(
        {"Endpoint": {"BadEp5": {**GOOD_ENDPOINT, "Enabled": "true"}}},
        400,
        "CWLNA0127",
        "The property type is not valid. Object: Endpoint Name: BadEp5 Property: Enabled Type: JSON_STRING",
    ),
    "security-profile-boolean-as-integer": Recorded(
        {"SecurityProfile": {"BadProf1": {"TLSEnabled": False, "UseClientCertificate": 1}}},
        400,
        "CWLNA0127",
        "The property type is not valid. Object: SecurityProfile Name: BadProf1 "
        "Property: UseClientCertificate Type: JSON_INTEGER",
    ),
    "security-profile-missing-certificate-profile": Recorded(
        {
            "SecurityProfile": {
                "BadProf2": tls_profile(client_certificates=False, certificate_profile="NoSuchProf")
            }
        },
        404,
        "CWLNA0136",
        "The item or object cannot be found. Type: CertificateProfile Name: NoSuchProf",
    ),
    "security-profile-unknown-property": Recorded(
        {"SecurityProfile": {"BadProf3": {"TLSEnabled": False, "NoSuchProperty": True}}},
        400,
        "CWLNA0138",
        "The property name is invalid. Object: SecurityProfile Name: BadProf3 Property: NoSuchProperty",
    ),
    "security-profile-name-with-hyphen": Recorded(
        {"SecurityProfile": {"Test-Sec": {"TLSEnabled": False}}},
        400,
        "CWLNA6206",
        'The property "NameOfSecurityProfile" must only contain alphanumeric characters.',
    ),
    "security-profile-name-with-underscore": Recorded(
        {"SecurityProfile": {"Test_Sec": {"TLSEnabled": False}}},
        400,
        "CWLNA6206",
        'The property "NameOfSecurityProfile" must only contain alphanumeric characters.',
    ),
    "security-profile-name-of-33-characters": Recorded(
        {"SecurityProfile": {"S" * 33: {"TLSEnabled": False}}},
        400,
        "CWLNA0133",
        "The name of the configuration object is too long. Object: SecurityProfile Property: Name",
        prefix=True,
    ),
    "certificate-profile-files-never-uploaded": Recorded(
        {"CertificateProfile": {"NeverUploaded": {"Certificate": "missing.pem", "Key": "missing-key.pem"}}},
        400,
        "CWLNA6184",
        "Cannot find the certificate file missing.pem. Make sure it has been uploaded.",
    ),
    "trusted-certificate-for-missing-security-profile": Recorded(
        {
            "TrustedCertificate": [
                {"SecurityProfileName": "NoSuchSecProfile", "TrustedCertificate": "myCA.pem"}
            ]
        },
        404,
        "CWLNA0136",
        "The item or object cannot be found. Type: SecurityProfileName Name: NoSuchSecProfile",
    ),
    "endpoint-missing-security-profile": Recorded(
        {"Endpoint": {"BadEp6": {**GOOD_ENDPOINT, "SecurityProfile": "NoSuchSecProfile"}}},
        404,
        "CWLNA0136",
        "The item or object cannot be found. Type: SecurityProfile Name: NoSuchSecProfile",
    ),
    "endpoint-on-a-port-another-endpoint-uses": Recorded(
        {"Endpoint": {"BadEp7": {**GOOD_ENDPOINT, "Port": 16102}}}, 400, "CWLNA0155", "The port is in use."
    ),
}


@pytest.mark.parametrize("case", RECORDED_POSTS.values(), ids=RECORDED_POSTS.keys())
def test_recorded_configuration_errors(standin: RunningStandin, api: AdminApi, case: Recorded) -> None:
    assert_answer(api.post(case.body), case.status, case.code, case.message, prefix=case.prefix)


def test_malformed_json_is_6001_with_janssons_words(standin: RunningStandin, api: AdminApi) -> None:
    assert_answer(
        api.post_raw(b"{not json"),
        400,
        "CWLNA6001",
        "Failed to parse administrative request string or '}' expected near 'not': RC=1.",
    )


def test_get_of_a_missing_object_is_404_0136(standin: RunningStandin, api: AdminApi) -> None:
    assert_answer(
        api.get("Endpoint/NoSuchEndpoint"),
        404,
        "CWLNA0136",
        "The item or object cannot be found. Type: Endpoint Name: NoSuchEndpoint",
    )


def test_security_profile_name_of_32_characters_is_accepted(standin: RunningStandin, api: AdminApi) -> None:
    name = "S" * 24 + uuid.uuid4().hex[:8]
    assert_success(
        api.post({"SecurityProfile": {name: {"TLSEnabled": False, "UsePasswordAuthentication": False}}})
    )
    assert_success(api.delete(f"SecurityProfile/{name}"))


def test_demo_hub_and_policy_in_use_cannot_be_deleted(standin: RunningStandin, api: AdminApi) -> None:
    assert_answer(
        api.delete("MessageHub/DemoHub"),
        400,
        "CWLNA0376",
        "The Object: MessageHub, Name: DemoHub is still being used by Object: Endpoint, Name: DemoEndpoint",
    )
    assert_answer(
        api.delete("ConnectionPolicy/DemoConnectionPolicy"),
        400,
        "CWLNA0376",
        "The Object: ConnectionPolicy, Name: DemoConnectionPolicy is still being used by Object: "
        "Endpoint, Name: DemoEndpoint",
    )


def test_deleting_referenced_guide_objects_is_refused_with_0376(guide: GuideRun, api: AdminApi) -> None:
    assert_answer(
        api.delete(f"SecurityProfile/{TLS_PROFILE}"),
        400,
        "CWLNA0376",
        f"The Object: SecurityProfile, Name: {TLS_PROFILE} is still being used by Object: Endpoint, "
        f"Name: {TLS_ENDPOINT}",
    )
    assert_answer(
        api.delete(f"CertificateProfile/{CERT_PROFILE}"),
        400,
        "CWLNA0376",
        f"The Object: CertificateProfile, Name: {CERT_PROFILE} is still being used by Object: "
        "SecurityProfile, Name: ",
        prefix=True,
    )


def test_upload_with_an_empty_body_is_accepted(standin: RunningStandin, api: AdminApi) -> None:
    assert_success(api.put_file(unique("empty") + ".pem", b""))


def test_uploads_accept_chunked_bodies_and_expect_100_continue(
    standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    name = unique("Chunked")
    chunked = api.session.put(
        api.url(f"file/{name}.crt"),
        data=iter([pki.server.cert_pem[:100], pki.server.cert_pem[100:]]),
        timeout=30,
    )
    assert_success(chunked)
    body = pki.server.key_pem
    with socket.create_connection(("127.0.0.1", standin.host_port(9089)), timeout=10) as raw:
        raw.sendall(
            f"PUT /ima/v1/file/{name}.key HTTP/1.1\r\nHost: standin\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 100"), "the server invites the body"
        raw.sendall(body)
        answer = receive_all(raw)
    assert answer.startswith(b"HTTP/1.1 200") and b"CWLNA6011" in answer, answer[:200]
    assert_success(
        api.post({"CertificateProfile": {name: {"Certificate": f"{name}.crt", "Key": f"{name}.key"}}})
    )
    assert_success(api.delete(f"CertificateProfile/{name}"))


# ---- certificates and keys ---------------------------------------------------------------------------------


def post_certificate_profile(
    api: AdminApi, cert: bytes, key: bytes, **options: Any
) -> tuple[str, requests.Response]:
    """Upload a certificate and key under fresh names and POST a certificate profile with them."""
    name = unique("CertProf")
    api.put_file(f"{name}.crt", cert)
    api.put_file(f"{name}.key", key)
    return name, api.post(
        {"CertificateProfile": {name: {"Certificate": f"{name}.crt", "Key": f"{name}.key", **options}}}
    )


def test_certificate_with_an_unrelated_key_is_6189(standin: RunningStandin, api: AdminApi, pki: Pki) -> None:
    _, response = post_certificate_profile(api, pki.server.cert_pem, pki.unrelated_key.read_bytes())
    assert_answer(response, 400, "CWLNA6189", "The certificate and key file do not match.")


@pytest.mark.parametrize("key_kind", ["sec1", "pkcs8"])
def test_ec_key_is_refused_as_if_it_had_a_password(
    standin: RunningStandin, api: AdminApi, pki: Pki, key_kind: str
) -> None:
    key = pki.ec.key_pem if key_kind == "sec1" else pki.ec_pkcs8_key.read_bytes()
    _, response = post_certificate_profile(api, pki.ec.cert_pem, key)
    assert_answer(
        response,
        400,
        "CWLNA6191",
        'The key file specified has a password. Need to input a "KeyFilePassword".',
    )


def test_encrypted_key_needs_the_right_key_file_password(
    standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    encrypted = pki.encrypted_key.read_bytes()
    assert_answer(post_certificate_profile(api, pki.server.cert_pem, encrypted)[1], 400, "CWLNA6191")
    assert_answer(
        post_certificate_profile(api, pki.server.cert_pem, encrypted, KeyFilePassword="wrong")[1],
        400,
        "CWLNA6193",
        "The key file might be in an unexpected format, or the key password might be incorrect or missing.",
    )
    name, response = post_certificate_profile(
        api, pki.server.cert_pem, encrypted, KeyFilePassword=Pki.KEY_PASSWORD
    )
    assert_success(response)
    assert set(api.get(f"CertificateProfile/{name}").json()["CertificateProfile"][name]) == {
        "Certificate",
        "Key",
        "ExpirationDate",
    }, "passwords and Overwrite are not stored"
    assert_success(api.delete(f"CertificateProfile/{name}"))


def test_trusted_certificate_that_is_not_a_ca_is_6183(
    standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    profile = unique("NotCa")
    assert_success(
        api.post({"SecurityProfile": {profile: {"TLSEnabled": False, "UsePasswordAuthentication": False}}})
    )
    api.put_file("leaf.pem", pki.server.cert_pem)
    response = api.post(
        {"TrustedCertificate": [{"SecurityProfileName": profile, "TrustedCertificate": "leaf.pem"}]}
    )
    assert_answer(response, 400, "CWLNA6183", "The certificate is not a CA certificate.")
    assert_success(api.delete(f"SecurityProfile/{profile}"))


def test_expired_certificate_is_accepted_and_served(standin: RunningStandin, api: AdminApi, pki: Pki) -> None:
    cert_profile, response = post_certificate_profile(api, pki.expired.cert_pem, pki.expired.key_pem)
    assert_success(response)
    assert api.get(f"CertificateProfile/{cert_profile}").json()["CertificateProfile"][cert_profile][
        "ExpirationDate"
    ] == amlen_date(pki.expired.cert)
    profile, name = unique("Expired"), unique("ExpiredEp")
    assert_success(
        api.post(
            {
                "SecurityProfile": {
                    profile: tls_profile(client_certificates=False, certificate_profile=cert_profile)
                }
            }
        )
    )
    assert_success(api.post({"Endpoint": {name: endpoint(8893, profile)}}))
    try:
        assert served_certificate(standin.host_port(8893)) == pki.expired.cert.public_bytes(Encoding.DER)
        strict = tls_mqtt_probe(standin.host_port(8893), client_context(pki))
        assert "expired" in str(strict.handshake_error), "the lab has to check expiry itself"
    finally:
        for path in (f"Endpoint/{name}", f"SecurityProfile/{profile}", f"CertificateProfile/{cert_profile}"):
            api.delete(path)


# ---- defaults that differ from the WebUI -------------------------------------------------------------------


def test_tls_enabled_is_the_default_so_a_profile_needs_a_certificate_profile(
    standin: RunningStandin, api: AdminApi
) -> None:
    response = api.post({"SecurityProfile": {unique("NoCert"): {"UsePasswordAuthentication": False}}})
    assert_answer(response, 400, "CWLNA0186", "The certificate profile must be set if TLSEnabled is true.")


def test_password_authentication_is_the_default_and_refuses_anonymous_clients(
    guide: GuideRun, standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    """Not recorded: the profile is accepted (the default server has an admin user), its clients are not."""
    profile, name = unique("PwDefault"), unique("PwEp")
    assert_success(api.post({"SecurityProfile": {profile: {"CertificateProfile": CERT_PROFILE}}}))
    stored = api.get(f"SecurityProfile/{profile}").json()["SecurityProfile"][profile]
    assert (stored["UsePasswordAuthentication"], stored["TLSEnabled"]) == (True, True)
    assert_success(api.post({"Endpoint": {name: endpoint(8892, profile)}}))
    try:
        outcome = paho_round_trip(standin.host_port(8892), client_context(pki), timeout=5)
        assert outcome.connack is not None and outcome.connack.is_failure, "CONNACK: not authorized"
        assert outcome.received == []
    finally:
        api.delete(f"Endpoint/{name}")
        api.delete(f"SecurityProfile/{profile}")


def test_max_message_size_takes_amlen_buffer_sizes(standin: RunningStandin, api: AdminApi) -> None:
    name = unique("SizeEp")
    for size in ("1024KB", "4096KB", "1MB", "1048576"):
        assert_success(
            api.post({"Endpoint": {name: {**GOOD_ENDPOINT, "Enabled": False, "MaxMessageSize": size}}})
        )
    for size in ("512", "262145KB", "big"):
        assert_answer(
            api.post({"Endpoint": {name: {**GOOD_ENDPOINT, "MaxMessageSize": size}}}),
            400,
            "CWLNA0112",
            f'The property value is not valid: Property: MaxMessageSize Value: "{size}".',
        )
    assert_answer(api.post({"Endpoint": {name: {**GOOD_ENDPOINT, "MaxMessageSize": 1024}}}), 400, "CWLNA0127")
    assert_success(api.delete(f"Endpoint/{name}"))


@pytest.mark.parametrize("name", ["1stEndpoint", " Leading", "With,Comma", 'Quote"d', "Equal=s"])
def test_object_names_follow_amlens_character_rules(
    standin: RunningStandin, api: AdminApi, name: str
) -> None:
    """Amlen's ``ism_config_validate_UTF8`` (not recorded): first character >= 'A', none of , = " \\."""
    assert_answer(
        api.post({"Endpoint": {name: GOOD_ENDPOINT}}), 400, "CWLNA0122", "The Unicode value is not valid."
    )


# ---- endpoints that come and go ----------------------------------------------------------------------------


def test_disabling_an_endpoint_closes_its_port_and_enabling_reopens_it(
    guide: GuideRun, standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    name = unique("Toggle")
    assert_success(api.post({"Endpoint": {name: endpoint(8891, TLS_PROFILE)}}))
    assert standin.listening_inside(8891)
    assert_success(api.post({"Endpoint": {name: {"Enabled": False}}}))
    assert not standin.listening_inside(8891)
    assert api.monitor(name).json()["Endpoint"][0]["Enabled"] is False
    assert_success(api.post({"Endpoint": {name: {"Enabled": True}}}))
    assert tls_mqtt_probe(standin.host_port(8891), client_context(pki)).mqtt_accepted
    assert_success(api.delete(f"Endpoint/{name}"))
    assert not standin.listening_inside(8891)


def test_updating_the_certificate_profile_restarts_its_endpoint_with_the_new_certificate(
    standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    cert, profile, name = unique("SwapCert"), unique("Swap"), unique("SwapEp")
    files = {"Certificate": f"{cert}.crt", "Key": f"{cert}.key"}
    api.put_file(f"{cert}.crt", pki.server.cert_pem)
    api.put_file(f"{cert}.key", pki.server.key_pem)
    assert_success(api.post({"CertificateProfile": {cert: files}}))
    assert_success(
        api.post(
            {"SecurityProfile": {profile: tls_profile(client_certificates=False, certificate_profile=cert)}}
        )
    )
    assert_success(api.post({"Endpoint": {name: endpoint(8891, profile)}}))
    try:
        assert served_certificate(standin.host_port(8891)) == pki.server.cert.public_bytes(Encoding.DER)
        api.put_file(f"{cert}.crt", pki.expired.cert_pem)
        api.put_file(f"{cert}.key", pki.expired.key_pem)
        assert_success(api.post({"CertificateProfile": {cert: {**files, "Overwrite": True}}}))
        assert served_certificate(standin.host_port(8891)) == pki.expired.cert.public_bytes(Encoding.DER)
    finally:
        for path in (f"Endpoint/{name}", f"SecurityProfile/{profile}", f"CertificateProfile/{cert}"):
            api.delete(path)


def test_updating_the_security_profile_applies_to_its_running_endpoint(
    guide: GuideRun, standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    profile, name, ca_file = unique("Flip"), unique("FlipEp"), f"{unique('flipca')}.pem"
    assert_success(api.post({"SecurityProfile": {profile: tls_profile(client_certificates=False)}}))
    assert_success(api.post({"Endpoint": {name: endpoint(8891, profile)}}))
    try:
        assert tls_mqtt_probe(standin.host_port(8891), client_context(pki)).mqtt_accepted
        api.put_file(ca_file, pki.ca.cert_pem)
        assert_success(
            api.post(
                {"TrustedCertificate": [{"SecurityProfileName": profile, "TrustedCertificate": ca_file}]}
            )
        )
        assert_success(api.post({"SecurityProfile": {profile: {"UseClientCertificate": True}}}))
        assert not tls_mqtt_probe(standin.host_port(8891), client_context(pki)).mqtt_accepted
        assert tls_mqtt_probe(standin.host_port(8891), client_context(pki, cert=pki.client)).mqtt_accepted
    finally:
        api.delete(f"Endpoint/{name}")
        api.delete(f"SecurityProfile/{profile}")


def test_trusted_ca_added_later_reaches_the_running_endpoint_without_restart(
    standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    """Reference 3.8: the listener searches the hashed ``<profile>_capath`` on each handshake."""
    profile, name = unique("Later"), unique("LaterEp")
    ca_file, other_file = f"{unique('ca')}.pem", f"{unique('other')}.pem"
    port = standin.host_port(8891)
    with_client, with_other = client_context(pki, cert=pki.client), client_context(pki, cert=pki.other_client)
    assert_success(api.post({"SecurityProfile": {profile: tls_profile(client_certificates=True)}}))
    api.put_file(ca_file, pki.ca.cert_pem)
    assert_success(
        api.post({"TrustedCertificate": [{"SecurityProfileName": profile, "TrustedCertificate": ca_file}]})
    )
    assert_success(api.post({"Endpoint": {name: endpoint(8891, profile)}}))
    try:
        assert tls_mqtt_probe(port, with_client).mqtt_accepted
        assert not tls_mqtt_probe(port, with_other).mqtt_accepted
        api.put_file(other_file, pki.other_ca.cert_pem)
        trust_other = {"SecurityProfileName": profile, "TrustedCertificate": other_file}
        assert_success(api.post({"TrustedCertificate": [trust_other]}))
        assert tls_mqtt_probe(port, with_other).mqtt_accepted, "no restart needed for a CA added later"

        # Removed, then the profile posted again (which rebuilds the listener): the CA is no longer trusted...
        assert_success(api.delete(f"TrustedCertificate/{profile}/{other_file}"))
        current = api.get(f"SecurityProfile/{profile}").json()["SecurityProfile"]
        assert_success(api.post({"SecurityProfile": current}))
        assert "UNKNOWN_CA" in str(tls_mqtt_probe(port, with_other).read_error)
        # ...and trusted again as soon as it is re-attached.
        api.put_file(other_file, pki.other_ca.cert_pem)
        assert_success(api.post({"TrustedCertificate": [trust_other]}))
        assert tls_mqtt_probe(port, with_other).mqtt_accepted
    finally:
        api.delete(f"Endpoint/{name}")
        api.delete(f"SecurityProfile/{profile}")


def test_deleted_endpoint_is_404_0113_and_500_in_the_monitor(guide: GuideRun, api: AdminApi) -> None:
    name = unique("Gone")
    assert_success(api.post({"Endpoint": {name: endpoint(8891, TLS_PROFILE)}}))
    assert_success(api.delete(f"Endpoint/{name}"))
    assert_answer(api.delete(f"Endpoint/{name}"), 404, "CWLNA0113", "The requested item is not found.")
    assert_answer(api.monitor(name), 500, "CWLNA0100", "System error")


def test_endpoint_on_a_port_held_inside_the_container_is_accepted_then_absent(
    guide: GuideRun, standin: RunningStandin, api: AdminApi
) -> None:
    holder = (
        "import os, socket, time; s = socket.socket(); s.bind(('0.0.0.0', 8894)); s.listen(); "
        "open('/tmp/holder.pid', 'w').write(str(os.getpid())); time.sleep(120)"
    )
    standin.container.exec_run(["python3", "-c", holder], detach=True)
    deadline = time.monotonic() + 10
    while not standin.listening_inside(8894) and time.monotonic() < deadline:
        time.sleep(0.1)
    name = unique("Held")
    try:
        assert_success(api.post({"Endpoint": {name: endpoint(8894, TLS_PROFILE)}}))
        assert name not in [entry["Name"] for entry in api.monitor().json()["Endpoint"]]
        assert_answer(api.monitor(name), 500, "CWLNA0100")
        assert "CWLNA1102" in standin.read_file(f"{DATA}/diag/logs/imaserver-default.log")
    finally:
        api.delete(f"Endpoint/{name}")
        standin.container.exec_run(["sh", "-c", "kill $(cat /tmp/holder.pid)"])


# ---- files, logs, restart, teardown ------------------------------------------------------------------------


def test_logs_go_to_files_and_the_console_stays_quiet(guide: GuideRun, standin: RunningStandin) -> None:
    default_log = standin.read_file(f"{DATA}/diag/logs/imaserver-default.log")
    assert "CWLNA0900" in default_log and "CWLNA6011" in default_log
    assert "Amlen stand-in" in standin.read_file(f"{DATA}/diag/logs/imaserver_start.log")
    assert "REST POST /ima/v1/configuration" in standin.read_file(f"{DATA}/diag/logs/imaserver-admin.log")
    console = standin.logs().splitlines()
    assert 1 <= len(console) <= 40, console


def test_runs_as_uid_463_like_the_real_image(standin: RunningStandin) -> None:
    assert standin.container.exec_run(["id", "-u"]).output.decode().strip() == "463"
    owner = standin.container.exec_run(["stat", "-c", "%u:%g", f"{DATA}/data/certificates/keystore"])
    assert owner.output.decode().strip() == "463:463"


def test_restart_request_brings_the_server_and_its_endpoints_back(
    guide: GuideRun, standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    response = api.session.post(api.url("service/restart"), json={"Service": "Server"}, timeout=10)
    assert_success(response)
    seen: set[int | None] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            state = requests.get(api.url("service/status"), timeout=2).json()["Server"]["State"]
        except (requests.RequestException, ValueError):
            state = None
        seen.add(state)
        if state == 1 and seen - {1}:
            break
        time.sleep(0.1)
    assert {2, None} <= seen, f"Stopping, then refused, while restarting: {seen}"
    assert tls_mqtt_probe(standin.host_port(TLS_PORT), client_context(pki)).mqtt_accepted
    assert tls_mqtt_probe(standin.host_port(MTLS_PORT), client_context(pki, cert=pki.client)).mqtt_accepted
    assert api.get(f"Endpoint/{TLS_ENDPOINT}").status_code == 200


def test_teardown_in_the_recorded_order_removes_objects_and_files(
    standin: RunningStandin, api: AdminApi, pki: Pki
) -> None:
    cert, tls, mtls = unique("DownCert"), unique("DownTls"), unique("DownMtls")
    tls_ep, mtls_ep, ca_file = unique("DownTlsEp"), unique("DownMtlsEp"), f"{unique('ca')}.pem"
    api.put_file(f"{cert}.crt", pki.server.cert_pem)
    api.put_file(f"{cert}.key", pki.server.key_pem)
    api.put_file(ca_file, pki.ca.cert_pem)
    for body in (
        {"CertificateProfile": {cert: {"Certificate": f"{cert}.crt", "Key": f"{cert}.key"}}},
        {"SecurityProfile": {tls: tls_profile(client_certificates=False, certificate_profile=cert)}},
        {"SecurityProfile": {mtls: tls_profile(client_certificates=True, certificate_profile=cert)}},
        {"TrustedCertificate": [{"SecurityProfileName": mtls, "TrustedCertificate": ca_file}]},
        {"Endpoint": {tls_ep: endpoint(8893, tls)}},
        {"Endpoint": {mtls_ep: endpoint(8894, mtls)}},
    ):
        assert_success(api.post(body))
    keystore, truststore = f"{DATA}/data/certificates/keystore", f"{DATA}/data/certificates/truststore"
    assert standin.exists(f"{keystore}/{cert}.crt") and standin.exists(f"{truststore}/{mtls}/{ca_file}")

    for path in (
        f"Endpoint/{mtls_ep}",
        f"Endpoint/{tls_ep}",
        f"TrustedCertificate/{mtls}/{ca_file}",
        f"SecurityProfile/{mtls}",
        f"SecurityProfile/{tls}",
        f"CertificateProfile/{cert}",
    ):
        assert_success(api.delete(path))

    assert_answer(
        api.delete(f"TrustedCertificate/{mtls}/{ca_file}"),
        404,
        "CWLNA0136",
        f"The item or object cannot be found. Type: TrustedCertificate Name: {ca_file}",
    )
    assert_answer(api.delete(f"SecurityProfile/{tls}"), 404, "CWLNA0113", "The requested item is not found.")
    for path, kind, name in (
        (f"CertificateProfile/{cert}", "CertificateProfile", cert),
        (f"SecurityProfile/{mtls}", "SecurityProfile", mtls),
        (f"Endpoint/{tls_ep}", "Endpoint", tls_ep),
    ):
        assert_answer(
            api.get(path), 404, "CWLNA0136", f"The item or object cannot be found. Type: {kind} Name: {name}"
        )
    for path in (
        f"{keystore}/{cert}.crt",
        f"{keystore}/{cert}.key",
        f"{truststore}/{mtls}",
        f"{truststore}/{mtls}_capath",
        f"{truststore}/{mtls}_cafile.pem",
    ):
        assert not standin.exists(path), f"{path} is gone"
    assert not standin.listening_inside(8893) and not standin.listening_inside(8894)


# ---- a second server: no admin credentials, and docker stop ------------------------------------------------


def test_server_without_admin_credentials_refuses_password_endpoints_and_stops_quickly(
    standin_image: str,
) -> None:
    """Not recorded: CWLNA0375 needs a server without AdminUserID/Password (STANDIN_ADMIN_PASSWORD_SET=0).

    ``docker stop`` is recorded: about 1.4 s on the real server, clean exit 0.
    """
    second = start_standin(standin_image, environment={"STANDIN_ADMIN_PASSWORD_SET": "0"})
    stopped = False
    try:
        client = AdminApi(second.admin_base)
        try:
            profile = unique("Pw")
            assert_success(client.post({"SecurityProfile": {profile: {"TLSEnabled": False}}}))
            response = client.post(
                {"Endpoint": {"PwEndpoint": {**GOOD_ENDPOINT, "SecurityProfile": profile}}}
            )
            assert_answer(
                response,
                400,
                "CWLNA0375",
                "User authentication is enabled in the admin endpoint.",
                prefix=True,
            )
            # Once the server has an admin user and password, the endpoint is accepted.
            assert_success(client.post({"AdminUserID": "labadmin", "AdminUserPassword": "pw-for-0375"}))
            assert_success(
                client.post({"Endpoint": {"PwEndpoint": {**GOOD_ENDPOINT, "SecurityProfile": profile}}})
            )
        finally:
            client.close()
        took, code = stop_standin(second)
        stopped = True
        assert code == 0
        assert took < 5, f"docker stop took {took:.1f} s"
    finally:
        if not stopped:
            second.container.remove(force=True)


# ---- small helpers -----------------------------------------------------------------------------------------


def ssl_connection(
    port: int, context: ssl.SSLContext, *, server_hostname: str = SERVER_NAME
) -> ssl.SSLSocket:
    """A TLS connection to 127.0.0.1:``port``; the caller closes it (or uses it as a context manager)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return context.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def receive_all(connection: socket.socket) -> bytes:
    """Everything the peer sends until it closes."""
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def served_certificate(port: int) -> bytes:
    """The DER certificate an endpoint presents (no verification: only the bytes matter here)."""
    lenient = ssl.create_default_context()
    lenient.check_hostname, lenient.verify_mode = False, ssl.CERT_NONE
    with ssl_connection(port, lenient) as tls:
        certificate = tls.getpeercert(binary_form=True)
    assert certificate is not None
    return certificate
