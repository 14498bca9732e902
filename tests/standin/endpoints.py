"""Real endpoints: a TLS front on each enabled Endpoint's port, forwarding to the backing mosquitto.

Why a front and not one mosquitto listener per endpoint: Amlen's ``Protocol "All"`` endpoints speak MQTT and
MQTT over WebSocket on the same port, which a mosquitto listener cannot. The front terminates TLS with the
profile's certificate and key (and, with ``UseClientCertificate``, requires a client certificate signed by one
of the profile's trusted CAs), looks at the first decrypted bytes (``GET `` starts a WebSocket upgrade,
anything else is MQTT) and pipes the connection to the matching loopback listener of ``broker.Broker``.

Why threads and blocking sockets: OpenSSL must be allowed to send its alert when a handshake fails. A TLS 1.3
client without a certificate then reads ``tlsv13 alert certificate required`` after its side of the handshake
completed, as with real Amlen; asyncio's TLS transport drops that alert and the client sees a bare EOF.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from broker import BrokerPorts, Log

_HANDSHAKE_TIMEOUT = 10.0
_FIRST_PACKET_TIMEOUT = 30.0
_CHUNK = 65536
_MIN_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
}


@dataclass(frozen=True)
class TlsSettings:
    """What a security profile and its certificate profile contribute to a listener."""

    certificate: Path
    key: Path
    minimum_protocol: str
    use_client_cipher: bool
    require_client_certificate: bool
    trusted_ca_file: Path | None = None
    trusted_ca_path: Path | None = None


@dataclass(frozen=True)
class EndpointSpec:
    """Everything the front needs to run one enabled endpoint."""

    name: str
    port: int
    interface: str
    allows_mqtt: bool
    password_authentication: bool
    tls: TlsSettings | None


@dataclass
class EndpointStats:
    """The counters ``GET /ima/v1/monitor/Endpoint`` reports for a running endpoint."""

    config_time: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
    )
    total: int = 0
    active: int = 0
    bytes: int = 0
    bad_connections: int = 0


def build_context(tls: TlsSettings) -> ssl.SSLContext:
    """The server TLS context of an endpoint, built like Amlen's ``ssl.c`` builds it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # MinimumProtocolMethod only raises the floor; TLS 1.3 stays available, as on Amlen.
    context.minimum_version = _MIN_VERSIONS[tls.minimum_protocol]
    # Amlen loads the certificate file as a chain (leaf first, then intermediates). Expiry is not checked.
    context.load_cert_chain(str(tls.certificate), str(tls.key))
    if not tls.use_client_cipher:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.require_client_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        # The cafile is read now; the hashed directory is searched on each handshake, even if it is empty or
        # missing at this point. So a trusted CA added later is found without restarting the endpoint, as on
        # Amlen (reference 3.8).
        if tls.trusted_ca_file is not None and tls.trusted_ca_file.exists():
            context.load_verify_locations(cafile=str(tls.trusted_ca_file))
        if tls.trusted_ca_path is not None:
            context.load_verify_locations(capath=str(tls.trusted_ca_path))
    return context


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
        self,
        spec: EndpointSpec,
        context: ssl.SSLContext | None,
        sock: socket.socket,
        ports: BrokerPorts,
        log: Log,
    ) -> None:
        self.spec = spec
        self.context = context
        self.sock = sock
        self.ports = ports
        self.log = log
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
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _track(self, conn: socket.socket | None, add: bool) -> None:
        if conn is None:
            return
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        name = self.spec.name
        with self._lock:
            self.stats.total += 1
            self.stats.active += 1
        client: socket.socket = conn
        backend: socket.socket | None = None
        self._track(conn, True)
        try:
            if self.context is not None:
                conn.settimeout(_HANDSHAKE_TIMEOUT)
                try:
                    client = self.context.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError) as exc:
                    with self._lock:
                        self.stats.bad_connections += 1
                    self.log(
                        "CWLNA1116",
                        "WARN",
                        "Connection",
                        f"Connection closed during TLS handshake: Endpoint={name} From={peer[0]}:{peer[1]} "
                        f"Error={exc}",
                    )
                    return
                self._track(conn, False)
                self._track(client, True)
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
                    f"The protocol is not allowed by the endpoint: Endpoint={name} From={peer[0]}",
                )
                return
            port = self.ports.pick(websocket=websocket, password=self.spec.password_authentication)
            backend = socket.create_connection(("127.0.0.1", port), timeout=5)
            self._track(backend, True)
            client.settimeout(None)
            backend.settimeout(None)
            backend.sendall(first)
            self._count(len(first))
            self._relay(client, backend)
        except OSError:
            pass  # peer went away, or close() shut the connection down
        finally:
            with self._lock:
                self.stats.active -= 1
            for sock in (client, backend):
                if sock is not None:
                    self._track(sock, False)
                    _shutdown(sock)
                    sock.close()

    def _count(self, size: int) -> None:
        with self._lock:
            self.stats.bytes += size

    def _relay(self, client: socket.socket, backend: socket.socket) -> None:
        """Copy bytes both ways until either side closes.

        Decrypted bytes can wait inside the SSL object where ``select`` cannot see them, hence ``pending()``.
        """
        while not self._closed.is_set():
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

    def __init__(self, ports: BrokerPorts, log: Log) -> None:
        self._ports = ports
        self._log = log
        self._listeners: dict[str, _Listener] = {}
        self._lock = threading.Lock()

    def apply(self, name: str, spec: EndpointSpec | None) -> None:
        """Stop ``name`` if it runs, then start it again from ``spec`` (None: leave it stopped).

        Like Amlen, a failure to start (port taken, address not local, unusable certificate) is only logged:
        the REST call has already succeeded and the endpoint is simply missing from the monitor.
        """
        with self._lock:
            old = self._listeners.pop(name, None)
        if old is not None:
            old.close()
            self._log(
                "CWLNA1101",
                "INFO",
                "Server",
                f"The endpoint is stopped: Endpoint={name} Port={old.spec.port}.",
            )
        if spec is None:
            return
        try:
            context = build_context(spec.tls) if spec.tls else None
        except (OSError, ssl.SSLError) as exc:
            self._log(
                "CWLNA1187",
                "ERROR",
                "Server",
                f"Unable to create the TLS context: Endpoint={name} Error={exc}.",
                console=True,
            )
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
        listener = _Listener(spec, context, sock, self._ports, self._log)
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
