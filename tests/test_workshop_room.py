"""A room of 60 seats on the real Docker engine and the stand-in: the rehearsal, the status past Amlen's monitor
limits (50 connections per call, 100 subscriptions per page), the connection cache's rebuilds, the watch.

The stand-in rebuilds its connection monitor cache every 60 s, as Amlen does; this module's image shortens that
to `INTERVAL` (STANDIN_CONN_MONITOR_INTERVAL) so the tests that need a rebuild get one in seconds. Every wait is a
deadline on an event, and every claim about the cache is checked against the time it says it was built
(`details_as_of`), never against how long the test slept.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lab.amlen.adminsec import admin_client
from tests.conftest import INVOKE, ROOT, LabEnv, standin_variant
from tests.helpers import default_signals, ignored_signals
from tests.workshop_helpers import Probe, running_room

SEATS = 60  # more than the connection monitor's 50 per call; two subscriptions each pass a page of 100
INTERVAL = 4


@pytest.fixture(scope="module")
def fast_cache_image(standin_image: str) -> str:
    """The stand-in with its connection monitor cache rebuilt every INTERVAL seconds instead of 60."""
    return standin_variant(standin_image, f"cache{INTERVAL}", STANDIN_CONN_MONITOR_INTERVAL=str(INTERVAL))


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory, fast_cache_image: str) -> Iterator[LabEnv]:
    with running_room(LabEnv.new(tmp_path_factory.mktemp("room") / "lab", fast_cache_image), SEATS) as lab:
        yield lab


def names() -> list[str]:
    return [f"{number:02d}" for number in range(1, SEATS + 1)]


def probe(lab: LabEnv, name: str, client_id: str) -> Probe:
    bundle = lab.dir / "workshop" / name
    return Probe(ca=bundle / "myCA.pem", cert=bundle / f"seat.{name}.crt", key=bundle / f"seat.{name}.key",
                 client_id=client_id, server_name=lab.hostname)


def status(lab: LabEnv) -> dict[str, Any]:
    result = lab.invoke("workshop", "--status", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def as_of(data: dict[str, Any]) -> dt.datetime | None:
    return dt.datetime.fromisoformat(data["details_as_of"]) if data["details_as_of"] else None


SECOND = dt.timedelta(seconds=1)  # `details_as_of` is to the second (rounded down)


def rebuilt_after(lab: LabEnv, moment: dt.datetime, *, timeout: float = 90) -> dict[str, Any]:
    """The first status whose connection details were surely built after `moment` (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        data = status(lab)
        built = as_of(data)
        if built is not None and built > moment:
            return data
        assert time.monotonic() < deadline, f"no connection cache rebuild after {moment}: {data['details_as_of']}"
        time.sleep(0.5)


def built_before(data: dict[str, Any], moment: dt.datetime) -> bool:
    """Whether these connection details were surely built before `moment`."""
    built = as_of(data)
    return built is not None and built + SECOND <= moment


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def wait_active(lab: LabEnv, count: int) -> None:
    """Until the endpoint (live) counts `count` connections: the server has handled every other close."""
    deadline = time.monotonic() + 60
    while status(lab)["active"] != count:
        assert time.monotonic() < deadline, "connections stay active on the endpoint"
        time.sleep(0.2)


def test_rehearsal_of_the_whole_room_passes_and_leaves_nothing_behind(room: LabEnv) -> None:
    result = room.invoke("workshop", "--rehearse", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    assert f"seats ok │ {SEATS} of {SEATS}" in said and f"received by {SEATS}" in said
    assert "no rehearsal client left" in said and "the room is ready" in said
    assert "FAILED" not in said
    with admin_client(room.settings()) as amlen:
        assert amlen.subscriptions(ClientID="*-rh*", ResultCount="100") == []
        assert amlen.subscriptions(SubType="Durable", ResultCount="100") == []


def test_status_names_every_seat_past_the_monitors_limits(room: LabEnv) -> None:
    clients = {name: probe(room, name, f"seat.{name}-sub") for name in names()}

    def join(name: str) -> None:
        client = clients[name]
        assert client.connect("127.0.0.1", room.workshop_port) == "accepted", name
        assert client.subscribe(f"workshop/seat.{name}/#") in ([1], [0])
        assert client.subscribe("workshop/all/#") in ([1], [0])

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(join, names()))
        joined = now()
        # Live: right after the last SUBACK, one status names all 60 (120 subscriptions: two pages and more).
        data = status(room)
        assert [seat["name"] for seat in data["seats"] if seat["connected"]] == names()
        assert all(seat["sources"]["connected"] == "subscription monitor (live)" for seat in data["seats"])
        assert data["active"] >= SEATS and data["subscriptions_complete"] is True
        # Details: 60 connections, at most 50 per ordering; the orderings together name them all.
        data = rebuilt_after(room, joined)
        seats = {seat["name"]: seat for seat in data["seats"]}
        assert all(seats[name]["since"] and seats[name]["address"] for name in names()), data
        assert data["details_complete"] is True
        shown = room.invoke("workshop", "--status")
        assert f"{SEATS} seats, {SEATS} connected now ({SEATS} subscribed" in shown.stdout
        assert "connection details (since, address, bytes) as of" in shown.stdout
    finally:
        for client in clients.values():
            client.close()


def seven(data: dict[str, Any]) -> dict[str, Any]:
    return next(seat for seat in data["seats"] if seat["name"] == "07")


def test_a_seat_connected_without_subscribing_is_counted_then_named(room: LabEnv) -> None:
    # A marker stays connected throughout: an empty connection list carries no time of its own.
    marker = probe(room, "08", "seat.08-marker")
    quiet = probe(room, "07", "seat.07-quiet")
    try:
        wait_active(room, 0)
        assert marker.connect("127.0.0.1", room.workshop_port) == "accepted"
        before = now()
        assert quiet.connect("127.0.0.1", room.workshop_port) == "accepted"
        connected = now()
        data = status(room)
        assert data["active"] == 2, "the endpoint counts it at once"
        if built_before(data, before):
            assert "seat.07-quiet" not in seven(data)["client_ids"], "named before a rebuild that could see it"
        data = rebuilt_after(room, connected)
        assert seven(data)["connected"] is True and seven(data)["client_ids"] == ["seat.07-quiet"]
        assert seven(data)["sources"]["connected"].startswith("connection monitor (as of")
        assert seven(data)["subscriptions"] == [] and seven(data)["since"]
        before_close = now()
        quiet.close()
        data = status(room)
        built = as_of(data)
        if built is not None and connected < built and built + SECOND <= before_close:
            assert "seat.07-quiet" in seven(data)["client_ids"], "gone before the next rebuild"
        wait_active(room, 1)
        data = rebuilt_after(room, now())
        assert seven(data)["connected"] is False and "seat.08-marker" in json.dumps(data)
    finally:
        quiet.close()
        marker.close()


def test_watch_redraws_the_room_until_ctrl_c(room: LabEnv) -> None:
    env = {**room.env, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "100", "LINES": "40"}
    watcher = subprocess.Popen([INVOKE, "-r", str(ROOT), "workshop", "--status", "--watch"], env=env,
                               cwd=room.dir.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=default_signals)  # Ctrl-C reaches it even if ours is ignored
    assert watcher.stdout is not None
    assert signal.SIGINT not in ignored_signals(watcher.pid), "the watch must get the Ctrl-C this test sends"
    seen = b""
    deadline = time.monotonic() + 120
    try:
        while seen.count(b"seats here") < 2 and time.monotonic() < deadline:  # the first frame and a redraw
            chunk = os.read(watcher.stdout.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            rest, err = watcher.communicate(timeout=60)
        finally:
            watcher.kill()  # a no-op once it ended; never a watch left running after a failure
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", (seen + rest).decode(errors="replace"))  # colours, cursor
    assert watcher.returncode == 0, err.decode(errors="replace")
    assert text.count("seats here") >= 2, text[-2000:]
    assert f"/{SEATS} seats here" in text and "01" in text and f"{SEATS:02d}" in text
    assert "Traceback" not in text + err.decode(errors="replace")


def test_rehearsal_names_a_revoked_seat_and_a_bundle_without_its_key(room: LabEnv) -> None:
    assert room.invoke("workshop", "--revoke", "05").returncode == 0
    (room.dir / "workshop" / "04" / "seat.04.key").unlink()
    # Another seat's broken bundle does not stop a revocation (it changes no bundle).
    revoked = room.invoke("workshop", "--revoke", "06")
    assert revoked.returncode == 0 and "revoked seat.06" in revoked.stdout, revoked.stdout + revoked.stderr
    result = room.invoke("workshop", "--rehearse", timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "FAILED seat.04: seat.04.key is missing" in lines
    for seat in ("05", "06"):
        assert any(line.startswith(f"revoked seat.{seat}: refused at the TLS handshake") for line in lines), lines
    said = " ".join(result.stdout.split())
    assert f"seats ok │ {SEATS - 3} of {SEATS - 2}" in said and "revoked seats refused │ 2 of 2" in said
    assert "rehearsal FAILED (1 seats)" in said
    assert [line for line in lines if line.startswith("FAILED")] == ["FAILED seat.04: seat.04.key is missing"]
