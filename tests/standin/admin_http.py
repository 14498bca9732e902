"""The admin endpoint's HTTP(S) server and Amlen's REST routes (``/ima[/v1]/{service,file,configuration,monitor}``).

While the admin security profile has ``TLSEnabled`` false, HTTP and HTTPS share the port (a TLS ClientHello
starts with 0x16), as on Amlen's default admin endpoint; with ``TLSEnabled`` true only TLS is answered. Each
request passes ``adminsec.check_request`` (password, configuration policies) first. Requests are answered with
the bodies, statuses and CWLNA codes of ``messages.py``; the work is done by the ``AdminApp``
(``server.StandIn``) and its ``store.Configuration``.

A change of the admin endpoint's transport (its security profile, certificate profile or the AdminEndpoint
itself) is answered over the old transport and takes effect ``SWITCH_DELAY`` later (real Amlen: HTTPS answered
31-33 ms after the POST's answer); connections opened before it are closed at their next request.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import traceback
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from adminobjects import AdminPlane
from adminsec import CORS_PREFLIGHT_HEADERS, PasswordCache, Refusal, check_request, common_name
from connections import ConnectionRegistry
from diag import ServerLog
from jsonbody import parse_request_json
from messages import AmlenError, success_body
from monitor import connection_monitor, subscription_monitor
from store import Configuration
from subscriptions import SubscriptionRegistry
from tls import build_context

SWITCH_DELAY = 0.03  # seconds from a transport change to the new listener settings


class AdminSettings(Protocol):
    @property
    def admin_host(self) -> str: ...

    @property
    def admin_port(self) -> int: ...


class AdminApp(Protocol):
    """What the routes need from the server."""

    @property
    def settings(self) -> AdminSettings: ...

    log: ServerLog
    config: Configuration | None
    registry: ConnectionRegistry
    subscriptions: SubscriptionRegistry

    def running(self) -> bool: ...

    def status_body(self, service: str | None) -> dict[str, Any]: ...

    def request_stop(self, action: str) -> None: ...


@dataclass(frozen=True)
class Transport:
    """The admin listener's settings: what is enforced, and the TLS context that serves its certificate."""

    plane: AdminPlane
    context: ssl.SSLContext


