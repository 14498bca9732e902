"""The client side of `AmlenLabContainer`: TLS contexts that verify the lab's name while dialling an address,
connection parameters for any client, and paho clients.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from lab.clients.tls import explain, tls_context
from lab.errors import CheckError
from lab.pki.paths import PkiPaths
from lab.settings import Settings

__all__ = ["LabClients"]

# MQTT CONNACK on loopback arrives in milliseconds; five seconds absorbs a loaded CI machine.
CONNECT_TIMEOUT = 5.0


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSLSocket that closes itself when its handshake fails (paho leaves that socket to the GC)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


_CONNECT_HINT = "mutual TLS needs a client certificate from this lab's CA (issue_client_cert)"


class LabClients:
    """The client side of `AmlenLabContainer`: TLS contexts, connection parameters and paho clients.

    A mixin: the container provides `settings`, `pki` and the properties declared below once started.
    """

    settings: Settings
    pki: PkiPaths

    if TYPE_CHECKING:
        @property
        def host(self) -> str: ...
        @property
        def tls_port(self) -> int: ...
        @property
        def mtls_port(self) -> int: ...
        @property
        def server_hostname(self) -> str: ...
        @property
        def ca_file(self) -> Path: ...
        @property
        def client_name(self) -> str: ...

    def ssl_context(self, client: str | None = None, *, server_hostname: str | None = None) -> ssl.SSLContext:
        """A client context trusting only the lab CA and always verifying `server_hostname`.

        `client` names a client certificate to present (the default one is `client_name`; others come from
        `issue_client_cert`). The name is substituted in `wrap_socket`, so paho or a plain socket can dial
        `host` by address and still check the certificate's name. `server_hostname` replaces the name to
        verify, for tests that prove a wrong name is refused.
        """
        cert = key = None
        if client is not None:
            key, cert = self.pki.client_presented(client)
            if not cert.exists():
                raise CheckError(f"no client certificate {cert}", f"call issue_client_cert({client!r}) first")
        name = server_hostname or self.server_hostname
        context = tls_context(ca_file=self.ca_file, cert=cert, key=key, server_name=name)
        # paho does not close the socket when the handshake fails in connect(); this class does, so a
        # refused connection leaves no ResourceWarning (an error under `-W error`).
        context.sslsocket_class = _ClosingSSLSocket
        return context

    def connection_params(self, mutual: bool = False, client_name: str | None = None) -> dict[str, Any]:
        """Everything another MQTT client needs: host, port, server_hostname and the PEM file paths.

        With `mutual`, the mutual-TLS port and a client pair (`client_name`, default `client_name`).
        """
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.mtls_port if mutual else self.tls_port,
            "server_hostname": self.server_hostname,
            "ca_certs": str(self.ca_file),
            "certfile": None,
            "keyfile": None,
        }
        if mutual or client_name:
            key, cert = self.pki.client_presented(client_name or self.client_name)
            params.update(certfile=str(cert), keyfile=str(key))
        return params

    def mqtt_client(
        self, *, mutual: bool = False, client_name: str | None = None, **paho_kwargs: Any
    ) -> paho.Client:
        """A paho client with the lab's TLS context set, not yet connected.

        Connect it with `client.connect(amlen.host, amlen.mtls_port if mutual else amlen.tls_port)`.
        `paho_kwargs` go to `paho.Client` (callback API version 2 unless given).
        """
        paho_kwargs.setdefault("callback_api_version", CallbackAPIVersion.VERSION2)
        client = paho.Client(**paho_kwargs)
        client.tls_set_context(self.ssl_context(client_name or (self.client_name if mutual else None)))
        return client

    @contextlib.contextmanager
    def connected_client(
        self,
        *,
        mutual: bool = False,
        client_name: str | None = None,
        timeout: float = CONNECT_TIMEOUT,
        **paho_kwargs: Any,
    ) -> Iterator[paho.Client]:
        """A paho client connected (CONNACK received) with its network loop running; disconnected after.

        Raises CheckError naming the reason (TLS alert, hostname mismatch, no CONNACK) when it cannot connect.
        """
        client = self.mqtt_client(mutual=mutual, client_name=client_name, **paho_kwargs)
        port = self.mtls_port if mutual else self.tls_port
        connack = threading.Event()
        outcome: list[Any] = []

        def on_connect(_client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
            outcome.append(reason)
            connack.set()

        def on_disconnect(*_args: Any) -> None:
            # A refused client certificate (TLS 1.3) shows up here, after connect() returned: stop waiting.
            connack.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        try:
            client.connect(self.host, port)
        except (OSError, ssl.SSLError) as exc:
            raise CheckError(f"cannot connect to {self.host}:{port}: {explain(exc)}", _CONNECT_HINT) from exc
        client.loop_start()
        try:
            answered = connack.wait(timeout)
            if not outcome or outcome[0].is_failure:
                reason = (
                    f"CONNACK {outcome[0]}" if outcome
                    else "the server closed the connection before CONNACK" if answered
                    else f"no CONNACK within {timeout:.0f} s"
                )
                raise CheckError(f"MQTT connect to {self.host}:{port} failed: {reason}", _CONNECT_HINT)
            client.on_connect = client.on_disconnect = None
            yield client
        finally:
            with contextlib.suppress(Exception):  # the server may already have closed the connection
                client.disconnect()
            client.loop_stop()
