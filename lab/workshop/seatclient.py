"""One seat's MQTT client for the rehearsal: MQTT 3.1.1 over mutual TLS from its handout, answers recorded.

MQTT 3.1.1 with a clean session, as the README's mosquitto commands connect, so the rehearsal leaves no
session behind. The rehearsal's `NetworkLoop` does every client's I/O in one thread (paho's own loop thread
cannot watch descriptors past 1024, see `lab.workshop.netloop`); the caller waits on recorded answers with
deadlines generous enough to ride out a paused machine.
"""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from lab.clients.tls import explain, tls_context
from lab.workshop.handout import Handout
from lab.workshop.netloop import NetworkLoop

__all__ = ["WAIT", "SeatClient"]

WAIT = 30.0  # seconds for any one answer


class SeatClient:
    """A participant's client: connect, subscribe, publish, and the messages that arrived (with their times)."""

    def __init__(self, handout: Handout, client_id: str, loop: NetworkLoop) -> None:
        self.handout = handout
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTProtocolVersion.MQTTv311, clean_session=True,
                                  reconnect_on_failure=False)
        self.client.connect_timeout = WAIT
        self.connack: Any = None
        self.closed = threading.Event()
        self._subacks: dict[int, list[int]] = {}
        self._pubacks: set[int] = set()
        self._messages: list[tuple[str, bytes, float]] = []
        self._changed = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        loop.attach(self.client)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self._notify()

    def _on_disconnect(self, *_args: Any) -> None:
        self.closed.set()
        self._notify()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[Any], _p: Any) -> None:
        with self._changed:
            self._subacks[mid] = [int(r.value) for r in reasons]
            self._changed.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        with self._changed:
            self._pubacks.add(mid)
            self._changed.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self._messages.append((message.topic, bytes(message.payload), time.monotonic()))
            self._changed.notify_all()

    def _wait(self, ready: Any, timeout: float = WAIT) -> bool:
        with self._changed:
            return bool(self._changed.wait_for(lambda: ready() or self.closed.is_set(), timeout) and ready())

    def connect(self) -> str:
        """"accepted", "refused: <CONNACK reason>", or why there was no CONNACK (the TLS handshake, in words)."""
        where = self.handout
        try:
            self.client.tls_set_context(tls_context(ca_file=where.ca, cert=where.cert, key=where.key,
                                                    server_name=where.host))
        except (OSError, ssl.SSLError) as exc:
            return f"its certificate and key cannot be used: {explain(exc)}"
        try:
            self.client.connect(where.address, where.port, keepalive=60)
        except (OSError, ssl.SSLError) as exc:
            return f"no connection to {where.address}:{where.port}: {explain(exc)}"
        if not self._wait(lambda: self.connack is not None):
            return "no CONNACK: the server closed the connection" if self.closed.is_set() else "no CONNACK in time"
        if self.connack.is_failure:
            return f"refused: {self.connack}"
        return "accepted"

    def subscribe(self, *filters: str) -> list[int] | None:
        """The SUBACK codes for `filters` (one packet), or None without a SUBACK."""
        _, mid = self.client.subscribe([(topic, 1) for topic in filters])
        if mid is None or not self._wait(lambda: mid in self._subacks):
            return None
        return self._subacks[mid]

    def publish(self, topic: str, payload: bytes) -> bool:
        """Publish at QoS 1 (never retained) and wait for the PUBACK."""
        info = self.client.publish(topic, payload, qos=1, retain=False)
        return self._wait(lambda: info.mid in self._pubacks)

    def received_at(self, topic: str, payload: bytes, *, timeout: float = WAIT) -> float | None:
        """When (monotonic) a message with `topic` and `payload` arrived; None when it did not in time."""
        def arrival() -> float | None:
            return next((at for t, body, at in self._messages if t == topic and body == payload), None)

        self._wait(lambda: arrival() is not None, timeout)
        with self._changed:
            return arrival()

    def close(self) -> None:
        """Disconnect cleanly (the server forgets a clean session) and wait until the loop has closed the socket."""
        if self.client.socket() is not None and not self.closed.is_set():
            self.client.disconnect()
            self.closed.wait(WAIT)