class AdminServer(ThreadingHTTPServer):
    """The admin endpoint: TLS told from HTTP by the first byte (ClientHello: 0x16); TLS only when enabled."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, app: AdminApp, config: Configuration) -> None:
        self.app = app
        self.config = config
        self.passwords = PasswordCache()
        self._switch_lock = threading.Lock()
        self._switch_pending = False
        self.handlers: set[AdminHandler] = set()  # open connections (guarded by _switch_lock)
        self.transport = self._build(config.admin_plane(), None)
        host = app.settings.admin_host
        address = "0.0.0.0" if host.lower() in ("all", "*") else host
        # The handler takes the transport revision too; finish_request builds it, never the base class.
        super().__init__((address, app.settings.admin_port), AdminHandler)  # type: ignore[arg-type]

    def _build(self, plane: AdminPlane, old: Transport | None) -> Transport:
        try:
            return Transport(plane, build_context(plane.tls))
        except (OSError, ssl.SSLError) as exc:
            self.app.log.log(
                "CWLNA1187", "ERROR", "Admin", f"Unable to create the admin TLS context: {exc}.", console=True
            )
            if old is None:
                raise
            return Transport(plane, old.context)

    def schedule_switch(self) -> None:
        """Apply the changed admin transport a moment after the answer that changed it went out."""
        with self._switch_lock:
            if self._switch_pending:
                return
            self._switch_pending = True

        def switch() -> None:
            transport = self._build(self.config.admin_plane(), self.transport)
            with self._switch_lock:
                self._switch_pending = False
                self.transport = transport
                stale = [handler for handler in self.handlers if handler.revision != transport.plane.revision]
            for handler in stale:
                handler.drop_if_idle()

        timer = threading.Timer(SWITCH_DELAY, switch)
        timer.daemon = True
        timer.start()

    def finish_request(self, request: Any, client_address: Any) -> None:
        transport = self.transport
        request.settimeout(AdminHandler.timeout)
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if not first:
            return
        connection = request
        if first == b"\x16":
            try:
                connection = transport.context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return  # no (trusted) client certificate, or not TLS after all: the handshake failed
        elif transport.plane.tls_only:
            return  # TLS only: plain HTTP gets no answer; the connection is closed
        try:
            AdminHandler(connection, client_address, self, transport.plane.revision)
        finally:
            if connection is not request:
                connection.close()


class AdminHandler(BaseHTTPRequestHandler):
    """Amlen's REST admin API: ``/ima[/v1]/{service,file,configuration,monitor}/...``."""

    server: AdminServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle plus the client's delayed ACK adds 40 ms
    # to every answer (a real Amlen answers in one write).
    disable_nagle_algorithm = True
    server_version = "AmlenStandIn"
    sys_version = ""
    timeout = 120

    def __init__(self, request: Any, client_address: Any, server: AdminServer, revision: int) -> None:
        self.revision = revision  # the admin transport this connection was accepted under
        self.served = 0  # requests answered on this connection
        self.cors: list[tuple[str, str]] = []
        self.busy = threading.Lock()  # held while a request is being answered
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        super().setup()
        with self.server._switch_lock:
            self.server.handlers.add(self)

    def finish(self) -> None:
        with self.server._switch_lock:
            self.server.handlers.discard(self)
        super().finish()

    def drop_if_idle(self) -> None:
        """After a transport switch: an idle kept-alive connection is closed, as the old listener goes away."""
        if self.busy.acquire(blocking=False):
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                self.busy.release()

    # ---- plumbing ------------------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = (json.dumps(body, indent=2) + "\n").encode()
        self._send(status, "application/json", data)
        code = body.get("Code", "")
        self.server.app.log.log(
            "CWLNA6004", "INFO", "Admin", f"REST {self.command} {self.path} -> {status} {code}"
        )

    def _send(self, status: int, content_type: str, data: bytes, extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        for name, value in (*self.cors, *extra):
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.server.config.admin_revision != self.revision:
            # This connection's transport is about to go (this request changed it): say so, so that clients
            # open a new connection under the new transport instead of reusing this one.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, refusal: Refusal, plane: AdminPlane) -> None:
        """401 with Amlen's short text; a password-protected listener asks for Basic credentials."""
        challenge = (("WWW-Authenticate", 'Basic realm="Amlen"'),) if plane.password_authentication else ()
        self._send(401, "text/plain; charset=utf-8", refusal.text.encode(), challenge)
        self.server.app.log.log(
            "CWLNA6004", "INFO", "Admin", f"REST {self.command} {self.path} -> 401 {refusal.text}"
        )

    def _peer_common_name(self) -> str | None:
        if isinstance(self.connection, ssl.SSLSocket):
            return common_name(self.connection.getpeercert())
        return None

    def _gate(self, plane: AdminPlane) -> Refusal | None:
        """The credentials and configuration policies of this request (None: it may go on)."""
        parts = [unquote(part) for part in urlsplit(self.path).path.split("/")][1:]
        rest = parts[2:] if len(parts) > 1 and parts[1] == "v1" else parts[1:]
        if len(parts) < 2 or parts[0] != "ima" or not rest:
            return None  # not an admin request: routing answers it
        return check_request(
            plane,
            self.server.passwords,
            authorization=self.headers.get("Authorization"),
            common_name=self._peer_common_name(),
            address=str(self.client_address[0]),
            family=rest[0],
            method=self.command,
        )

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged by ``_reply`` into the admin log, not to stderr."""

    def _dispatch(self) -> None:
        app, server = self.server.app, self.server
        transport = server.transport
        if transport.plane.revision != self.revision and self.served:
            self.close_connection = True  # kept alive from before a transport switch: closed, no answer
            return
        self.served += 1
        origin = self.headers.get("Origin")
        # Amlen reflects any Origin and allows credentials (observed): any web page may read the answers.
        self.cors = [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true")] if (
            origin is not None
        ) else []
        try:
            body = self._body()
            if self.command == "OPTIONS":
                self._send(200, "", b"", CORS_PREFLIGHT_HEADERS)
                return
            # Users, passwords and policies apply from the next request on; the security profile's switches
            # (password authentication too) with the transport, as Amlen restarts the admin listener for them.
            plane = replace(
                server.config.admin_plane(), password_authentication=transport.plane.password_authentication
            )
            refusal = self._gate(plane)
            if refusal is not None:
                self._refuse(refusal, plane)
                return
            self._reply(*self._route(app, body))
        except AmlenError as exc:
            self._reply(exc.status, exc.body())
        except Exception:
            app.log.log(
                "CWLNA0100", "ERROR", "Admin", f"Unexpected error:\n{traceback.format_exc()}", console=True
            )
            self._reply(500, AmlenError(500, 100).body())
        finally:
            if self.server.config.admin_revision != transport.plane.revision:
                self.close_connection = True
                self.server.schedule_switch()

    def _locked_dispatch(self) -> None:
        with self.busy:
            self._dispatch()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _locked_dispatch

    # ---- routes --------------------------------------------------------------------------------------------

    def _route(self, app: AdminApp, body: bytes) -> tuple[int, dict[str, Any]]:
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.split("/")][1:]
        if len(parts) < 2 or parts[0] != "ima":
            raise AmlenError(400, 137, url.path)
        rest = parts[2:] if parts[1] == "v1" else parts[1:]  # the version segment is optional
        if not rest:
            raise AmlenError(400, 137, url.path)
        family, args, method = rest[0], rest[1:], self.command
        if family == "service":
            return self._service(app, method, args, body, url.path)
        if not app.running() or app.config is None:
            # Not recorded from the real server: the stand-in refuses work until it reports Running, so a lab
            # that does not wait for State 1 fails here rather than by luck against Amlen.
            raise AmlenError(503, 130) if family == "monitor" else AmlenError(503, 167)
        config = app.config
        if family == "file" and method == "PUT" and len(args) == 1:
            config.put_file(args[0], body)
            return 200, success_body()
        if family == "configuration":
            while args and args[-1] == "":
                args = args[:-1]  # "/configuration/" is the same as "/configuration"
            if method == "POST" and not args:
                config.post(parse_request_json(body))
                return 200, success_body()
            # Only the certificate lists have a third level: <Type>/<SecurityProfile>/<file>.
            max_depth = 3 if args and args[0] in ("TrustedCertificate", "ClientCertificate") else 2
            if method == "GET" and 1 <= len(args) <= max_depth:
                return 200, config.get(*args)
            singleton = len(args) == 1 and args[0] in ("AdminEndpoint", "AdminUserID", "AdminUserPassword")
            if method == "DELETE" and (2 <= len(args) <= max_depth or singleton):
                config.delete(*args)
                return 200, success_body()
        if family == "monitor" and method == "GET" and args == ["Endpoint"]:
            names = parse_qs(url.query).get("Name")
            return 200, config.monitor_endpoints(names[0] if names else None)
        if family == "monitor" and method == "GET" and args == ["Connection"]:
            return 200, connection_monitor(app.registry, config.endpoint_names(), parse_qs(url.query))
        if family == "monitor" and method == "GET" and args == ["Subscription"]:
            return 200, subscription_monitor(app.subscriptions, parse_qs(url.query))
        if family == "monitor" and method == "GET":
            raise AmlenError(501, 102)
        raise AmlenError(400, 137, url.path)

    def _service(
        self, app: AdminApp, method: str, args: list[str], body: bytes, path: str
    ) -> tuple[int, dict[str, Any]]:
        if method == "GET" and args and args[0] == "status" and len(args) <= 2:
            return 200, app.status_body(args[1] if len(args) == 2 and args[1] else None)
        if method == "POST" and args in (["restart"], ["stop"]):
            request = parse_request_json(body)
            if not isinstance(request, dict) or request.get("Service") != "Server":
                raise AmlenError(400, 115, "parameters")
            app.request_stop("restart" if args == ["restart"] else "exit")
            return 200, success_body()
        if method == "DELETE" and len(args) == 2 and args[0] == "file" and app.config is not None:
            app.config.delete_staged_file(args[1])
            return 200, success_body()
        raise AmlenError(400, 137, path)
