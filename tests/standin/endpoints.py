"""Real endpoints: a TLS front on each enabled Endpoint's port, forwarding to the backing mosquitto.

Why a front and not one mosquitto listener per endpoint: Amlen's ``Protocol "All"`` endpoints speak MQTT and
MQTT over WebSocket on the same port, which a mosquitto listener cannot. The front terminates TLS with the
profile's certificate and key (``tls.py``), looks at the first decrypted bytes (``GET `` starts a WebSocket
upgrade, anything else is MQTT) and pipes the connection to the matching loopback listener of
``broker.Broker``. MQTT over TCP goes through ``mqtt_front.MqttSession``, which applies the endpoint's policies;
WebSocket connections are piped unparsed.

Why threads and blocking sockets: OpenSSL must be allowed to send its alert when a handshake fails. A TLS 1.3
client without a certificate then reads ``tlsv13 alert certificate required`` after its side of the handshake
completed, as with real Amlen; asyncio's TLS transport drops that alert and the client sees a bare EOF.

Amlen's connection limit (``resources.tcp_max_connections``) applies to all endpoints together: a connection
past it is closed right after ``accept``, before any TLS byte, with CWLNA1119 (``server_transport/src/tcp.c``).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from broker import BrokerPorts, Log
from connections import ConnectionRecord, ConnectionRegistry
from mqtt_front import MqttSession, SessionContext
from policies import PolicyLookup
from subscriptions import SubscriptionRegistry
from tls import TlsSettings, build_context

_HANDSHAKE_TIMEOUT = 10.0
_FIRST_PACKET_TIMEOUT = 30.0
_CHUNK = 65536


def _no_policies(_type: str, _name: str) -> None:
    return None


@dataclass(frozen=True)
class EndpointSpec:
    """Everything the front needs to run one enabled endpoint."""

    name: str
    port: int
    interface: str
    allows_mqtt: bool
    password_authentication: bool
    tls: TlsSettings | None
    connection_policies: tuple[str, ...] = ()
    topic_policies: tuple[str, ...] = ()
    lookup: PolicyLookup = field(default=_no_policies, compare=False)


@dataclass
class EndpointStats:
    """The counters ``GET /ima/v1/monitor/Endpoint`` reports for a running endpoint."""

    config_time: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    )
    total: int = 0
    active: int = 0
    messages: int = 0
    bytes: int = 0
    bad_connections: int = 0


class ConnectionBudget:
    """Amlen's ``activeConnectionsCounter`` against ``TcpMaxConnections``, shared by all endpoints."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._active >= self.limit:
                return False
            self._active += 1
            return True

    def give(self) -> None:
        with self._lock:
            self._active -= 1


@dataclass(frozen=True)
class FrontServices:
    """What every listener shares: broker ports, log, the connection budget, connections and subscriptions."""

    ports: BrokerPorts
    log: Log
    budget: ConnectionBudget
    registry: ConnectionRegistry
    subscriptions: SubscriptionRegistry


