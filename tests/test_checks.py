"""The verification matrix against a real mosquitto (TLS and require_certificate listeners) and real files.

The broker stands in for Amlen's two endpoints: the rows judge TLS and MQTT behaviour, which mosquitto and
Amlen share (both refuse a missing client certificate with a TLS 1.3 alert after the handshake).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lab.clients.checks import verify
from lab.clients.mqtt import Protocol, publish, subscribe
from lab.clients.rows import CheckResult
from lab.clients.tls import tls_context
from lab.errors import CheckError
from lab.pki.leaves import ensure_certificates, make_foreign_client
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings
from tests.helpers import free_port
from tests.mosquitto_lab import Broker, other_name_certificate


def by_row(rows: list[CheckResult]) -> dict[int, list[CheckResult]]:
    grouped: dict[int, list[CheckResult]] = {}
    for row in rows:
        grouped.setdefault(row.row, []).append(row)
    return grouped


def failed_rows(rows: list[CheckResult]) -> set[int]:
    return {row.row for row in rows if not row.passed}


def test_healthy_lab_passes_every_row_with_reasons_in_words(lab_settings: Settings, broker: Broker,
                                                            hosts_entry: str) -> None:
    report = verify(lab_settings)

    assert report.passed, [r for r in report.rows if not r.passed]
    rows = by_row(report.rows)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7]
    assert {r.protocol for r in rows[1]} == {"3.1.1", "5"} == {r.protocol for r in rows[2]}
    assert all(r.actual == "5/5 received" for r in rows[1] + rows[2])
    assert "TLS alert: certificate required" in rows[3][0].detail
    assert "TLS alert: unknown CA" in rows[4][0].detail
    assert "hostname mismatch" in rows[5][0].detail
    assert rows[6][0].actual == "rejected"
    assert rows[7][0].actual == "verified" and rows[7][0].detail.startswith("verified; presented: leaf")
    assert report.seconds < 1.5
    assert json.loads(json.dumps(report.as_dict()))["passed"] is True


def test_missing_hosts_entry_fails_round_trips_by_name_but_passes_by_address(
    lab_settings: Settings, broker: Broker
) -> None:
    by_name = verify(lab_settings, protocols=[Protocol.MQTT5])
    by_address = verify(lab_settings, protocols=[Protocol.MQTT5], no_hosts=True)

    assert failed_rows(by_name.rows) == {1, 2}
    assert all("does not resolve" in r.detail and "--no-hosts" in r.detail for r in by_name.rows if r.row < 3)
    assert by_address.passed, [r for r in by_address.rows if not r.passed]
    assert by_address.no_hosts and "by address" in by_address.rows[0].name


def test_stopped_broker_turns_every_row_red(lab_settings: Settings, broker: Broker, hosts_entry: str) -> None:
    broker.stop()

    report = verify(lab_settings, timeout=2)

    assert not report.passed
    assert failed_rows(report.rows) == {1, 2, 3, 4, 5, 6, 7}
    assert all("refused" in r.detail for r in report.rows)
    assert all(r.actual == "not reached" for r in report.rows)


def test_server_certificate_for_another_name_fails_only_the_round_trips(
    lab_settings: Settings, tmp_path: Path, hosts_entry: str
) -> None:
    cert, key = other_name_certificate(lab_settings, tmp_path, "other.example.test")
    swapped = Broker(lab_settings, tmp_path)
    swapped.start(server_cert=cert, server_key=key)
    try:
        report = verify(lab_settings, protocols=[Protocol.MQTT311])
    finally:
        swapped.stop()

    assert failed_rows(report.rows) == {1, 2}
    assert all("hostname mismatch" in r.detail for r in report.rows if r.row in (1, 2))


def test_mutual_listener_trusting_another_ca_refuses_the_lab_client(
    lab_settings: Settings, tmp_path: Path, hosts_entry: str
) -> None:
    foreign_ca, _key, _cert = make_foreign_client(tmp_path / "foreign", "stranger")
    wrong = Broker(lab_settings, tmp_path)
    wrong.start(trusted_ca=foreign_ca)
    try:
        report = verify(lab_settings, protocols=[Protocol.MQTT311])
    finally:
        wrong.stop()

    assert failed_rows(report.rows) == {2}
    row2 = by_row(report.rows)[2][0]
    assert row2.actual == "refused" and "unknown CA" in row2.detail


def test_verify_without_certificates_says_which_file_and_what_to_run(tmp_path: Path) -> None:
    settings = load_settings(dir=tmp_path / "empty")

    with pytest.raises(CheckError) as caught:
        verify(settings)

    assert "myCA.pem is missing" in caught.value.message
    assert "invoke certs" in (caught.value.hint or "")


def test_subscribe_receives_what_publish_sends(lab_settings: Settings, broker: Broker) -> None:
    paths = pki_paths(lab_settings)
    context = tls_context(ca_file=paths.ca_cert, server_name=lab_settings.hostname)
    stream = subscribe(lab_settings.host_ip, lab_settings.tls_port, "topic1/#", context=context, qos=1)
    first = iter(stream)
    # The generator subscribes lazily; publish from a second client once it is connected.
    import threading

    received: list[bytes] = []

    def consume() -> None:
        for message in first:
            received.append(message.payload)
            if len(received) == 3:
                break

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.2)
    sent = publish(lab_settings.host_ip, lab_settings.tls_port, "topic1/subtopic2", ["a", "b", "c"],
                   context=tls_context(ca_file=paths.ca_cert, server_name=lab_settings.hostname), qos=1)
    thread.join(timeout=5)

    assert sent == 3
    assert received == [b"a", b"b", b"c"]


def test_publish_to_a_closed_port_is_one_clear_error(lab_settings: Settings) -> None:
    context = tls_context(ca_file=pki_paths(lab_settings).ca_cert, server_name=lab_settings.hostname)

    with pytest.raises(CheckError) as caught:
        publish(lab_settings.host_ip, free_port(), "topic1/x", ["a"], context=context)

    assert "connection refused" in caught.value.message


def _open_sockets() -> int:
    """The sockets this process holds now."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # an fd closed since the listing
            count += os.readlink(fd).startswith("socket:")
    return count


