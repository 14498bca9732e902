"""How the room is read and shown, without a broker: the monitors' paging, the join of seats with what Amlen
says (and where each field came from), the watch screen for 200 seats, and a bundle read as its participant reads
it. The same paths run end to end against the stand-in in `test_workshop_room.py`."""

from __future__ import annotations

import datetime as dt
import fnmatch
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from rich.console import Console

from lab.pki.ca import signing_ca
from lab.pki.leaves import ensure_certificates
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings
from lab.workshop.bundle import access, write_bundle
from lab.workshop.handout import HandoutProblem, read_handout
from lab.workshop.monitor import POLICIES, RoomReading, read_room
from lab.workshop.objects import OWN_TOPICS, ROOM_TOPICS
from lab.workshop.report import percentile
from lab.workshop.seats import issue_seat_certs, read_seat_cert, seat_files
from lab.workshop.status import LIVE, join_room
from lab.workshop.watch import RoomView, render

pytestmark = pytest.mark.usefixtures("no_lab_env")

ENDPOINT_UP = {"Name": "WorkshopSeats", "Enabled": True, "LastErrorCode": 0, "Active": 0, "Total": 0,
               "BadConnections": 0, "Messages": 0}


class FakeAmlen:
    """The three monitors as Amlen answers them: wildcard filters, ResultCount, 50 per ordering."""

    def __init__(self, subscriptions: list[dict[str, Any]], connections: list[dict[str, Any]], active: int) -> None:
        self.subs, self.conns, self.active = subscriptions, connections, active
        self.asked: list[tuple[str, dict[str, str]]] = []

    def endpoint_monitor(self, name: str) -> dict[str, Any]:
        self.asked.append(("Endpoint", {"Name": name}))
        return {**ENDPOINT_UP, "Active": self.active}

    def subscriptions(self, **filters: str) -> list[dict[str, Any]]:
        self.asked.append(("Subscription", filters))
        found = [s for s in self.subs if fnmatch.fnmatchcase(s["ClientID"], filters["ClientID"])
                 and fnmatch.fnmatchcase(s["MessagingPolicy"], filters["MessagingPolicy"])]
        return found[: int(filters.get("ResultCount", "25"))]

    def connections(self, endpoint: str, *, stat_type: str | None = None) -> list[dict[str, Any]]:
        self.asked.append(("Connection", {"StatType": stat_type or ""}))
        ordered = sorted(self.conns, key=lambda c: c["Duration"], reverse=stat_type != "NewestConnection")
        return ordered[:50]


def subscription(client_id: str, topic: str, *, consumers: int = 1) -> dict[str, Any]:
    return {"ClientID": client_id, "TopicString": topic, "Consumers": consumers, "MessagingPolicy": OWN_TOPICS,
            "PublishedMsgs": 0}


def connection(client_id: str, age: float, *, rebuilt: dt.datetime) -> dict[str, Any]:
    connected = rebuilt - dt.timedelta(seconds=age)
    return {"Name": client_id, "ClientAddr": "172.17.0.1",
            "ConnectTime": connected.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "Duration": int(age * 1e9),
            "ReadMsg": 2, "WriteMsg": 3, "ReadBytes": 100, "WriteBytes": 200}


def test_the_subscription_filter_names_both_workshop_policies_only() -> None:
    assert fnmatch.fnmatchcase(OWN_TOPICS, POLICIES) and fnmatch.fnmatchcase(ROOM_TOPICS, POLICIES)
    assert not fnmatch.fnmatchcase("DemoTopicPolicy", POLICIES)


