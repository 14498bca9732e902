"""Revocation through a CRL profile, as recorded on a real server (reference appendix, "Revocation works
through a CRL"): ``PUT`` the CRL, ``CRLProfile`` with ``CRLSource``, the mutual security profile names it; a new
connection with the revoked certificate fails in the TLS handshake, other certificates of the same CA connect,
a client connected before stays connected.

Not recorded, from ``validate_CRLProfile.c``/``certApply.sh``/``validate_SecurityProfile.c``: the upload rules
(CWLNA6184, CWLNA6180, CWLNA6186), ``CRLProfile`` only with ``UseClientCertificate`` (CWLNA0134), and the
stand-in's stricter choice that a changed CRL reaches a running endpoint only when its security profile (or the
endpoint) is POSTed again.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.standin_helpers import (
    DATA_PATH,
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
    make_crl,
    make_pki,
    poll,
    secure_profile,
    standin_with_api,
    tls_mqtt_probe,
    tls_profile,
    unique,
)

pytestmark = pytest.mark.docker

PORT = 8890
PROFILE, ENDPOINT = "CrlMtls", "CrlPort"
CONNECTION_LOG = f"{DATA_PATH}/diag/logs/imaserver-connection.log"


@dataclass
class Lab:
    standin: RunningStandin
    api: AdminApi
    pki: Pki
    workdir: Path
    alice: Issued
    bob: Issued

    def crl(self, *revoked: Issued) -> bytes:
        return make_crl(self.pki.ca, revoked, self.workdir / f"{uuid.uuid4().hex[:6]}.crl").read_bytes()

    def probe(self, who: Issued) -> bool:
        return tls_mqtt_probe(self.standin.host_port(PORT), client_context(self.pki, cert=who)).mqtt_accepted


@pytest.fixture(scope="module")
def lab(standin_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("standin-crl")
    pki = make_pki(workdir)
    with standin_with_api(standin_image, ports=(9089, PORT)) as (standin, api):
        secure_profile(api, pki, PROFILE, client_certificates=True)
        assert_success(api.post({"Endpoint": {ENDPOINT: endpoint(PORT, PROFILE)}}))
        alice, bob = client_certificate(pki, "seat.alice"), client_certificate(pki, "seat.bob")
        yield Lab(standin, api, pki, workdir, alice, bob)


def test_crl_profile_upload_rules_and_read_back(lab: Lab) -> None:
    api, name = lab.api, unique("Rules")
    assert_answer(
        api.post({"CRLProfile": {name: {"CRLSource": "never.crl"}}}),
        400,
        "CWLNA6184",
        "Cannot find the certificate file never.crl. Make sure it has been uploaded.",
    )
    api.put_file("garbage.crl", b"not a CRL")
    assert_answer(api.post({"CRLProfile": {name: {"CRLSource": "garbage.crl"}}}), 400, "CWLNA6180")
    api.put_file("rules.crl", lab.crl())
    assert_answer(
        api.post({"CRLProfile": {name: {"CRLSource": "rules.crl", "UpdateInterval": 4}}}),
        400,
        "CWLNA0112",
        'The property value is not valid: Property: UpdateInterval Value: "4".',
    )
    assert_success(api.post({"CRLProfile": {name: {"CRLSource": "rules.crl", "RevalidateConnection": True}}}))
    assert api.get(f"CRLProfile/{name}").json() == {
        "Version": "v1",
        "CRLProfile": {name: {"CRLSource": "rules.crl", "UpdateInterval": 60, "RevalidateConnection": True}},
    }
    assert lab.standin.exists(f"{DATA_PATH}/data/certificates/CRL/{name}/rules.crl")
    assert not lab.standin.exists(f"{DATA_PATH}/userfiles/rules.crl"), "the upload is consumed"

    # The same source again without Overwrite changes only the other properties; another source needs Overwrite.
    assert_success(api.post({"CRLProfile": {name: {"CRLSource": "rules.crl", "UpdateInterval": 120}}}))
    api.put_file("other.crl", lab.crl())
    assert_answer(api.post({"CRLProfile": {name: {"CRLSource": "other.crl"}}}), 400, "CWLNA6186")
    assert_success(api.post({"CRLProfile": {name: {"CRLSource": "other.crl", "Overwrite": True}}}))
    # Overwrite without a new upload keeps the stored CRL.
    assert_success(api.post({"CRLProfile": {name: {"CRLSource": "other.crl", "Overwrite": True}}}))

    plain = tls_profile(client_certificates=False, certificate_profile=f"{PROFILE}Cert")
    assert_answer(
        api.post({"SecurityProfile": {unique("NoCC"): {**plain, "CRLProfile": name}}}),
        400,
        "CWLNA0134",
        "The value specified for the required property is invalid or null. Property: UseClientCertificate "
        "Value: false.",
    )
    mutual = tls_profile(client_certificates=True, certificate_profile=f"{PROFILE}Cert")
    assert_answer(
        api.post({"SecurityProfile": {unique("Miss"): {**mutual, "CRLProfile": "NoSuchCRL"}}}),
        404,
        "CWLNA0136",
        "The item or object cannot be found. Type: CRLProfile Name: NoSuchCRL",
    )
    user = unique("Uses")
    assert_success(api.post({"SecurityProfile": {user: {**mutual, "CRLProfile": name}}}))
    assert_answer(
        api.delete(f"CRLProfile/{name}"),
        400,
        "CWLNA0376",
        f"The Object: CRLProfile, Name: {name} is still being used by Object: SecurityProfile, Name: {user}",
    )
    assert_success(api.delete(f"SecurityProfile/{user}"))
    assert_success(api.delete(f"CRLProfile/{name}"))
    assert not lab.standin.exists(f"{DATA_PATH}/data/certificates/CRL/{name}")
    assert_answer(api.get(f"CRLProfile/{name}"), 404, "CWLNA0136")


def test_revoked_certificate_fails_the_handshake_others_connect_and_a_connected_client_stays(lab: Lab) -> None:
    api = lab.api
    connected = MqttClient(lab.standin.host_port(PORT), client_context(lab.pki, cert=lab.alice), "seat.alice-early")
    try:
        assert connected.connect() == 0 and connected.subscribe("crl/news") == [1]
        api.put_file("ca.crl", lab.crl(lab.alice))
        profile = {"CRLSource": "ca.crl", "RevalidateConnection": True, "Overwrite": True}
        assert_success(api.post({"CRLProfile": {"LabCRL": profile}}))
        assert_success(api.post({"SecurityProfile": {PROFILE: {"CRLProfile": "LabCRL"}}}))

        revoked = tls_mqtt_probe(lab.standin.host_port(PORT), client_context(lab.pki, cert=lab.alice))
        assert not revoked.mqtt_accepted
        assert "REVOKED" in str(revoked.read_error or revoked.handshake_error), revoked
        assert poll(lambda: "CWLNA1116" in lab.standin.read_file(CONNECTION_LOG))
        assert lab.probe(lab.bob), "another certificate of the same CA still connects"

        bob = MqttClient(lab.standin.host_port(PORT), client_context(lab.pki, cert=lab.bob), "seat.bob-news")
        try:
            assert bob.connect() == 0
            assert bob.publish("crl/news", b"for the early subscriber").acked
        finally:
            bob.close()
        assert connected.wait_message(b"for the early subscriber"), "the client connected before stays connected"
        assert not connected.disconnected.is_set()
    finally:
        connected.close()


def test_changed_crl_applies_once_the_security_profile_is_posted_again(lab: Lab) -> None:
    api = lab.api
    api.put_file("ca.crl", lab.crl(lab.alice, lab.bob))
    assert_success(api.post({"CRLProfile": {"LabCRL": {"CRLSource": "ca.crl", "Overwrite": True}}}))
    assert lab.probe(lab.bob), "the running endpoint still has the old CRL"
    current = api.get(f"SecurityProfile/{PROFILE}").json()["SecurityProfile"]
    assert_success(api.post({"SecurityProfile": current}))
    assert not lab.probe(lab.bob), "rebuilt with the new CRL"

    # Without the CRL profile, both certificates are fine again.
    assert_success(api.post({"SecurityProfile": {PROFILE: {"CRLProfile": ""}}}))
    assert lab.probe(lab.alice) and lab.probe(lab.bob)