def test_two_labs_in_one_process_share_no_client_id_and_leave_no_socket_or_thread(
    lab_settings: Settings, broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several labs in one process (the pytest plugin, testcontainers, the benchmark's in-process runs): every
    connection of every matrix has a client ID of its own (a broker takes over a session whose ID comes again),
    and a finished matrix leaves no socket, paho client or thread for the next lab to meet."""
    import paho.mqtt.client as paho

    other = dataclasses.replace(lab_settings, dir=tmp_path / "other-lab", tls_port=free_port(),
                                mtls_port=free_port(), admin_port=free_port(), workshop_port=free_port())
    ensure_certificates(other)
    second = Broker(other, tmp_path / "other-broker")
    (tmp_path / "other-broker").mkdir()
    second.start()
    ids: list[str] = []
    made = paho.Client.__init__

    def recording(self: paho.Client, *args: Any, **kwargs: Any) -> None:
        ids.append(kwargs.get("client_id", ""))
        made(self, *args, **kwargs)

    monkeypatch.setattr(paho.Client, "__init__", recording)
    try:
        verify(lab_settings, no_hosts=True)  # warms what stays by design (imports, the foreign client's files)
        sockets, threads = _open_sockets(), {t.ident for t in threading.enumerate()}
        for settings in (other, lab_settings, other, lab_settings):
            report = verify(settings, no_hosts=True)
            assert report.passed, [r for r in report.rows if not r.passed]
            assert _open_sockets() <= sockets, "a matrix left a socket open"
            assert {t.ident for t in threading.enumerate()} <= threads, "a matrix left a thread running"
    finally:
        second.stop()
    # Rows 1-6 are paho clients (two round trips per protocol, four probes); row 7 is a bare handshake.
    assert len(ids) == 5 * 8 and all(re.fullmatch(r"lab-(probe|rt)-[0-9a-f]{8}", i) for i in ids), ids
    assert len(set(ids)) == len(ids), "a client ID came again"