def _shutdown(sock: socket.socket) -> None:
    """Wake up a thread blocked on ``sock`` and close the connection.

    ``socket.socket.shutdown`` is called on purpose instead of ``SSLSocket.shutdown``: the latter discards the
    SSL object under the feet of the relay thread that is still using it.
    """
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Listener:
    """One endpoint's listening socket, its accept thread and its open connections."""

    def __init__(
        self, spec: EndpointSpec, context: ssl.SSLContext | None, sock: socket.socket, services: FrontServices
    ) -> None:
        self.spec = spec
        self.context = context  # replaced in place when the profiles change (open connections stay)
        self.sock = sock
        self.services = services
        self.log = services.log
        self.stats = EndpointStats()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._accept_loop, name=f"endpoint-{self.spec.name}", daemon=True).start()

    def close(self) -> None:
        """Close the port at once and drop every open connection (Amlen restarts the endpoint)."""
        self._closed.set()
        _shutdown(self.sock)
        self.sock.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _shutdown(conn)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return  # closed by close()
            if not self.services.budget.take():
                self._refuse_over_limit(conn, peer)
                continue
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _refuse_over_limit(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        """tcp.c ``acceptNewConnection``: close before any byte is read, count it as a bad connection."""
        with self._lock:
            self.stats.bad_connections += 1
        self.log(
            "CWLNA1119",
            "ERROR",
            "Transport",
            "Closing TCP connection because there are too many active connections. "
            f'Endpoint="{self.spec.name}" From={peer[0]}.',
        )
        _shutdown(conn)
        conn.close()

    def _track(self, conn: socket.socket | None, add: bool) -> None:
        if conn is None:
            return
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _handshake(self, conn: socket.socket, peer: tuple[str, int]) -> socket.socket | None:
        """The TLS server side of ``conn`` (None when the handshake failed; OpenSSL sent its alert)."""
        context = self.context
        if context is None:
            return conn
        conn.settimeout(_HANDSHAKE_TIMEOUT)
        try:
            client = context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            with self._lock:
                self.stats.bad_connections += 1
            self.log(
                "CWLNA1116",
                "WARN",
                "Connection",
                f"Connection closed during TLS handshake: Endpoint={self.spec.name} From={peer[0]}:{peer[1]} "
                f"Error={exc}",
            )
            return None
        self._track(conn, False)
        self._track(client, True)
        return client

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        with self._lock:
            self.stats.total += 1
            self.stats.active += 1
        client: socket.socket | None = conn
        backend: socket.socket | None = None
        self._track(conn, True)
        try:
            client = self._handshake(conn, peer)
            if client is None:
                return
            client.settimeout(_FIRST_PACKET_TIMEOUT)
            first = client.recv(_CHUNK)
            if not first:
                return
            websocket = first.startswith(b"GET ")
            if not self.spec.allows_mqtt:
                self.log(
                    "CWLNA1103",
                    "WARN",
                    "Connection",
                    f"The protocol is not allowed by the endpoint: Endpoint={self.spec.name} From={peer[0]}",
                )
                return
            port = self.services.ports.pick(websocket=websocket, password=self.spec.password_authentication)
            backend = socket.create_connection(("127.0.0.1", port), timeout=5)
            # Packets are relayed one by one: with Nagle on, a small write waiting for the peer's delayed ACK
            # adds 40 ms to every CONNACK and SUBACK (Amlen answers a packet in one write, at once).
            for sock in (client, backend):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(backend, True)
            client.settimeout(None)
            backend.settimeout(None)
            if websocket:
                backend.sendall(first)
                self._count(len(first))
                self._relay(client, backend)
            else:
                self._mqtt_session(client, backend, peer).run(first)
        except OSError:
            pass  # peer went away, or close() shut the connection down
        finally:
            self.services.budget.give()
            with self._lock:
                self.stats.active -= 1
            for sock in {conn, client, backend} - {None}:
                assert sock is not None
                self._track(sock, False)
                _shutdown(sock)
                sock.close()

    def _mqtt_session(self, client: socket.socket, backend: socket.socket, peer: tuple[str, int]) -> MqttSession:
        spec = self.spec
        context = SessionContext(
            endpoint=spec.name,
            port=spec.port,
            connection_policies=spec.connection_policies,
            topic_policies=spec.topic_policies,
            lookup=spec.lookup,
            registry=self.services.registry,
            subscriptions=self.services.subscriptions,
            log=self.log,
            count_bytes=self._count,
            count_message=self._count_message,
            count_bad=self._count_bad,
        )
        address = peer[0].removeprefix("::ffff:")
        record = ConnectionRecord(endpoint=spec.name, port=spec.port, client_addr=address, client_port=peer[1])
        self.services.registry.add(record)
        return MqttSession(context, client, backend, record, self._closed)

    def _count(self, size: int) -> None:
        with self._lock:
            self.stats.bytes += size

    def _count_message(self) -> None:
        with self._lock:
            self.stats.messages += 1

    def _count_bad(self) -> None:
        with self._lock:
            self.stats.bad_connections += 1

    def _relay(self, client: socket.socket, backend: socket.socket) -> None:
        """Copy bytes both ways until either side closes (WebSocket: not parsed, no policies).

        Decrypted bytes can wait inside the SSL object where ``select`` cannot see them, hence ``pending()``.
        """
        while not self._closed.is_set():
            readable: list[socket.socket]
            if isinstance(client, ssl.SSLSocket) and client.pending():
                readable = [client]
            else:
                readable, _, _ = select.select([client, backend], [], [])
            for source in readable:
                data = source.recv(_CHUNK)
                if not data:
                    return
                (backend if source is client else client).sendall(data)
                self._count(len(data))


class EndpointManager:
    """Starts, restarts and stops the endpoint listeners as the configuration changes."""

    def __init__(self, services: FrontServices) -> None:
        self.services = services
        self._log = services.log
        self._listeners: dict[str, _Listener] = {}
        self._lock = threading.Lock()

    def apply(self, name: str, spec: EndpointSpec | None, *, keep_connections: bool = False) -> None:
        """Stop ``name`` if it runs, then start it again from ``spec`` (None: leave it stopped).

        ``keep_connections`` (a security or certificate profile changed underneath a running endpoint): when
        the port stays the same, only the TLS settings of new connections change and open connections stay, as
        observed on Amlen (a connected client survived a CRL profile being added to its security profile).

        Like Amlen, a failure to start (port taken, address not local, unusable certificate) is only logged:
        the REST call has already succeeded and the endpoint is simply missing from the monitor.
        """
        context = self._context(name, spec) if spec is not None else None
        with self._lock:
            old = self._listeners.get(name)
            if (
                keep_connections
                and old is not None
                and spec is not None
                and (spec.tls is None or context is not None)
                and (old.spec.port, old.spec.interface) == (spec.port, spec.interface)
            ):
                old.spec, old.context = spec, context
                return
            self._listeners.pop(name, None)
        if old is not None:
            old.close()
            self._log(
                "CWLNA1101", "INFO", "Server", f"The endpoint is stopped: Endpoint={name} Port={old.spec.port}."
            )
        if spec is None or (spec.tls is not None and context is None):
            return
        try:
            sock = self._bind(spec)
        except OSError as exc:
            self._log(
                "CWLNA1102",
                "ERROR",
                "Server",
                f"The endpoint failed to start: Endpoint={name} Port={spec.port} Errno={exc.errno} "
                f"({exc.strerror}).",
                console=True,
            )
            return
        listener = _Listener(spec, context, sock, self.services)
        with self._lock:
            self._listeners[name] = listener
        listener.start()
        self._log(
            "CWLNA1100",
            "INFO",
            "Server",
            f"The endpoint is started: Endpoint={name} Port={spec.port} TLS={spec.tls is not None}.",
            console=True,
        )

    def _context(self, name: str, spec: EndpointSpec) -> ssl.SSLContext | None:
        if spec.tls is None:
            return None
        try:
            return build_context(spec.tls)
        except (OSError, ssl.SSLError) as exc:
            self._log(
                "CWLNA1187",
                "ERROR",
                "Server",
                f"Unable to create the TLS context: Endpoint={name} Error={exc}.",
                console=True,
            )
            return None

    @staticmethod
    def _bind(spec: EndpointSpec) -> socket.socket:
        interface = spec.interface
        if interface.lower() in ("all", "*"):
            family, address = socket.AF_INET, "0.0.0.0"
        elif ":" in interface:
            family, address = socket.AF_INET6, interface.strip("[]")
        else:
            family, address = socket.AF_INET, interface
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Lets a restarted endpoint rebind past TIME_WAIT; it does not allow two listeners on one port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, spec.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        return sock

    def running(self) -> dict[str, tuple[EndpointSpec, EndpointStats]]:
        """Endpoints that are listening, with their counters."""
        with self._lock:
            return {name: (listener.spec, listener.stats) for name, listener in self._listeners.items()}

    def stop_all(self) -> None:
        """Close every endpoint (server shutdown)."""
        with self._lock:
            listeners = list(self._listeners.values())
            self._listeners.clear()
        for listener in listeners:
            listener.close()
