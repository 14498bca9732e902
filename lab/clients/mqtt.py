"""MQTT with paho-mqtt 2.x, in the lab's words: connect, round trips, and the guide's sub/pub sessions.

Every paho return code and log line is turned into a sentence here (TLS and socket errors through
`lab.clients.tls.explain`). Callers get data (`ConnectOutcome`, `RoundTrip`, `Message`) and decide what it means.
Each session has its own pause-aware deadline (`lab.deadline`), and says when it failed only because
nothing answered in time (`silent`), so a caller can retry once on a fresh connection: after a machine
pause every pending timeout fires at once, though the server never had its turn.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from lab.clients.tls import DEFAULT_TIMEOUT, LabTLSContext, explain, is_silence
from lab.deadline import Deadline
from lab.errors import CheckError

__all__ = [
    "DEFAULT_TIMEOUT",
    "ConnectOutcome",
    "Listener",
    "Message",
    "Protocol",
    "RoundTrip",
    "SessionOptions",
    "listen",
    "publish",
    "round_trip",
    "subscribe",
    "try_connect",
]


class Protocol(StrEnum):
    """The MQTT protocol versions the lab checks."""

    MQTT311 = "3.1.1"
    MQTT5 = "5"

    @property
    def paho(self) -> MQTTProtocolVersion:
        """paho's constant for this version."""
        return MQTTProtocolVersion.MQTTv5 if self is Protocol.MQTT5 else MQTTProtocolVersion.MQTTv311


@dataclass(frozen=True)
class ConnectOutcome:
    """What happened when a client tried to connect: `reached` the server at all, got a CONNACK, and why."""

    reached: bool
    accepted: bool
    reason: str
    hostname_mismatch: bool = False

    @property
    def silent(self) -> bool:
        """Nothing answered in time: worth one retry on a fresh connection (a paused machine looks so)."""
        return not self.accepted and is_silence(self.reason)


@dataclass(frozen=True)
class RoundTrip:
    """A subscribe-then-publish round trip: how many of `sent` came back, and why it stopped."""

    connect: ConnectOutcome
    sent: int
    received: int
    reason: str

    @property
    def silent(self) -> bool:
        """The session ran out of time waiting for an answer (not refused, not lost)."""
        return (self.received < self.sent and is_silence(self.reason)) or self.connect.silent


@dataclass(frozen=True)
class Message:
    """One received message."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class SessionOptions:
    """How a client connects beyond address and TLS: the paho examples' -c -d -k -u -p -D flags."""

    protocol: Protocol = Protocol.MQTT311
    client_id: str = ""  # empty: lab-<role>-<random>
    clean_session: bool = True
    keepalive: int = 30
    username: str | None = None
    password: str | None = None
    log: Callable[[str], None] | None = None  # every paho log line (the examples' -D)