def test_a_room_of_200_is_read_completely_by_client_id_prefix_and_ordering() -> None:
    rebuilt = dt.datetime(2026, 12, 2, 8, 47, 30, tzinfo=dt.UTC)
    cns = [f"seat.{n:03d}" for n in range(1, 201)]
    subs = [subscription(f"{cn}-sub", f"workshop/{cn}/#") for cn in cns]
    subs += [subscription(f"{cn}-sub", "workshop/all/#") for cn in cns]
    subs.append(subscription("seat.999-stray", "workshop/all/#"))  # a client of no seat: not looked for
    conns = [connection(f"{cn}-sub", 1000 - index, rebuilt=rebuilt) for index, cn in enumerate(cns)]
    amlen = FakeAmlen(subs, conns, active=200)
    reading = read_room(amlen, cns)  # type: ignore[arg-type]
    got = {(s["ClientID"], s["TopicString"]) for s in reading.subscriptions}
    assert got == {(s["ClientID"], s["TopicString"]) for s in subs[:400]}, "every seat's subscriptions, once"
    pages = [filters for kind, filters in amlen.asked if kind == "Subscription"]
    assert all(page["ResultCount"] == "100" and page["MessagingPolicy"] == POLICIES for page in pages)
    assert pages[0]["ClientID"] == "seat.*" and {"seat.0*", "seat.1*", "seat.2*"} <= {p["ClientID"] for p in pages}
    assert len(pages) < 40, "only full pages are split"
    # The connection cache: six orderings of at most 50 give 100 distinct of 200; Active says that is partial.
    assert [f["StatType"] for kind, f in amlen.asked if kind == "Connection"][:2] == ["OldestConnection",
                                                                                     "NewestConnection"]
    assert len(reading.connections) == 100 and reading.connections_complete is False
    assert reading.details_as_of == rebuilt
    assert reading.subscriptions_complete is True


def test_a_seat_with_a_whole_page_of_subscriptions_is_still_here() -> None:
    subs = [subscription("seat.01-sub", f"workshop/seat.01/{n}/#") for n in range(120)]
    reading = read_room(FakeAmlen(subs, [], active=1), ["seat.01", "seat.02"])  # type: ignore[arg-type]
    assert len(reading.subscriptions) == 100 and reading.subscriptions_complete is False
    assert reading.connections == [] and reading.connections_complete and reading.details_as_of is None


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, x509.Certificate]]:
    settings = load_settings(dir=tmp_path_factory.mktemp("status") / "lab", env_file=None)
    ensure_certificates(settings)
    issue_seat_certs(settings, signing_ca(settings), ["01", "02", "03", "04"])
    return settings, {name: read_seat_cert(seat_files(settings, name)) for name in ("01", "02", "03", "04")}


def test_status_says_who_is_here_from_live_subscriptions_and_details_from_the_cache(
        certs: tuple[Settings, dict[str, x509.Certificate]]) -> None:
    settings, seats = certs
    rebuilt = dt.datetime(2026, 12, 2, 8, 47, 30, tzinfo=dt.UTC)
    reading = RoomReading(
        endpoint={**ENDPOINT_UP, "Active": 4, "BadConnections": 2, "Messages": 9},
        subscriptions=[subscription("seat.01-sub", "workshop/seat.01/#"),
                       subscription("seat.02-away", "workshop/seat.02/#", consumers=0)],  # durable, client gone
        subscriptions_complete=True,
        connections=[connection("seat.03-pub", 12.5, rebuilt=rebuilt), connection("mosq-xyz", 3, rebuilt=rebuilt)],
        connections_complete=True, details_as_of=rebuilt, requests=3)
    revoked = {seats["04"].serial_number}
    status = join_room(access(settings, None), seats, revoked, reading, None)
    by_name = {seat.name: seat for seat in status.seats}
    assert by_name["01"].connected is True and by_name["01"].sources["connected"] == LIVE
    assert by_name["01"].subscriptions == ("workshop/seat.01/#",) and by_name["01"].since is None
    assert by_name["02"].connected is False, "a durable subscription without its client is not a seat here"
    three = by_name["03"]
    assert three.connected is True and three.client_ids == ("seat.03-pub",) and three.address == "172.17.0.1"
    assert three.sources["connected"] == "connection monitor (as of 2026-12-02T08:47:30+00:00)"
    assert three.since == "2026-12-02T08:47:17+00:00" and (three.messages_in, three.messages_out) == (2, 3)
    assert by_name["04"].revoked is True and by_name["04"].sources["revoked"] == "workshop CRL"
    assert status.others == ["mosq-xyz"] and (status.active, status.bad_connections, status.messages) == (4, 2, 9)
    assert status.details_as_of == "2026-12-02T08:47:30+00:00" and status.details_refresh_seconds == 60
    data = status.as_dict()
    assert all("sources" in seat and seat["sources"]["expires"] == "certificate" for seat in data["seats"])

    unknown = join_room(access(settings, None), seats, revoked, None, "Amlen did not answer")
    assert {seat.connected for seat in unknown.seats} == {None} and unknown.live is None


