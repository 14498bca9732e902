"""A paho-mqtt 2.x client for the workshop tests that records exactly what the broker answered.

Denials have shapes (reference, "Observed later"): CONNACK "not authorized", SUBACK 0x80 (3.1.1) or 0x87
(MQTT 5), a closed connection (3.1.1 QoS 1 PUBLISH) or PUBACK 0x87 (MQTT 5). `Probe` keeps each one as data
so the tests can assert the shape, not merely "it failed".
"""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from lab.clients.tls import tls_context

if TYPE_CHECKING:
    from tests.conftest import LabEnv

WAIT = 10.0


@contextlib.contextmanager
def running_room(lab: LabEnv, seats: int) -> Iterator[LabEnv]:
    """`lab` up (no hosts entry, no verification) with seats 01..`seats`; taken apart afterwards, whatever happened."""
    try:
        up = lab.invoke("up", "--no-hosts", "--no-verify")
        assert up.returncode == 0, up.stdout + up.stderr
        made = lab.invoke("workshop", "--seats", str(seats))
        assert made.returncode == 0, made.stdout + made.stderr
        assert f"{seats} seats: {seats} created" in made.stdout
        yield lab
    finally:
        lab.invoke("down", "--purge")
        subprocess.run(["docker", "rm", "-f", lab.container_name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"{lab.container_name}-data"], capture_output=True)


class Probe:
    """One MQTT client over mutual TLS, driven by paho's network thread; every answer recorded."""

    def __init__(self, *, ca: Path, cert: Path, key: Path, client_id: str, v5: bool = False,
                 server_name: str | None = None) -> None:
        protocol = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        # lab.clients.tls's context: with `server_name` it dials any address yet sends and verifies that name.
        context = tls_context(ca_file=ca, cert=cert, key=key, server_name=server_name)
        self.client.tls_set_context(context)
        self.connack: Any = None
        self.error: str | None = None
        self.closed = threading.Event()
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.closed.set()
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[Any], _p: Any) -> None:
        self.subacks[mid] = [int(r.value) for r in reasons]

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.pubacks[mid] = int(reason.value)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def connect(self, host: str, port: int) -> str:
        """"accepted", "refused: <CONNACK reason>", or why there was no CONNACK at all (e.g. TLS refused)."""
        try:
            self.client.connect(host, port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.error = str(exc)
            return f"no connack: {exc}"
        self.client.loop_start()
        deadline = time.monotonic() + WAIT
        while self.connack is None and not self.closed.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.connack is None:
            return "no connack: the connection closed" if self.closed.is_set() else "no connack: timeout"
        if self.connack.is_failure:
            return f"refused: {self.connack}"
        return "accepted"

    def subscribe(self, topic: str) -> list[int]:
        """The SUBACK reason codes for `topic` (0/1 granted QoS; 0x80 or 0x87 refused)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        _wait(lambda: mid in self.subacks or self.closed.is_set())
        return self.subacks.get(mid, [])

    def publish(self, topic: str, payload: str, *, qos: int = 1) -> str:
        """"acked <reason>" for QoS 1, "sent" for QoS 0, or "closed" when the broker ended the connection."""
        info = self.client.publish(topic, payload, qos=qos)
        if qos == 0:
            return "sent"
        _wait(lambda: info.mid in self.pubacks or self.closed.is_set())
        if info.mid in self.pubacks:
            return f"acked {self.pubacks[info.mid]:#04x}"
        return "closed" if self.closed.is_set() else "no puback"

    def received(self, count: int, *, prefix: str) -> list[tuple[str, bytes]]:
        """Wait until `count` messages whose payload starts with `prefix` arrived; return them."""
        def mine() -> list[tuple[str, bytes]]:
            with self._lock:
                return [m for m in self.messages if m[1].startswith(prefix.encode())]
        _wait(lambda: len(mine()) >= count)
        return mine()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(done: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)