class _Session:
    """One paho client driven from the calling thread (no loop thread), recording what happens."""

    def __init__(self, context: ssl.SSLContext | None, options: SessionOptions, *, role: str) -> None:
        protocol = options.protocol
        # MQTT 5 has clean start (in connect()) instead of clean session; paho refuses the 3.1.1 argument for it.
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=options.client_id or _client_id(role),
                                  protocol=protocol.paho,
                                  clean_session=None if protocol is Protocol.MQTT5 else options.clean_session)
        self.options = options
        self.context = context
        if context is not None:
            self.client.tls_set_context(context)
        if options.username or options.password:
            self.client.username_pw_set(options.username, options.password)
        self.connack: Any = None
        self.subacked = False
        self.errors: list[str] = []
        self.messages: list[Message] = []
        self.on_message: Callable[[Message], None] | None = None
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_args: setattr(self, "subacked", True)
        self.client.on_message = self._on_message
        self.client.on_log = self._on_log

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        self.connack = reason_code

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
        self.messages.append(message)
        if self.on_message:
            self.on_message(message)

    def _on_log(self, _c: Any, _u: Any, level: int, text: str) -> None:
        if level in (paho.MQTT_LOG_ERR, paho.MQTT_LOG_WARNING):
            self.errors.append(text)
        if self.options.log is not None:
            self.options.log(text)

    def connect(self, host: str, port: int, deadline: Deadline) -> ConnectOutcome:
        # The TCP connect and TLS handshake block inside paho; they get what is left of the deadline.
        self.client.connect_timeout = max(deadline.cap(DEFAULT_TIMEOUT), 0.5)
        clean_start = (self.options.clean_session if self.options.protocol is Protocol.MQTT5
                       else paho.MQTT_CLEAN_START_FIRST_ONLY)
        try:
            self.client.connect(host, port, keepalive=self.options.keepalive, clean_start=clean_start)
        except ssl.SSLCertVerificationError as exc:
            words = explain(exc)
            return ConnectOutcome(True, False, words, hostname_mismatch=words.startswith("hostname mismatch"))
        except (OSError, ssl.SSLError) as exc:
            # ssl.SSLError during connect() means the server answered (badly); OSError before it did not.
            return ConnectOutcome(isinstance(exc, ssl.SSLError), False, explain(exc))
        self.pump(lambda: self.connack is not None, deadline)
        if self.connack is None:
            return ConnectOutcome(True, False, "no CONNACK: " + self._lost_reason())
        if self.connack.is_failure:
            return ConnectOutcome(True, False, f"server answered CONNACK {self.connack}")
        return ConnectOutcome(True, True, "connected (CONNACK success)")

    def pump(self, done: Callable[[], bool], deadline: Deadline) -> bool:
        """Run paho's network loop until `done()` or the deadline; False when the connection was lost."""
        while not done():
            left = deadline.left()
            if left <= 0:
                return True
            rc = self.client.loop(timeout=min(left, 0.05))
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self.errors.append(f"loop rc {rc}")
                return False
        return True

    def _lost_reason(self) -> str:
        for text in reversed(self.errors):
            if "failed to receive" in text or "SSL" in text or "reset" in text:
                return explain(text.split(": ", 1)[-1])
        return "the server closed the connection" if self.errors else explain(TimeoutError())

    def close(self) -> None:
        self.client.on_log = None  # the goodbye is not news, even with -D
        with contextlib.suppress(Exception):  # best effort: the server may already have gone
            if self.connack is not None and not self.connack.is_failure:
                self.client.disconnect()
                self.client.loop(timeout=0.01)
        # paho closes its socket and wake-up socket pair only in __del__, which a reference cycle delays until
        # the garbage collector runs; close them now, as __del__ would (paho has no public close()).
        with contextlib.suppress(OSError):
            self.client._reset_sockets()
        if isinstance(self.context, LabTLSContext):
            self.context.close_opened()


def _client_id(tag: str) -> str:
    # <= 23 characters: the MQTT 3.1.1 limit every server must accept.
    return f"lab-{tag[:8]}-{secrets.token_hex(4)}"


def try_connect(
    host: str,
    port: int,
    *,
    context: ssl.SSLContext | None,
    protocol: Protocol = Protocol.MQTT311,
    timeout: float = DEFAULT_TIMEOUT,
    client_id: str = "",
) -> ConnectOutcome:
    """Connect and disconnect; `accepted` only when a successful CONNACK arrived (no error is not enough)."""
    session = _Session(context, SessionOptions(protocol, client_id=client_id), role="probe")
    try:
        return session.connect(host, port, Deadline(timeout))
    finally:
        session.close()


def round_trip(
    host: str,
    port: int,
    *,
    context: ssl.SSLContext | None,
    topic_filter: str,
    topic: str,
    count: int,
    protocol: Protocol = Protocol.MQTT311,
    qos: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
) -> RoundTrip:
    """Subscribe to `topic_filter`, publish `count` messages to `topic`, count the ones that come back.

    Only messages carrying this run's nonce count, so concurrent runs on the same topic do not mix.
    """
    deadline = Deadline(timeout)
    nonce = secrets.token_hex(6)
    session = _Session(context, SessionOptions(protocol), role="rt")
    try:
        outcome = session.connect(host, port, deadline)
        if not outcome.accepted:
            return RoundTrip(outcome, 0, 0, outcome.reason)
        session.client.subscribe(topic_filter, qos=qos)
        if not session.pump(lambda: session.subacked, deadline) or not session.subacked:
            return RoundTrip(outcome, 0, 0, "no SUBACK for " + topic_filter + ": " + session._lost_reason())
        for index in range(1, count + 1):
            session.client.publish(topic, f"{nonce} {index}/{count}", qos=qos)

        def mine() -> int:
            return sum(1 for m in session.messages if m.payload.startswith(nonce.encode()))

        alive = session.pump(lambda: mine() >= count, deadline)
        received = mine()
        if received >= count:
            reason = f"{received}/{count} messages came back on {topic_filter}"
        elif not alive:
            reason = f"{received}/{count} received, then the connection was lost: {session._lost_reason()}"
        else:
            reason = f"{received}/{count} received: {explain(TimeoutError())} ({timeout:.0f} s)"
        return RoundTrip(outcome, count, received, reason)
    finally:
        session.close()


