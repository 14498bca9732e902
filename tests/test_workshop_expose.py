"""`invoke workshop --expose`: the workshop port on the machine's network address, nothing else, and `down`.

On the real Docker engine and the stand-in: the port is published on the default route's address (what a room
would use), seats connect there by name and by address (the server certificate gains an IP SAN), the admin
port and the guide's ports stay on loopback, and `down` takes the workshop apart.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LabEnv
from tests.helpers import admin_api
from tests.workshop_helpers import Probe


def network_address() -> str:
    """This machine's address on its default route (a UDP "connect" sends nothing; it only picks the route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        address: str = probe.getsockname()[0]
    assert not address.startswith("127."), "the test needs a non-loopback address"
    return address


@pytest.fixture
def room(lab_env: LabEnv) -> Iterator[LabEnv]:
    up = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert up.returncode == 0, up.stdout + up.stderr
    made = lab_env.invoke("workshop", "--seats", "2")
    assert made.returncode == 0, made.stdout + made.stderr
    yield lab_env
    lab_env.invoke("down", "--purge")


def published(lab: LabEnv) -> dict[int, str]:
    """Container port -> the host address Docker publishes it on."""
    out = subprocess.run(["docker", "inspect", lab.container_name], capture_output=True, text=True, check=True).stdout
    ports = json.loads(out)[0]["NetworkSettings"]["Ports"]
    return {int(key.split("/")[0]): bindings[0]["HostIp"] for key, bindings in ports.items() if bindings}


def seat_probe(lab: LabEnv, name: str, client_id: str, *, server_name: str | None) -> Probe:
    bundle = lab.dir / "workshop" / name
    return Probe(ca=bundle / "myCA.pem", cert=bundle / f"seat.{name}.crt", key=bundle / f"seat.{name}.key",
                 client_id=client_id, server_name=server_name)


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=3).close()
    except ConnectionRefusedError:
        return True
    return False


def test_expose_publishes_only_the_workshop_port_and_seats_connect_by_name_and_address(room: LabEnv) -> None:
    address = network_address()
    result = room.invoke("workshop", "--expose", address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"The workshop port {room.workshop_port} is now reachable from the network" in result.stdout
    assert f"    {address} {room.hostname}\n" in result.stdout  # the participants' hosts line, as is
    ports = published(room)
    assert ports[room.workshop_port] == address
    assert {ports[9089], ports[room.tls_port], ports[room.mtls_port]} == {"127.0.0.1"}
    assert refused(address, room.admin_port) and refused(address, room.tls_port)

    # By name (the hosts line) and by bare address (the certificate's new IP SAN), both verified.
    for server_name in (room.hostname, None):
        seat = seat_probe(room, "01", "seat.01-room", server_name=server_name)
        try:
            assert seat.connect(address, room.workshop_port) == "accepted", server_name
            assert seat.subscribe("workshop/all/#") in ([1], [0])
            assert seat.publish("workshop/all/hi", "expose hello") == "acked 0x00"
            assert seat.received(1, prefix="expose") == [("workshop/all/hi", b"expose hello")]
        finally:
            seat.close()
    readme = (room.dir / "workshop" / "02" / "README.md").read_text()
    assert f"    {address} {room.hostname}\n" in readme
    rehearsed = room.invoke("workshop", "--rehearse")  # every seat from its bundle, on the exposed address
    assert rehearsed.returncode == 0, rehearsed.stdout + rehearsed.stderr
    assert f"{address}:{room.workshop_port} (the exposed address)" in rehearsed.stdout
    doctor = json.loads(room.invoke("doctor", "--json").stdout)
    ports_check = next(c for c in doctor["checks"] if c["name"] == "published ports")
    assert ports_check["status"] == "OK" and address in ports_check["detail"]

    back = room.invoke("workshop", "--expose", "127.0.0.1")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "back on 127.0.0.1 only" in back.stdout
    assert set(published(room).values()) == {"127.0.0.1"}


def test_expose_refuses_an_address_that_is_not_this_machines(room: LabEnv) -> None:
    before = (room.dir / "state.json").read_bytes()
    for address, words in (("203.0.113.77", "not on this machine"), ("0.0.0.0", "every interface"),
                           ("room-pc", "not an IP address")):
        result = room.invoke("workshop", "--expose", address)
        assert result.returncode == 1 and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (room.dir / "state.json").read_bytes() == before
    assert set(published(room).values()) == {"127.0.0.1"}


def test_down_removes_the_workshop_objects_and_purge_the_bundles(room: LabEnv) -> None:
    base, admin = admin_api(room.settings())
    api = f"{base}/configuration"
    assert admin.get(f"{api}/Endpoint/WorkshopSeats", timeout=5).status_code == 200
    address = network_address()
    assert room.invoke("workshop", "--expose", address).returncode == 0

    kept = room.invoke("down", "--keep-container")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    for kind, name in (("Endpoint", "WorkshopSeats"), ("TopicPolicy", "WorkshopSeatsOwnTopics"),
                       ("ConnectionPolicy", "WorkshopSeatsConnection"), ("SecurityProfile", "WorkshopSeatsSecProfile"),
                       ("CRLProfile", "WorkshopSeatsCRL"), ("Endpoint", "ClientCertsTLS")):
        assert admin.get(f"{api}/{kind}/{name}", timeout=5).status_code == 404, (kind, name)
    said = " ".join(kept.stdout.split())  # the step lines wrap at the terminal width
    assert f"no longer published on {address}" in said
    assert "kept 2 seat bundles" in said and (room.dir / "workshop" / "01" / "01.zip").exists()

    purged = room.invoke("down", "--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not (room.dir / "workshop").exists() and not Path(room.dir / "state.json").exists()
