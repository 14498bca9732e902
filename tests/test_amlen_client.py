"""The admin client's pure parts: Amlen's JSON shapes, readiness, and a hint for every recorded error code."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from lab.amlen.admin import CODE_HINTS, AmlenClient, AmlenObject, is_ready, payload
from lab.errors import AmlenError

# Every error code the reference records (amlen-admin-api.md, section 2.3 and the appendix tables).
# Left out on purpose: CWLNA6011 (success) and CWLNA0900/1102/1116/6013 (log messages, never API answers).
RECORDED_ERROR_CODES = (
    "CWLNA0100", "CWLNA0111", "CWLNA0112", "CWLNA0113", "CWLNA0115", "CWLNA0122", "CWLNA0127", "CWLNA0133",
    "CWLNA0134", "CWLNA0136", "CWLNA0137", "CWLNA0138", "CWLNA0139", "CWLNA0155", "CWLNA0186", "CWLNA0333",
    "CWLNA0334", "CWLNA0372",
    "CWLNA0375", "CWLNA0376", "CWLNA0379", "CWLNA0431", "CWLNA0433", "CWLNA0438", "CWLNA0440", "CWLNA0451",
    "CWLNA0452", "CWLNA0456", "CWLNA6001", "CWLNA6180", "CWLNA6182", "CWLNA6183", "CWLNA6184", "CWLNA6185",
    "CWLNA6186", "CWLNA6189", "CWLNA6190", "CWLNA6191", "CWLNA6192", "CWLNA6193", "CWLNA6205", "CWLNA6206",
    "CWLNA6207",
)


def test_every_recorded_error_code_has_a_hint() -> None:
    assert sorted(set(RECORDED_ERROR_CODES) - set(CODE_HINTS)) == []
    assert all(hint and not hint.endswith(".") for hint in CODE_HINTS.values())


def test_named_object_payload_is_type_name_properties() -> None:
    obj = AmlenObject("Endpoint", "TLSTestPort", {"Port": 8889, "Enabled": True})
    assert payload(obj) == {"Endpoint": {"TLSTestPort": {"Port": 8889, "Enabled": True}}}


def test_trusted_certificate_payload_is_the_array_form() -> None:
    obj = AmlenObject("TrustedCertificate", "TestServerMutualAuthSecProfile/myCA.pem", {"Overwrite": True})
    assert payload(obj) == {"TrustedCertificate": [
        {"SecurityProfileName": "TestServerMutualAuthSecProfile", "TrustedCertificate": "myCA.pem", "Overwrite": True}
    ]}


@pytest.mark.parametrize(
    ("server", "ready"),
    [
        ({"State": 1, "ErrorCode": 0, "Status": "Running"}, True),
        ({"State": 9, "ErrorCode": 0, "Status": "Running"}, False),  # maintenance also says Running
        ({"State": 11, "ErrorCode": 0}, False),
        ({"State": 1, "ErrorCode": 1}, False),
        ({}, False),
    ],
)
def test_ready_means_state_1_and_no_error(server: dict[str, object], ready: bool) -> None:
    assert is_ready({"Server": server}) is ready


class _Recorder(BaseHTTPRequestHandler):
    """A tiny HTTP peer that answers like Amlen and remembers what it was sent."""

    seen: ClassVar[list[tuple[str, str, bytes, str]]] = []
    answers: ClassVar[dict[tuple[str, str], tuple[int, dict[str, object]]]] = {}

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).seen.append((self.command, self.path, body, self.headers.get("Content-Type", "")))
        status, answer = type(self).answers.get((self.command, self.path.split("?")[0]), (200, {
            "Version": "v1", "Code": "CWLNA6011",
            "Message": "The requested configuration change has completed successfully."}))
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def peer() -> Iterator[str]:
    _Recorder.seen = []
    _Recorder.answers = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_apply_uploads_raw_files_then_posts_json(peer: str) -> None:
    obj = AmlenObject("CertificateProfile", "P", {"Certificate": "c.crt", "Key": "c.key", "Overwrite": True},
                      uploads={"c.crt": b"CERT", "c.key": b"KEY"})
    with AmlenClient(peer) as amlen:
        amlen.apply(obj)
    methods = [(m, p) for m, p, _, _ in _Recorder.seen]
    assert methods == [("PUT", "/ima/v1/file/c.crt"), ("PUT", "/ima/v1/file/c.key"), ("POST", "/ima/v1/configuration")]
    assert _Recorder.seen[0][2] == b"CERT" and "multipart" not in _Recorder.seen[0][3]
    assert json.loads(_Recorder.seen[2][2]) == payload(obj)


def test_error_code_becomes_a_sentence_with_the_object_and_a_hint(peer: str) -> None:
    _Recorder.answers[("POST", "/ima/v1/configuration")] = (400, {
        "Version": "v1", "Code": "CWLNA0456",
        "Message": "UseClientCertificate is enabled in the SecurityProfile. A Trusted Certificate or a Client "
                   "Certificate must be associated with the SecurityProfile."})
    with AmlenClient(peer) as amlen, pytest.raises(AmlenError) as info:
        amlen.apply(AmlenObject("Endpoint", "ClientCertsTLS", {"Port": 8890}))
    error = info.value
    assert error.code == "CWLNA0456" and error.status == 400
    assert "Endpoint ClientCertsTLS" in error.message and "CWLNA0456" in error.message
    assert error.hint == CODE_HINTS["CWLNA0456"]


def test_get_and_delete_of_missing_objects_are_not_errors(peer: str) -> None:
    missing = {"Version": "v1", "Code": "CWLNA0136", "Message": "The item or object cannot be found."}
    _Recorder.answers[("GET", "/ima/v1/configuration/Endpoint/Nope")] = (404, missing)
    _Recorder.answers[("DELETE", "/ima/v1/configuration/Endpoint/Gone")] = (404, {
        "Version": "v1", "Code": "CWLNA0113", "Message": "The requested item is not found."})
    _Recorder.answers[("GET", "/ima/v1/monitor/Endpoint")] = (500, {
        "Version": "v1", "Code": "CWLNA0100", "Message": "System error"})
    with AmlenClient(peer) as amlen:
        assert amlen.get("Endpoint", "Nope") is None
        assert amlen.delete("Endpoint", "Gone") is False
        assert amlen.endpoint_monitor("Gone") is None  # Amlen answers 500 for an endpoint that does not exist


def test_unreachable_admin_api_is_a_lab_error_with_a_hint() -> None:
    with AmlenClient("http://127.0.0.1:9", timeout=1) as amlen, pytest.raises(AmlenError) as info:
        amlen.status()
    assert "did not answer" in info.value.message and info.value.hint


def test_connection_monitor_is_asked_per_endpoint_and_a_missing_endpoint_has_none(peer: str) -> None:
    entry = {"Name": "seat.01-sub", "Endpoint": "WorkshopSeats", "ReadMsg": 2, "WriteMsg": 5}
    _Recorder.answers[("GET", "/ima/v1/monitor/Connection")] = (200, {"Version": "v1", "Connection": [entry]})
    with AmlenClient(peer) as amlen:
        assert amlen.connections("WorkshopSeats") == [entry]
        assert _Recorder.seen[-1][1] == "/ima/v1/monitor/Connection?Endpoint=WorkshopSeats"
        _Recorder.answers[("GET", "/ima/v1/monitor/Connection")] = (500, {
            "Version": "v1", "Code": "CWLNA0100", "Message": "System error"})
        assert amlen.connections("NotThere") == []
