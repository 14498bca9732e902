"""Contract: the stand-in's admin endpoint, open and secured, as a real Amlen was seen (reference appendix,
"Observed later (2026-12-04): the admin endpoint, open and secured"; sections 2.2 and 3.10).

curl and the openssl CLI are the independent clients (what a developer types); Python requests where it is
simpler. Every secured step follows the order recorded on the real server: admin user, admin certificate, TLS and
password, trusted CA, client certificate required, CommonNames, password off; then `docker restart`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.standin_admin_helpers import (
    ADMIN,
    CSRF_BODY,
    PASSWORD,
    Admin,
    AdminPki,
    curl,
    handshake_refused,
    make_admin_pki,
    ok,
    presented,
    showcerts,
    subjects,
)
from tests.standin_helpers import (
    DATA_PATH,
    AdminApi,
    RunningStandin,
    assert_answer,
    assert_success,
    endpoint,
    poll,
    standin_with_api,
    tls_profile,
)

pytestmark = pytest.mark.docker

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> AdminPki:
    return make_admin_pki(tmp_path_factory.mktemp("admin-pki"))


@pytest.fixture
def standin(standin_image: str) -> Iterator[tuple[RunningStandin, AdminApi]]:
    with standin_with_api(standin_image, ports=(ADMIN, 8889, 8890)) as running:
        yield running


# ---- open (the default) -----------------------------------------------------------------------------------------


def test_open_defaults_as_observed(standin: tuple[RunningStandin, AdminApi]) -> None:
    _, api = standin
    endpoint = api.get("AdminEndpoint").json()["AdminEndpoint"]
    assert (endpoint["SecurityProfile"], endpoint["ConfigurationPolicies"], endpoint["Port"]) == (
        "AdminDefaultSecProfile", "AdminDefaultConfigPolicy", 9089)
    profile = api.get("SecurityProfile/AdminDefaultSecProfile").json()["SecurityProfile"]["AdminDefaultSecProfile"]
    assert {key: profile[key] for key in ("TLSEnabled", "UsePasswordAuthentication", "UseClientCertificate",
                                          "CertificateProfile", "MinimumProtocolMethod", "Ciphers")} == {
        "TLSEnabled": False, "UsePasswordAuthentication": False, "UseClientCertificate": False,
        "CertificateProfile": "AdminDefaultCertProf", "MinimumProtocolMethod": "TLSv1.2", "Ciphers": "Fast"}
    policy = api.get("ConfigurationPolicy/AdminDefaultConfigPolicy").json()["ConfigurationPolicy"]
    assert policy["AdminDefaultConfigPolicy"]["ClientAddress"] == "*"
    assert policy["AdminDefaultConfigPolicy"]["ActionList"] == "Configure,View,Monitor,Manage"
    assert api.get("AdminUserID").json() == {"Version": "v1", "AdminUserID": "admin"}
    assert_answer(api.get("AdminUserPassword"), 400, "CWLNA0137")


def test_open_port_answers_http_and_tls_with_the_default_certificate(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, _ = standin
    admin = Admin(running, pki)
    assert curl(admin.http("service/status")).status == 200
    assert curl(admin.https("service/status"), "-k").status == 200  # a ClientHello is answered with TLS
    shown = showcerts(admin.port, pki)
    assert subjects(shown) == ["C = US, OU = IBM IoT MessageSight development team, CN = IBM IoT MessageSight"]


def test_open_port_is_exposed_to_any_web_page(standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, api = standin
    admin = Admin(running, pki)
    origin = "http://evil.example"
    # A "simple" cross-origin request (text/plain, no preflight) is applied; Origin is reflected with credentials.
    applied = curl(admin.http("configuration"), "-H", f"Origin: {origin}", "-H", "Content-Type: text/plain",
                   "--data-binary", CSRF_BODY)
    ok(applied)
    assert applied.headers["access-control-allow-origin"] == origin
    assert applied.headers["access-control-allow-credentials"] == "true"
    assert api.get("MessageHub/CsrfHub").status_code == 200
    read = curl(admin.http("configuration/Endpoint"), "-H", "Origin: http://other.example")
    assert read.status == 200 and read.headers["access-control-allow-origin"] == "http://other.example"
    preflight = curl(admin.http("configuration/Endpoint/DemoEndpoint"), "-X", "OPTIONS", "-H", f"Origin: {origin}",
                     "-H", "Access-Control-Request-Method: DELETE")
    assert preflight.status == 200
    assert (preflight.headers["access-control-allow-methods"], preflight.headers["access-control-allow-headers"],
            preflight.headers["access-control-max-age"]) == ("GET, PUT, POST, DELETE", "content-type", "1728000")
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in curl(admin.http("service/status")).headers
    # DNS rebinding: the Host header is not checked.
    assert curl(admin.http("service/status"), "-H", f"Host: rebind.evil.example:{ADMIN}").status == 200


def test_admin_user_is_accepted_and_its_password_never_read_back_or_stored(
        standin: tuple[RunningStandin, AdminApi]) -> None:
    running, api = standin
    assert_success(api.post({"AdminUserID": "labadmin", "AdminUserPassword": PASSWORD}))
    assert api.get("AdminUserID").json() == {"Version": "v1", "AdminUserID": "labadmin"}
    assert_answer(api.get("AdminUserPassword"), 400, "CWLNA0137")
    assert_answer(api.post({"AdminUserPassword": 7}), 400, "CWLNA0127")
    stored = running.read_file(f"{DATA_PATH}/data/config/standin-admin.json")
    assert "labadmin" in stored and PASSWORD not in stored and "pbkdf2-sha256$" in stored


# ---- secured, in the recorded order, then restarted ------------------------------------------------------------


def _secure_with_password(api: AdminApi, pki: AdminPki) -> float:
    """Admin user, admin certificate, TLS + password; seconds from the POST's answer to the first HTTPS 200."""
    assert_success(api.post({"AdminUserID": "labadmin", "AdminUserPassword": PASSWORD}))
    api.put_file("admin.pem", Path(pki.path("admin.pem")).read_bytes())
    api.put_file("admin.key", Path(pki.path("admin.key")).read_bytes())
    assert_success(api.post({"CertificateProfile": {"AdminLabCert": {"Certificate": "admin.pem", "Key": "admin.key"}}}))
    answer = requests.post(api.url("configuration"), timeout=30, json={"SecurityProfile": {"AdminDefaultSecProfile": {
        "CertificateProfile": "AdminLabCert", "TLSEnabled": True, "UsePasswordAuthentication": True}},
        "AdminEndpoint": {"SecurityProfile": "AdminDefaultSecProfile"}})
    answered = time.monotonic()
    assert answer.status_code == 200 and answer.json()["Code"] == "CWLNA6011"  # over plain HTTP, the old transport
    url = api.url("service/status").replace("http://", "https://")
    while True:
        try:
            if requests.get(url, verify=pki.path("myCA.pem"), auth=("labadmin", PASSWORD), timeout=5).ok:
                return time.monotonic() - answered
        except requests.RequestException:
            pass
        assert time.monotonic() - answered < 30, "HTTPS never answered"
        time.sleep(0.005)


