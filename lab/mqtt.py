"""The wire: MQTT over TLS with paho-mqtt 2.x, and bare TLS handshakes with `ssl`, in the lab's words.

Every paho return code, paho log line and `ssl`/socket exception is turned into a sentence here
(`explain`) and nowhere else. Callers get data (`ConnectOutcome`, `RoundTrip`, `Handshake`) and decide
what it means.

By address with the right name: paho passes the host given to `connect()` as `server_hostname` to
`SSLContext.wrap_socket` and has no option to change it (paho #133/#734). `tls_context(server_name=...)`
returns an `SSLContext` subclass whose `wrap_socket` substitutes the name, so paho can dial 127.0.0.1 while
TLS sends SNI and verifies `testserver.getting.started` - no hosts entry needed, full MQTT on top.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from lab.errors import CheckError

__all__ = [
    "ConnectOutcome",
    "Handshake",
    "Message",
    "Protocol",
    "RoundTrip",
    "explain",
    "handshake",
    "publish",
    "round_trip",
    "subscribe",
    "tls_context",
    "try_connect",
]

# Long enough for a TLS handshake plus a few messages on a loaded CI machine; short enough that a
# silent port does not stall the matrix.
DEFAULT_TIMEOUT = 5.0
# How long to wait for a TLS 1.3 alert after the client's side of the handshake completed: the server
# sends its verdict on the client certificate only then (RFC 8446 4.4.2), and on loopback it takes < 10 ms.
_ALERT_WAIT = 0.5

# OpenSSL reason codes -> what they mean for a lab user. The first match wins.
_TLS_REASONS: tuple[tuple[str, str], ...] = (
    ("CERTIFICATE_REQUIRED", "server demanded a client certificate (TLS alert: certificate required)"),
    ("UNKNOWN_CA", "server does not trust the issuer of the client certificate (TLS alert: unknown CA)"),
    ("BAD_CERTIFICATE", "server rejected the client certificate (TLS alert: bad certificate)"),
    ("CERTIFICATE_EXPIRED", "server rejected an expired certificate (TLS alert: certificate expired)"),
    ("CERTIFICATE_UNKNOWN", "server rejected the client certificate (TLS alert: certificate unknown)"),
    ("ACCESS_DENIED", "server denied access (TLS alert: access denied)"),
    ("DECRYPT_ERROR", "client certificate and key do not belong together (TLS alert: decrypt error)"),
    (
        "HANDSHAKE_FAILURE",
        "server refused the handshake (TLS alert: handshake failure; with TLS 1.2 a missing client "
        "certificate looks like this)",
    ),
    ("PROTOCOL_VERSION", "client and server share no TLS version (TLS alert: protocol version)"),
    ("WRONG_VERSION_NUMBER", "the other side does not speak TLS (plain MQTT or HTTP on this port?)"),
    ("PACKET_LENGTH_TOO_LONG", "the other side does not speak TLS (plain MQTT or HTTP on this port?)"),
    ("UNEXPECTED_EOF", "server closed the connection during the TLS handshake"),
    ("EOF occurred in violation of protocol", "server closed the connection during the TLS handshake"),
)


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


@dataclass(frozen=True)
class RoundTrip:
    """A subscribe-then-publish round trip: how many of `sent` came back, and why it stopped."""

    connect: ConnectOutcome
    sent: int
    received: int
    reason: str


@dataclass(frozen=True)
class Message:
    """One received message."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class Handshake:
    """A bare TLS handshake: the server's certificate chain (DER, leaf first) and any error, in words.

    `alert` is what the server said after the client's side of the handshake completed (TLS 1.3 sends the
    verdict on a client certificate only then); None when it kept the connection open.
    """

    reached: bool
    completed: bool
    version: str | None
    chain: tuple[bytes, ...]
    error: str | None
    alert: str | None
    seconds: float


class _LabContext(ssl.SSLContext):
    """An SSLContext that can pin the TLS name, and remembers the sockets it wrapped.

    `server_name`: always send and verify that name, whatever host the socket was dialled by.
    `opened`: paho does not close the socket when the handshake inside `connect()` raises, so the session
    closes what this context opened.
    """

    server_name: str | None = None

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLSocket:
        # SSLContext.wrap_socket's whole signature, so a server_hostname passed by position is replaced too.
        wrapped = super().wrap_socket(
            sock,
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            suppress_ragged_eofs=suppress_ragged_eofs,
            server_hostname=self.server_name or server_hostname,
            session=session,
        )
        self.__dict__.setdefault("opened", []).append(wrapped)
        return wrapped

    def close_opened(self) -> None:
        """Close every socket this context wrapped (idempotent)."""
        for wrapped in self.__dict__.pop("opened", []):
            with contextlib.suppress(OSError):
                wrapped.close()


def tls_context(
    *,
    ca_file: Path | None,
    cert: Path | None = None,
    key: Path | None = None,
    server_name: str | None = None,
) -> ssl.SSLContext:
    """A client TLS context trusting only `ca_file` (None: do not verify the server at all).

    With `server_name`, the context sends and verifies that name even when connecting by IP address.
    Not verifying is for probes of the server's own policy (does it refuse a client without a certificate?),
    where our opinion of the server must not stop the handshake first.
    """
    context = _LabContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = server_name
    try:
        if ca_file is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.load_verify_locations(cafile=str(ca_file))
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise CheckError(
            f"cannot load TLS files ({ca_file}, {cert}, {key}): {explain(exc)}",
            "check the paths; `invoke certs` makes the lab's files",
        ) from exc
    return context


