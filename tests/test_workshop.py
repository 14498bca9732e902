"""`invoke workshop` end to end, on the real Docker engine and the Amlen stand-in, with real MQTT clients.

One room for the module (a lab with three seats), as an instructor would run it. The tests run in file order;
the ones that change the room (a fourth seat, a revocation) come last.

No test touches /etc/hosts (other suites on the machine restore it from snapshots): paho clients dial
127.0.0.1 and verify the lab's host name (lab.clients.tls's context), and a participant's mosquitto commands run in
a private mount namespace whose hosts file holds the line from the seat's README.
"""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import INVOKE, ROOT, LabEnv
from tests.workshop_helpers import Probe, running_room

DENIED = {False: 0x80, True: 0x87}  # SUBACK refusal: MQTT 3.1.1, MQTT 5


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Iterator[LabEnv]:
    """A lab that is up (without the hosts entry) with seats 01..03."""
    with running_room(LabEnv.new(tmp_path_factory.mktemp("workshop") / "lab", standin_image), 3) as lab:
        yield lab


def seat_dir(lab: LabEnv, name: str) -> Path:
    return lab.dir / "workshop" / name


def probe(lab: LabEnv, name: str, client_id: str, *, v5: bool = False, cert_name: str | None = None) -> Probe:
    """A client with seat `name`'s bundle (or the lab's client certificate `cert_name`)."""
    if cert_name is not None:
        pki = lab.dir / "pki"
        return Probe(ca=pki / "myCA.pem", cert=pki / f"{cert_name}.crt", key=pki / f"{cert_name}.key",
                     client_id=client_id, v5=v5, server_name=lab.hostname)
    bundle = seat_dir(lab, name)
    return Probe(ca=bundle / "myCA.pem", cert=bundle / f"seat.{name}.crt", key=bundle / f"seat.{name}.key",
                 client_id=client_id, v5=v5, server_name=lab.hostname)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `directory`: its bytes and modification time (a rewrite with equal bytes shows too)."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def status_json(lab: LabEnv) -> dict[str, Any]:
    result = lab.invoke("workshop", "--status", "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def seat_status(lab: LabEnv, cn: str) -> dict[str, Any]:
    return next(seat for seat in status_json(lab)["seats"] if seat["cn"] == cn)


def readme_command(lab: LabEnv, name: str, starts: str) -> list[list[str]]:
    """The README's command lines that start with `starts`, split as a shell would."""
    lines = (seat_dir(lab, name) / "README.md").read_text().splitlines()
    return [shlex.split(line.strip()) for line in lines if line.strip().startswith(starts)]


def as_participant(lab: LabEnv, name: str, command: list[str]) -> list[str]:
    """`command` as on the participant's machine: a hosts file with just the README's line (a mount namespace)."""
    readme = (seat_dir(lab, name) / "README.md").read_text()
    hosts_line = next(line.strip() for line in readme.splitlines() if line.strip().endswith(f" {lab.hostname}"))
    hosts = seat_dir(lab, name).parent.parent.parent / f"hosts-{name}"
    hosts.write_text(f"127.0.0.1 localhost\n{hosts_line}\n")
    return ["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *command]


def test_readme_commands_of_a_seat_round_trip_on_its_topic_and_the_room(room: LabEnv) -> None:
    # The exact mosquitto commands the participant gets, run in the bundle directory.
    sub = as_participant(room, "01", [*readme_command(room, "01", "mosquitto_sub")[0], "-C", "3", "-W", "20"])
    listener = subprocess.Popen(sub, cwd=seat_dir(room, "01"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        time.sleep(1.0)  # mosquitto_sub has no "subscribed" signal; its SUBACK takes milliseconds
        for pub in readme_command(room, "01", "mosquitto_pub"):
            sent = subprocess.run(as_participant(room, "01", pub), cwd=seat_dir(room, "01"), capture_output=True,
                                  text=True, timeout=20)
            assert sent.returncode == 0, sent.stderr
        # The README's `invoke pub`, from the directory the bundle was unzipped in (a clone of amlen-lab there).
        invoke_pub = readme_command(room, "01", "invoke pub")[0]
        sent = subprocess.run(as_participant(room, "01", [INVOKE, "-r", str(ROOT), *invoke_pub[1:]]),
                              cwd=seat_dir(room, "01").parent, capture_output=True, text=True, timeout=30)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        out, err = listener.communicate(timeout=25)
    finally:
        listener.kill()
    assert listener.returncode == 0, err
    assert out.splitlines() == ["workshop/seat.01/hello hello from seat.01", "workshop/all/hello hello room",
                                "workshop/seat.01/hello hello"]


@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
def test_three_seats_round_trip_on_their_own_topics_and_on_workshop_all(room: LabEnv, v5: bool) -> None:
    nonce = secrets.token_hex(4)
    seats = {name: probe(room, name, f"seat.{name}-rt", v5=v5) for name in ("01", "02", "03")}
    try:
        for name, client in seats.items():
            assert client.connect("127.0.0.1", room.workshop_port) == "accepted", name
            assert client.subscribe(f"workshop/seat.{name}/#") in ([1], [0])
            assert client.subscribe("workshop/all/#") in ([1], [0])
        for name, client in seats.items():
            assert client.publish(f"workshop/seat.{name}/note", f"{nonce} own {name}") == "acked 0x00"
            assert client.publish("workshop/all/chat", f"{nonce} room {name}") == "acked 0x00"
        for name, client in seats.items():
            got = client.received(4, prefix=nonce)
            assert sorted(got) == sorted([(f"workshop/seat.{name}/note", f"{nonce} own {name}".encode())]
                                         + [("workshop/all/chat", f"{nonce} room {n}".encode()) for n in seats])
    finally:
        for client in seats.values():
            client.close()


@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
def test_seat_cannot_read_or_write_another_seats_topics(room: LabEnv, v5: bool) -> None:
    nonce = secrets.token_hex(4)
    alice, bob = probe(room, "01", "seat.01-x", v5=v5), probe(room, "02", "seat.02-x", v5=v5)
    try:
        assert alice.connect("127.0.0.1", room.workshop_port) == "accepted"
        assert bob.connect("127.0.0.1", room.workshop_port) == "accepted"
        assert bob.subscribe("workshop/seat.02/#") in ([1], [0])
        # Reading: SUBACK refuses the other seat's tree.
        assert alice.subscribe("workshop/seat.02/#") == [DENIED[v5]]
        # Writing: 3.1.1 closes the connection without a PUBACK; MQTT 5 answers PUBACK 0x87 and stays.
        outcome = alice.publish("workshop/seat.02/inbox", f"{nonce} forged")
        if v5:
            assert outcome == "acked 0x87" and not alice.closed.is_set()
            # Still connected and allowed on its own topic (0x10: accepted, no subscriber there).
            assert alice.publish("workshop/seat.01/ok", f"{nonce} mine") in ("acked 0x00", "acked 0x10")
        else:
            assert outcome == "closed"
        assert bob.publish("workshop/seat.02/check", f"{nonce} real") == "acked 0x00"
        assert bob.received(1, prefix=nonce) == [("workshop/seat.02/check", f"{nonce} real".encode())]
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize("v5", [False, True], ids=["mqtt311", "mqtt5"])
def test_lab_ca_certificate_that_is_not_a_seat_is_refused_on_the_workshop_port(room: LabEnv, v5: bool) -> None:
    made = room.invoke("client-cert", "--name", "intruder")
    assert made.returncode == 0, made.stderr
    for client_id in ("intruder", "seat.01-intruder"):
        intruder = probe(room, "", client_id, v5=v5, cert_name="intruder")
        try:
            outcome = intruder.connect("127.0.0.1", room.workshop_port)
        finally:
            intruder.close()
        assert outcome == "refused: Not authorized", (client_id, outcome)
    # A seat may not use another seat's client IDs either.
    borrower = probe(room, "01", "seat.02-sub", v5=v5)
    try:
        assert borrower.connect("127.0.0.1", room.workshop_port).startswith("refused")
    finally:
        borrower.close()
    # The guide's mutual-TLS endpoint is as it was: any lab client certificate gets in there.
    guide = probe(room, "", "intruder-on-8890", v5=v5, cert_name="intruder")
    try:
        assert guide.connect("127.0.0.1", room.mtls_port) == "accepted"
    finally:
        guide.close()


def test_status_shows_a_subscribed_seat_at_once_on_amlens_60_second_monitor(room: LabEnv) -> None:
    # The stand-in's connection monitor is rebuilt every 60 s here, as Amlen's is; the subscription monitor is live.
    bob = probe(room, "02", "seat.02-watched")
    try:
        assert bob.connect("127.0.0.1", room.workshop_port) == "accepted"
        assert bob.subscribe("workshop/seat.02/#") in ([1], [0])
        status = status_json(room)  # once, right after the SUBACK: no polling
        seat = next(seat for seat in status["seats"] if seat["cn"] == "seat.02")
        assert seat["connected"] is True and "seat.02-watched" in seat["client_ids"]
        assert seat["subscriptions"] == ["workshop/seat.02/#"] and seat["revoked"] is False
        assert seat["sources"]["connected"] == "subscription monitor (live)"
        assert status["active"] >= 1 and status["details_refresh_seconds"] == 60
        shown = room.invoke("workshop", "--status")
        assert shown.returncode == 0, shown.stderr
        line = next(line for line in shown.stdout.splitlines() if line.startswith("seat.02"))
        assert "not revoked" in line and "seat.02-watched" in line and "(subscribed" in line
        assert "Amlen refreshes them every 60 s" in shown.stdout
    finally:
        bob.close()


def test_bad_roster_line_is_one_line_error_and_creates_nothing(room: LabEnv) -> None:
    before = snapshot(room.dir / "workshop"), (room.dir / "state.json").read_bytes()
    roster = room.dir.parent / "bad.txt"
    roster.write_text("dora\n# a comment\nbob smith\nerin\n")
    result = room.invoke("workshop", "--roster", str(roster))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: bad.txt line 3: 'bob smith' is not a usable seat name")
    assert "Traceback" not in result.stderr + result.stdout
    assert (snapshot(room.dir / "workshop"), (room.dir / "state.json").read_bytes()) == before


def test_same_roster_changes_nothing_and_a_new_name_adds_one_seat(room: LabEnv) -> None:
    roster = room.dir.parent / "room.txt"
    roster.write_text("01\n02\n03\n")
    before = snapshot(room.dir / "workshop"), (room.dir / "state.json").read_bytes()
    again = room.invoke("workshop", "--roster", str(roster))
    assert again.returncode == 0, again.stderr
    assert "3 seats: 3 reused" in again.stdout and "all 7 workshop objects already match" in again.stdout
    assert (snapshot(room.dir / "workshop"), (room.dir / "state.json").read_bytes()) == before

    roster.write_text("01\n02\n03\ndora\n")
    grown = room.invoke("workshop", "--roster", str(roster))
    assert grown.returncode == 0, grown.stderr
    assert "4 seats: 1 created, 3 reused" in grown.stdout and "created: dora" in grown.stdout
    after = snapshot(room.dir / "workshop")
    assert {k: v for k, v in after.items() if not k.startswith("dora/")} == before[0]
    assert sorted(k for k in after if k.startswith("dora/")) == [
        "dora/.kit.json", "dora/README.md", "dora/client.p12", "dora/connection.env", "dora/connection.json",
        "dora/dora.zip", "dora/kit.password", "dora/myCA.pem", "dora/seat.dora.crt", "dora/seat.dora.key",
        "dora/truststore.p12"]
    dora = probe(room, "dora", "seat.dora-hi")
    try:
        assert dora.connect("127.0.0.1", room.workshop_port) == "accepted"
    finally:
        dora.close()


def test_revoked_seat_is_refused_and_the_others_are_not_until_reissued(room: LabEnv) -> None:
    revoked = room.invoke("workshop", "--revoke", "03")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked seat.03" in revoked.stdout
    refused = probe(room, "03", "seat.03-after")
    try:
        outcome = refused.connect("127.0.0.1", room.workshop_port)
    finally:
        refused.close()
    assert outcome.startswith("no connack"), outcome  # the TLS handshake fails: certificate revoked
    for name in ("01", "02", "dora"):
        other = probe(room, name, f"seat.{name}-after")
        try:
            assert other.connect("127.0.0.1", room.workshop_port) == "accepted", name
        finally:
            other.close()
    assert seat_status(room, "seat.03")["revoked"] is True
    assert "already revoked" in room.invoke("workshop", "--revoke", "03").stdout

    reissued = room.invoke("workshop", "--reissue", "03")
    assert reissued.returncode == 0, reissued.stderr
    back = probe(room, "03", "seat.03-back")
    try:
        assert back.connect("127.0.0.1", room.workshop_port) == "accepted"
    finally:
        back.close()
    assert seat_status(room, "seat.03")["revoked"] is False
    unknown = room.invoke("workshop", "--revoke", "nobody")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: there is no seat 'nobody'")


def test_lab_status_and_doctor_include_the_workshop_endpoint(room: LabEnv) -> None:
    status = json.loads(room.invoke("status", "--json").stdout)
    assert status["endpoints"]["WorkshopSeats"] == {"port": room.workshop_port, "live": True}
    doctor = json.loads(room.invoke("doctor", "--json").stdout)
    (check,) = [check for check in doctor["checks"] if check["name"] == "endpoint WorkshopSeats"]
    assert check["status"] == "OK" and f"port {room.workshop_port}" in check["detail"]