def test_secured_admin_plane_step_by_step_and_after_restart(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, api = standin
    admin = Admin(running, pki)
    switch = _secure_with_password(api, pki)
    print(f"TLS + password answered {switch * 1000:.0f} ms after the POST's answer (real Amlen: 31-33 ms)")

    # TLS + password: plain HTTP gets no answer; Basic against AdminUserID/AdminUserPassword.
    plain = curl(admin.http("service/status"))
    assert plain.status == 0 and plain.exit_code in (52, 56), plain
    denied = admin.tls("service/status")
    assert (denied.status, denied.body) == (401, "Not authorized")
    assert (admin.tls("service/status", password="wrong").status, admin.tls("service/status", password="wrong").body
            ) == (401, "Bad request")
    other = admin.tls("service/status", "-u", f"admin:{PASSWORD}")
    assert (other.status, other.body) == (401, "Bad request")
    for path in ("service/status", "configuration/Endpoint", "monitor/Endpoint"):
        assert admin.tls(path, password=PASSWORD).status == 200, path
    ok(admin.post({"MessageHub": {"PasswordHub": {}}}))
    ok(admin.put("labca.pem", "myCA.pem", password=PASSWORD))
    shown = showcerts(admin.port, pki, "-verify_return_error", "-verify_ip", "127.0.0.1")
    assert shown.returncode == 0 and subjects(shown)[0] == "CN = localhost", shown.stdout + shown.stderr

    # Client certificates: trusted CA first, then required (the password still on).
    ok(admin.post({"TrustedCertificate": [{"SecurityProfileName": "AdminDefaultSecProfile",
                                            "TrustedCertificate": "labca.pem", "Overwrite": True}]}))
    ok(admin.post({"SecurityProfile": {"AdminDefaultSecProfile": {"UseClientCertificate": True}}}))
    poll(lambda: admin.tls("service/status", password=PASSWORD).status == 0, timeout=10)
    handshake_refused(admin.tls("service/status", password=PASSWORD))
    handshake_refused(admin.tls("service/status", who="stranger", password=PASSWORD))  # another CA, same CN
    assert admin.tls("service/status", who="lab.admin", password=PASSWORD).status == 200
    cert_only = admin.tls("service/status", who="lab.admin")
    assert (cert_only.status, cert_only.body) == (401, "Not authorized")

    # CommonNames, then the password off.
    ok(admin.post({"ConfigurationPolicy": {"AdminDefaultConfigPolicy": {"CommonNames": "lab.admin"}}},
                   who="lab.admin"))
    intruder = admin.tls("service/status", who="intruder", password=PASSWORD)
    assert (intruder.status, intruder.body) == (401, "Bad request")
    assert admin.tls("service/status", who="lab.admin", password=PASSWORD).status == 200
    ok(admin.post({"SecurityProfile": {"AdminDefaultSecProfile": {"UsePasswordAuthentication": False}}},
                   who="lab.admin"))
    poll(lambda: admin.tls("service/status", who="lab.admin").status == 200, timeout=10)
    _check_mutual_tls_only(admin)

    # docker restart: all of it holds.
    running.container.restart(timeout=10)
    began = time.monotonic()
    poll(lambda: admin.tls("service/status", who="lab.admin").status == 200, timeout=60, interval=0.05)
    print(f"mutual TLS answered {time.monotonic() - began:.2f} s after docker restart returned (real: 0.63 s)")
    poll(lambda: '"State": 1,' in admin.tls("service/status", who="lab.admin").body, timeout=60)
    _check_mutual_tls_only(admin)
    assert admin.tls("configuration/MessageHub/PasswordHub", who="lab.admin").status == 200
    assert json.loads(admin.tls("configuration/AdminUserID", who="lab.admin").body)["AdminUserID"] == "labadmin"
    with requests.Session() as session:
        session.cert = (pki.path("lab.admin.pem"), pki.path("lab.admin.key"))
        url, ca = admin.https("service/status"), pki.path("myCA.pem")  # verify per call: the env may override
        began = time.monotonic()
        for _ in range(20):
            assert session.get(url, verify=ca, timeout=30).status_code == 200
        print(f"20 status calls on one keep-alive mutual-TLS connection: {time.monotonic() - began:.3f} s "
              "(real: 0.024 s)")
    began = time.monotonic()
    for _ in range(20):
        assert requests.get(url, verify=ca, cert=session.cert, timeout=30).status_code == 200
    print(f"20 status calls, a new mutual-TLS connection each: {time.monotonic() - began:.3f} s (real: 0.27 s)")


def _check_mutual_tls_only(admin: Admin) -> None:
    assert admin.tls("service/status", who="lab.admin").status == 200
    assert admin.tls("monitor/Endpoint", who="lab.admin").status == 200
    ok(admin.post({"MessageHub": {"MutualHub": {}}}, who="lab.admin", password=None))
    intruder = admin.tls("service/status", who="intruder")
    assert (intruder.status, intruder.body) == (401, "Bad request")
    handshake_refused(admin.tls("service/status"))
    handshake_refused(admin.tls("configuration", "-H", "Origin: http://evil.example", "-H",
                                 "Content-Type: text/plain", "--data-binary", CSRF_BODY))
    plain = curl(admin.http("service/status"))
    assert plain.status == 0, plain


def test_common_names_before_the_certificate_locks_a_password_client_out(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, api = standin
    admin = Admin(running, pki)
    _secure_with_password(api, pki)
    ok(admin.post({"ConfigurationPolicy": {"AdminDefaultConfigPolicy": {"CommonNames": "lab.admin"}}}))
    locked = admin.tls("service/status", password=PASSWORD)
    assert (locked.status, locked.body) == (401, "Bad request")


# ---- the guide's one-tier chains (same appendix section) ------------------------------------------------------


def test_one_tier_endpoints_present_leaf_alone_and_leaf_then_trusted_ca(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    """8889 (no trusted certificate) presents the leaf alone; 8890 (myCA.pem trusted) the leaf and then myCA.pem:
    OpenSSL builds the chain from the profile's trusted certificates, as on the real server."""
    running, api = standin
    api.put_file("server.pem", Path(pki.path("server.pem")).read_bytes())
    api.put_file("server.key", Path(pki.path("server.key")).read_bytes())
    assert_success(api.post({"CertificateProfile": {"OneTier": {"Certificate": "server.pem", "Key": "server.key"}}}))
    assert_success(api.post({"SecurityProfile": {
        "OneTierTls": tls_profile(client_certificates=False, certificate_profile="OneTier"),
        "OneTierMtls": tls_profile(client_certificates=True, certificate_profile="OneTier")}}))
    api.put_file("myCA.pem", Path(pki.path("myCA.pem")).read_bytes())
    assert_success(api.post({"TrustedCertificate": [{"SecurityProfileName": "OneTierMtls",
                                                      "TrustedCertificate": "myCA.pem", "Overwrite": True}]}))
    assert_success(api.post({"Endpoint": {"OneTier8889": endpoint(8889, "OneTierTls"),
                                          "OneTier8890": endpoint(8890, "OneTierMtls")}}))
    server, ca = "CN = testserver.getting.started", "CN = Admin Test CA"
    for port, expected in ((8889, [server]), (8890, [server, ca])):
        shown = poll(lambda port=port: presented(running.host_port(port), pki))
        assert subjects(shown) == expected, (port, shown.stdout)
        assert "Verify return code: 0 (ok)" in shown.stdout, shown.stdout


# ---- ConfigurationPolicy: the object, its validation, and the actions it allows ---------------------------------


def test_configuration_policy_validation_and_deletion_rules(standin: tuple[RunningStandin, AdminApi]) -> None:
    _, api = standin

    def policy(props: object) -> requests.Response:
        return api.post({"ConfigurationPolicy": {"LabPolicy": props}})

    assert_answer(policy({"ClientAddress": "*"}), 400, "CWLNA0134")  # ActionList is required
    assert_answer(policy({"ClientAddress": "*", "ActionList": "Publish"}), 400, "CWLNA0112")
    assert_answer(policy({"ClientAddress": "*", "ActionList": True}), 400, "CWLNA0127")
    assert_answer(policy({"ActionList": "View"}), 400, "CWLNA0139")  # at least one filter
    assert_answer(policy({"ClientAddress": "not-an-address", "ActionList": "View"}), 400, "CWLNA0112")
    assert_answer(policy({"UserID": "lab**", "ActionList": "View"}), 400, "CWLNA0112")
    assert_answer(policy({"ClientID": "x", "ActionList": "View"}), 400, "CWLNA0138")
    # As Amlen's own REST tests (fvt_scripts/restapi/test/security/restapi-ConfigurationPolicy.js) expect:
    assert_answer(policy({"UserID": "*", "ActionList": "Configure, Manage"}), 400, "CWLNA0112",
                  'The property value is not valid: Property: ActionList Value: "Configure, Manage".')
    assert_answer(policy({"UserID": "*", "ActionList": None}), 400, "CWLNA0112")
    assert_answer(api.post({"ConfigurationPolicy": None}), 400, "CWLNA0137",
                  'The REST API call: "ConfigurationPolicy":null is not valid.')
    assert_answer(policy({"ClientAddress": "[127.0.0.1]", "ActionList": "View"}), 400, "CWLNA0112")
    assert_answer(policy({"ClientAddress": "[2607:f0d0::bbb]-[2607:f0d0::aaa]", "ActionList": "View"}), 400,
                  "CWLNA0112")
    many = ",".join(f"10.0.0.{n}" for n in range(1, 102))
    assert_answer(policy({"ClientAddress": many, "ActionList": "View"}), 400, "CWLNA0371",
                  "The number of client addresses exceeds the maximum number allowed: 100.")
    assert_answer(policy({"UserID": "u" * 1025, "ActionList": "View"}), 400, "CWLNA0144")
    assert_answer(policy({"ClientAddress": "", "UserID": None, "GroupID": "", "CommonNames": None,
                          "ActionList": "Manage"}), 400, "CWLNA0139",
                  "The object: ConfigurationPolicy must have one of the properties ClientAddress,UserID,GroupID,"
                  "CommonNames specified")
    assert_answer(api.post({"ConfigurationPolicy": {"Trailing ": {"ActionList": "View", "ClientAddress": "*"}}}),
                  400, "CWLNA0115")
    assert_success(policy({"ClientAddress": "2607:f0d0:1202:10e:47b:eaff:fe8f:aaa", "ActionList": "View"}))
    assert api.get("ConfigurationPolicy/LabPolicy").json()["ConfigurationPolicy"]["LabPolicy"] == {
        "ActionList": "View", "ClientAddress": "2607:f0d0:1202:10e:47b:eaff:fe8f:aaa", "UserID": "",
        "GroupID": "", "CommonNames": "", "Description": ""}
    assert api.get("ConfigurationPolicy").json()["ConfigurationPolicy"]["AdminDefaultConfigPolicy"] == {
        "Description": "Default configuration policy for AdminEndpoint", "ClientAddress": "*",
        "ActionList": "Configure,View,Monitor,Manage"}
    assert_success(policy({"CommonNames": "lab.admin", "ClientAddress": "127.0.0.1,10.0.0.1-10.0.0.9",
                           "ActionList": "View,Monitor", "Description": "lab"}))
    read = api.get("ConfigurationPolicy/LabPolicy").json()["ConfigurationPolicy"]["LabPolicy"]
    assert (read["CommonNames"], read["ActionList"], read["Description"]) == ("lab.admin", "View,Monitor", "lab")
    assert_answer(api.delete("ConfigurationPolicy/AdminDefaultConfigPolicy"), 403, "CWLNA0372")
    assert_answer(api.post({"AdminEndpoint": {"ConfigurationPolicies": "Missing"}}), 404, "CWLNA0136")
    assert_answer(api.post({"AdminEndpoint": {"SecurityProfile": "Missing"}}), 404, "CWLNA0136")
    assert_answer(api.post({"AdminEndpoint": {"Port": "9089"}}), 400, "CWLNA0127")
    assert_answer(api.delete("AdminEndpoint"), 403, "CWLNA0372")
    assert_success(api.post({"AdminEndpoint": {"ConfigurationPolicies": "AdminDefaultConfigPolicy,LabPolicy"}}))
    assert api.get("AdminEndpoint").json()["AdminEndpoint"]["ConfigurationPolicies"] == (
        "AdminDefaultConfigPolicy,LabPolicy")
    assert_answer(api.delete("ConfigurationPolicy/LabPolicy"), 400, "CWLNA0376")
    assert_success(api.post({"AdminEndpoint": {"ConfigurationPolicies": "AdminDefaultConfigPolicy"}}))
    assert_success(api.delete("ConfigurationPolicy/LabPolicy"))
    assert_answer(api.get("ConfigurationPolicy/LabPolicy"), 404, "CWLNA0136")


def test_action_list_decides_which_requests_a_matching_policy_allows(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    """From restApi.c: GET of configuration, monitor and status needs any action; POST/DELETE of configuration
    Configure; file PUT and service POST Configure or Manage. A matching policy without it: 400 CWLNA0180."""
    running, api = standin
    admin = Admin(running, pki)
    assert_success(api.post({"ConfigurationPolicy": {
        "ViewAll": {"ClientAddress": "*", "ActionList": "View"},
        "Writer": {"UserID": "writer", "ActionList": "Configure"}}}))
    assert_success(api.post({"AdminEndpoint": {"ConfigurationPolicies": "ViewAll,Writer"}}))
    for path in ("configuration/Endpoint", "monitor/Endpoint", "service/status"):
        assert curl(admin.http(path)).status == 200, path
    hub = ["-H", "Content-Type: application/json", "--data-binary", '{"MessageHub":{"ViewerHub":{}}}']
    refused = curl(admin.http("configuration"), *hub)
    assert (refused.status, refused.json()["Code"]) == (400, "CWLNA0180"), refused
    assert curl(admin.http("file/x.pem"), "-T", pki.path("myCA.pem")).json()["Code"] == "CWLNA0180"
    assert curl(admin.http("configuration/MessageHub/DemoHub"), "-X", "DELETE").json()["Code"] == "CWLNA0180"
    restart = ["-H", "Content-Type: application/json", "--data-binary", '{"Service":"Server"}']
    assert curl(admin.http("service/restart"), *restart).json()["Code"] == "CWLNA0180"
    # Without password authentication the Basic user is not verified, but it is what UserID filters see.
    ok(curl(admin.http("configuration"), "-u", "writer:anything", *hub))
    # A policy set whose filters match no request: everything is 401 "Bad request" from the next request on.
    ok(curl(admin.http("configuration"), "-u", "writer:x", "--data-binary", json.dumps({"ConfigurationPolicy": {
        "Elsewhere": {"ClientAddress": "10.9.9.9", "ActionList": "Configure,View,Monitor,Manage"}}})))
    ok(curl(admin.http("configuration"), "-u", "writer:x", "--data-binary",
             '{"AdminEndpoint":{"ConfigurationPolicies":"Elsewhere"}}'))
    locked = curl(admin.http("service/status"))
    assert (locked.status, locked.body) == (401, "Bad request")


def test_a_keep_alive_client_is_moved_to_the_new_transport(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    """The answer that switches the transport says `Connection: close`; an idle kept-alive connection from before
    the switch is closed, so no plain-HTTP request is answered after it."""
    running, api = standin
    admin = Admin(running, pki)
    assert_success(api.post({"AdminUserID": "labadmin", "AdminUserPassword": PASSWORD}))
    api.put_file("admin.pem", Path(pki.path("admin.pem")).read_bytes())
    api.put_file("admin.key", Path(pki.path("admin.key")).read_bytes())
    assert_success(api.post({"CertificateProfile": {"AdminLabCert": {"Certificate": "admin.pem", "Key": "admin.key"}}}))
    with requests.Session() as idle, requests.Session() as switcher:
        assert idle.get(admin.http("service/status"), timeout=30).status_code == 200
        answer = switcher.post(admin.http("configuration"), timeout=30, json={"SecurityProfile": {
            "AdminDefaultSecProfile": {"CertificateProfile": "AdminLabCert", "TLSEnabled": True,
                                       "UsePasswordAuthentication": True}}})
        assert answer.status_code == 200 and answer.headers["Connection"] == "close"
        poll(lambda: admin.tls("service/status", password=PASSWORD).status == 200, timeout=10)
        for session in (idle, switcher):
            with pytest.raises(requests.ConnectionError):
                session.get(admin.http("service/status"), timeout=30)
        switcher.auth = ("labadmin", PASSWORD)
        assert switcher.get(admin.https("service/status"), verify=pki.path("myCA.pem"), timeout=30).ok


def test_the_admin_endpoint_may_use_another_security_profile_which_it_then_holds(
        standin: tuple[RunningStandin, AdminApi], pki: AdminPki) -> None:
    running, api = standin
    admin = Admin(running, pki)
    assert_success(api.post({"AdminUserID": "labadmin", "AdminUserPassword": PASSWORD}))
    api.put_file("admin.pem", Path(pki.path("admin.pem")).read_bytes())
    api.put_file("admin.key", Path(pki.path("admin.key")).read_bytes())
    assert_success(api.post({"CertificateProfile": {"AdminLabCert": {"Certificate": "admin.pem", "Key": "admin.key"}},
                             "SecurityProfile": {"AdminLabSec": {"CertificateProfile": "AdminLabCert"}}}))
    assert curl(admin.http("service/status")).status == 200  # a new profile alone changes nothing
    assert_success(api.post({"AdminEndpoint": {"SecurityProfile": "AdminLabSec"}}))
    poll(lambda: admin.tls("service/status", password=PASSWORD).status == 200, timeout=10)
    assert curl(admin.http("service/status")).status == 0  # TLSEnabled and UsePasswordAuthentication: defaults true
    in_use = admin.tls("configuration/SecurityProfile/AdminLabSec", "-X", "DELETE", password=PASSWORD)
    assert (in_use.status, in_use.json()["Code"]) == (400, "CWLNA0376"), in_use
    assert admin.tls("configuration/AdminEndpoint", password=PASSWORD).json()["AdminEndpoint"][
        "SecurityProfile"] == "AdminLabSec"