def explain(error: BaseException | str) -> str:
    """One sentence for a connection error (exception or paho log text), in the lab's words."""
    if isinstance(error, ssl.SSLCertVerificationError):
        message = str(error.verify_message or error.reason or error)
        if "mismatch" in message:
            return f"hostname mismatch: {message.rstrip('.')}"
        return f"the server's certificate does not verify against the trusted CA: {message}"
    if isinstance(error, socket.gaierror):
        return f"the name does not resolve ({error.strerror})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused: nothing is listening on that port"
    if isinstance(error, ConnectionResetError):
        return "the server reset the connection"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error)
    for marker, words in _TLS_REASONS:
        if marker.lower() in text.lower():
            return words
    if "Connection reset" in text:
        return "the server reset the connection"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return text or type(error).__name__


def handshake(
    address: str,
    port: int,
    *,
    context: ssl.SSLContext,
    server_name: str,
    wait_for_alert: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Handshake:
    """A TLS handshake like `openssl s_client -connect address:port -servername server_name`, as data.

    With `wait_for_alert`, read briefly after the handshake to learn whether the server accepts the client
    (its TLS 1.3 alert arrives then); paho's own read often loses that alert to a connection reset.
    """
    start = time.perf_counter()
    chain: tuple[bytes, ...] = ()
    try:
        raw = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        return Handshake(False, False, None, (), explain(exc), None, time.perf_counter() - start)
    with raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=server_name)
        except (OSError, ssl.SSLError) as exc:
            return Handshake(True, False, None, (), explain(exc), None, time.perf_counter() - start)
        with tls:
            chain = _chain(tls)
            alert = None
            if wait_for_alert:
                alert = _read_alert(tls)
            return Handshake(True, True, tls.version(), chain, None, alert, time.perf_counter() - start)


def _chain(tls: ssl.SSLSocket) -> tuple[bytes, ...]:
    # Python 3.13 gives the whole presented chain; 3.11/3.12 only the leaf.
    unverified = getattr(tls, "get_unverified_chain", None)
    if unverified is not None:
        # Documented (and typed) as a list of DER-encoded certificates, i.e. bytes.
        der: list[bytes] = unverified() or []
        return tuple(bytes(c) for c in der)
    leaf = tls.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def _read_alert(tls: ssl.SSLSocket) -> str | None:
    tls.settimeout(_ALERT_WAIT)
    try:
        data = tls.recv(1)
    except TimeoutError:
        return None
    except (OSError, ssl.SSLError) as exc:
        return explain(exc)
    return None if data else "server closed the connection right after the handshake"


class _Session:
    """One paho client driven from the calling thread (no loop thread), recording what happens."""

    def __init__(self, protocol: Protocol, context: ssl.SSLContext | None, *, client_id: str) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol.paho)
        self.context = context
        if context is not None:
            self.client.tls_set_context(context)
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

    def connect(self, host: str, port: int, deadline: float) -> ConnectOutcome:
        try:
            self.client.connect(host, port, keepalive=30)
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

    def pump(self, done: Callable[[], bool], deadline: float) -> bool:
        """Run paho's network loop until `done()` or the deadline; False when the connection was lost."""
        while not done():
            left = deadline - time.monotonic()
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
        return "the server closed the connection" if self.errors else "no answer in time"

    def close(self) -> None:
        with contextlib.suppress(Exception):  # best effort: the server may already have gone
            if self.connack is not None and not self.connack.is_failure:
                self.client.disconnect()
                self.client.loop(timeout=0.01)
        # paho closes its socket and wake-up socket pair only in __del__, which a reference cycle delays until
        # the garbage collector runs; close them now, as __del__ would (paho has no public close()).
        with contextlib.suppress(OSError):
            self.client._reset_sockets()
        if isinstance(self.context, _LabContext):
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
) -> ConnectOutcome:
    """Connect and disconnect; `accepted` only when a successful CONNACK arrived (no error is not enough)."""
    session = _Session(protocol, context, client_id=_client_id("probe"))
    try:
        return session.connect(host, port, time.monotonic() + timeout)
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
    deadline = time.monotonic() + timeout
    nonce = secrets.token_hex(6)
    session = _Session(protocol, context, client_id=_client_id("rt"))
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
            reason = f"{received}/{count} received within {timeout:.0f} s"
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
    protocol: Protocol = Protocol.MQTT311,
    timeout: float = DEFAULT_TIMEOUT,
    client_id: str = "",
) -> Iterator[Message]:
    """Yield messages on `topic` as they arrive, until the caller stops iterating (or Ctrl-C).

    `client_id` defaults to a random one; the workshop endpoint wants one that starts with the seat's CN.
    Raises CheckError when the connection cannot be made or is lost.
    """
    session = _Session(protocol, context, client_id=client_id or _client_id("sub"))
    try:
        outcome = session.connect(host, port, time.monotonic() + timeout)
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


def publish(
    host: str,
    port: int,
    topic: str,
    payloads: list[str],
    *,
    context: ssl.SSLContext | None,
    qos: int = 0,
    protocol: Protocol = Protocol.MQTT311,
    timeout: float = DEFAULT_TIMEOUT,
    client_id: str = "",
) -> int:
    """Publish each payload to `topic`, wait until all are sent (QoS 1/2: acknowledged); return the count."""
    session = _Session(protocol, context, client_id=client_id or _client_id("pub"))
    deadline = time.monotonic() + timeout
    try:
        outcome = session.connect(host, port, deadline)
        if not outcome.accepted:
            raise CheckError(f"cannot publish on {host}:{port}: {outcome.reason}", _connect_hint(outcome))
        infos = [session.client.publish(topic, payload, qos=qos) for payload in payloads]
        if not session.pump(lambda: all(info.is_published() for info in infos), deadline):
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