def test_the_watch_shows_200_seats_on_one_screen_sorted_once_each(
        certs: tuple[Settings, dict[str, x509.Certificate]]) -> None:
    settings, seats = certs
    cert = seats["01"]
    many = {f"{n:03d}": cert for n in range(200, 0, -1)}  # given in reverse: the screen sorts
    subs = [subscription(f"seat.{n:03d}-sub", f"workshop/seat.{n:03d}/#") for n in range(1, 201, 2)]
    reading = RoomReading({**ENDPOINT_UP, "Active": 100, "Messages": 50}, subs, True, [], True, None, 1)
    status = join_room(access(settings, None), many, set(), reading, None)
    view = RoomView()
    view.update(status, 0.0)
    later = join_room(access(settings, None), many, set(), RoomReading(
        {**ENDPOINT_UP, "Active": 100, "Messages": 80}, subs[1:], True, [], True, None, 1), None)
    view.update(later, 61.0)
    screen = Console(width=100, record=True, file=io.StringIO())
    screen.print(render(later, view, 100))
    text = screen.export_text()
    lines = text.splitlines()
    assert len(lines) <= 20, text
    assert "99/200 seats here" in text and "30 messages in the last minute" in text
    assert "left: 001" in text
    grid = [line for line in lines if line[:1] in "●◐·✘?"]
    cells = [word for line in grid for word in line.split() if len(word) == 3 and word.isdigit()]
    assert cells == [f"{n:03d}" for n in range(1, 201)], "every seat once, in order"


def bundle(settings: Settings, name: str) -> Path:
    issue_seat_certs(settings, signing_ca(settings), [name])
    seat = seat_files(settings, name)
    write_bundle(seat, pki_paths(settings).ca_cert.read_bytes(), access(settings, None))
    return seat.dir


def test_a_bundle_is_read_as_its_readme_says(certs: tuple[Settings, dict[str, x509.Certificate]]) -> None:
    settings, _ = certs
    handout = read_handout(bundle(settings, "07"))
    assert (handout.host, handout.address, handout.port) == (settings.hostname, "127.0.0.1", settings.workshop_port)
    assert (handout.cert.name, handout.key.name, handout.ca.name) == ("seat.07.crt", "seat.07.key", "myCA.pem")
    assert (handout.cn, handout.own_filter, handout.room_filter) == ("seat.07", "workshop/seat.07/#",
                                                                     "workshop/all/#")


@pytest.mark.parametrize("breakage", ["key deleted", "readme changed", "zip deleted", "no command"])
def test_a_broken_bundle_is_named(certs: tuple[Settings, dict[str, x509.Certificate]], breakage: str) -> None:
    settings, _ = certs
    directory = bundle(settings, f"b{breakage.replace(' ', '')[:3]}")  # a seat name has no space
    name = directory.name
    readme = directory / "README.md"
    if breakage == "key deleted":
        (directory / f"seat.{name}.key").unlink()
        expected = f"seat.{name}.key is missing"
    elif breakage == "readme changed":
        readme.write_text(readme.read_text() + "\nedited by hand\n")
        expected = f"{name}.zip differs from the bundle directory (README.md)"
    elif breakage == "zip deleted":
        (directory / f"{name}.zip").unlink()
        expected = f"{name}.zip (the file to hand out) is missing"
    else:
        readme.write_text("".join(line for line in readme.read_text().splitlines(True)
                                  if "mosquitto_sub" not in line))
        expected = "README.md has no mosquitto_sub command"
    with pytest.raises(HandoutProblem) as problem:
        read_handout(directory)
    assert str(problem.value).startswith(expected)
    assert zipfile.is_zipfile(directory / f"{name}.zip") or breakage == "zip deleted"


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)
    assert percentile([0.2], 0.95) == 0.2 and percentile([], 0.5) is None