def subscribe(
    host: str,
    port: int,
    topic: str,
    *,
    context: ssl.SSLContext | None,
    qos: int = 0,
    options: SessionOptions = SessionOptions(),
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[Message]:
    """Yield messages on `topic` as they arrive, until the caller stops iterating (or Ctrl-C).

    Raises CheckError when the connection cannot be made or is lost.
    """
    session = _Session(context, options, role="sub")
    try:
        outcome = session.connect(host, port, Deadline(timeout))
        if not outcome.accepted:
            raise CheckError(f"cannot subscribe on {host}:{port}: {outcome.reason}", _connect_hint(outcome))
        session.client.subscribe(topic, qos=qos)
        while True:
            rc = session.client.loop(timeout=0.2)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise CheckError(f"lost the connection to {host}:{port}: {session._lost_reason()}",
                                 "`invoke doctor` checks the broker")
            while session.messages:
                yield session.messages.pop(0)
    finally:
        session.close()


class Listener:
    """A subscription kept open while the caller does other things (the rotation drill's "before" client)."""

    def __init__(self, session: _Session) -> None:
        self._session = session

    def wait_for(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Service the connection until `count` messages have arrived in all; False when they did not (or the
        connection was lost)."""
        deadline = Deadline(timeout)
        alive = self._session.pump(lambda: len(self._session.messages) >= count, deadline)
        return alive and len(self._session.messages) >= count

    def keep_alive(self) -> None:
        """Answer the broker (keepalive, acknowledgements) without waiting for anything."""
        self._session.client.loop(timeout=0.01)


@contextlib.contextmanager
def listen(host: str, port: int, topic: str, *, context: ssl.SSLContext | None, qos: int = 1,
           timeout: float = DEFAULT_TIMEOUT) -> Iterator[Listener]:
    """A connected, subscribed client on `topic` for the `with` block; CheckError when it cannot be had."""
    session = _Session(context, SessionOptions(), role="listen")
    try:
        deadline = Deadline(timeout)
        outcome = session.connect(host, port, deadline)
        if not outcome.accepted:
            raise CheckError(f"cannot subscribe on {host}:{port}: {outcome.reason}", _connect_hint(outcome))
        session.client.subscribe(topic, qos=qos)
        if not session.pump(lambda: session.subacked, deadline) or not session.subacked:
            raise CheckError(f"no SUBACK for {topic} on {host}:{port}: {session._lost_reason()}",
                             "`invoke doctor` checks the broker")
        yield Listener(session)
    finally:
        session.close()


def publish(
    host: str,
    port: int,
    topic: str,
    payloads: list[str],
    *,
    context: ssl.SSLContext | None,
    qos: int = 0,
    options: SessionOptions = SessionOptions(),
    delay: float = 0.0,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Publish each payload to `topic` (`delay` seconds apart), wait until all are sent (QoS 1/2:
    acknowledged); return the count."""
    session = _Session(context, options, role="pub")
    try:
        outcome = session.connect(host, port, Deadline(timeout))
        if not outcome.accepted:
            raise CheckError(f"cannot publish on {host}:{port}: {outcome.reason}", _connect_hint(outcome))
        infos = []
        for index, payload in enumerate(payloads):
            if index and delay > 0:
                # Keep the connection serviced (keepalive, acknowledgements) while waiting between messages.
                session.pump(lambda: False, Deadline(delay))
            infos.append(session.client.publish(topic, payload, qos=qos))
        if not session.pump(lambda: all(info.is_published() for info in infos), Deadline(timeout)):
            raise CheckError(f"lost the connection to {host}:{port}: {session._lost_reason()}",
                             "`invoke doctor` checks the broker")
        return sum(1 for info in infos if info.is_published())
    finally:
        session.close()


def _connect_hint(outcome: ConnectOutcome) -> str:
    if outcome.hostname_mismatch:
        return "connect by the name in the certificate (the lab's hostname), not by address"
    if not outcome.reached:
        return "is the lab up? `invoke status`; `invoke doctor` explains what is wrong"
    return "`invoke doctor` checks names, ports, certificates and the broker"

