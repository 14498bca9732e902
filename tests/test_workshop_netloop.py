"""The rehearsal's one network thread, against a real mosquitto over mutual TLS, with every client's socket
numbered past 1024 (where paho's own select()-based loop loses them: a room of about 330 seats would)."""

from __future__ import annotations

import gc
import os
import resource
from collections.abc import Iterator

import pytest

from lab.pki.paths import pki_paths
from lab.settings import Settings
from lab.workshop.handout import Handout
from lab.workshop.netloop import NetworkLoop
from lab.workshop.seatclient import SeatClient
from tests.mosquitto_lab import Broker

CLIENTS = 24


@pytest.fixture
def high_descriptors() -> Iterator[None]:
    """Every descriptor number up to 1100 held open, so that each socket opened meanwhile is numbered above."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    assert wanted >= 1300, f"this machine allows only {hard} open files"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    gc.collect()  # earlier tests' clients in reference cycles would free low numbers in the middle of this one
    held = [os.open(os.devnull, os.O_RDONLY)]
    while held[-1] < 1100:  # the kernel hands out the lowest free number: this fills every gap below
        held.append(os.open(os.devnull, os.O_RDONLY))
    try:
        yield
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def handout(settings: Settings) -> Handout:
    paths = pki_paths(settings)
    client = settings.client_names[0]
    key, cert = paths.client(client)
    return Handout(name="loop", dir=paths.ca_cert.parent, host=settings.hostname, address="127.0.0.1",
                   port=settings.mtls_port, ca=paths.ca_cert, cert=cert, key=key, cn=client, serial=0,
                   own_filter="loop/own/#", room_filter="loop/all/#")


def test_one_thread_serves_many_clients_past_descriptor_1024(broker: Broker, lab_settings: Settings,
                                                             high_descriptors: None) -> None:
    bundle = handout(lab_settings)
    with NetworkLoop() as loop:
        clients = [SeatClient(bundle, f"loop-{index}", loop) for index in range(CLIENTS)]
        try:
            for client in clients:
                assert client.connect() == "accepted"
                sock = client.client.socket()
                assert sock is not None and sock.fileno() >= 1024
            for client in clients:
                assert client.subscribe("loop/all/#", "loop/own/#") == [1, 1]
            assert clients[0].publish("loop/all/hello", b"to everyone")
            for client in clients:
                assert client.received_at("loop/all/hello", b"to everyone") is not None
        finally:
            for client in clients:
                client.close()
        assert all(client.closed.is_set() and client.client.socket() is None for client in clients)
