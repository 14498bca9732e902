"""One network thread for many paho clients: the rehearsal's event loop, with epoll instead of paho's select().

paho's own `loop_start()` gives every client a thread and a socket pair, and waits with `select.select`, which
cannot watch a file descriptor numbered 1024 or more: a process with about 330 such clients (three descriptors
each) loses every one opened after that, silently (paho reports "connection lost"). A room may have 999 seats.
So the rehearsal drives its clients through paho's external-loop interface (`loop_read`, `loop_write`,
`loop_misc`, the socket callbacks) from one thread and one `selectors` selector (epoll on Linux): one descriptor
per client, no limit but the process's.

Only this thread touches the sockets: paho hands each socket over when it is connected (`on_socket_open`, called
after the TLS handshake, which paho does in the caller's thread), asks for writes through
`on_socket_register_write`, and gives the socket back when closing (`on_socket_close`, before it closes it).
Those callbacks queue a command (the loop's own thread applies it at once); the loop applies them in order,
so a descriptor number reused by a new socket is never confused with the old one.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt

__all__ = ["NetworkLoop"]

_MISC_EVERY = 1.0  # seconds between loop_misc() calls (keep-alive pings, timeouts)


class NetworkLoop:
    """Runs the network side of every client `attach`ed to it, in one thread, until `stop`."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._commands: deque[tuple[str, mqtt.Client, Any]] = deque()
        self._sockets: dict[mqtt.Client, socket.socket] = {}
        self._writing: set[mqtt.Client] = set()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="rehearsal-network", daemon=True)

    def __enter__(self) -> NetworkLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def attach(self, client: mqtt.Client) -> None:
        """Route `client`'s socket through this loop; call before `client.connect()`."""
        client.on_socket_open = lambda c, _u, sock: self._command("open", c, sock)
        client.on_socket_close = lambda c, _u, sock: self._command("close", c, sock)
        client.on_socket_register_write = lambda c, _u, _s: self._command("write", c, None)
        client.on_socket_unregister_write = None

    def stop(self) -> None:
        """End the thread (the clients' sockets still open are closed by their owners)."""
        self._running = False
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    # -- any thread ----------------------------------------------------------------------------------------

    def _command(self, kind: str, client: mqtt.Client, sock: Any) -> None:
        self._commands.append((kind, client, sock))  # deque.append is atomic
        if threading.current_thread() is self._thread:
            self._apply_commands()  # e.g. paho closing a socket inside loop_read: while it is still open
        else:
            self._wake()

    def _wake(self) -> None:
        # A full pipe means the loop wakes anyway; a closed one that it has stopped.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")

    # -- the loop's thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        misc_at = time.monotonic() + _MISC_EVERY
        while self._running:
            for key, mask in self._selector.select(timeout=_MISC_EVERY):
                if key.data is None:
                    self._drain()
                    continue
                client = key.data
                if mask & selectors.EVENT_READ:
                    self._read(client)
                if mask & selectors.EVENT_WRITE:
                    self._writing.add(client)
            self._apply_commands()
            self._write_pending()
            if time.monotonic() >= misc_at:
                for client in list(self._sockets):
                    client.loop_misc()
                misc_at = time.monotonic() + _MISC_EVERY

    def _drain(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _read(self, client: mqtt.Client) -> None:
        client.loop_read()
        sock = self._sockets.get(client)
        # Decrypted bytes can wait inside the SSL object, where epoll does not see them.
        while isinstance(sock, ssl.SSLSocket) and self._sockets.get(client) is sock and sock.pending():
            client.loop_read()

    def _apply_commands(self) -> None:
        while self._commands:
            kind, client, sock = self._commands.popleft()
            if kind == "open":
                assert isinstance(sock, socket.socket)
                try:
                    self._selector.register(sock, selectors.EVENT_READ, client)
                except (KeyError, ValueError):
                    continue  # closed again before the loop got to it (its "close" follows)
                self._sockets[client] = sock
            elif kind == "close":
                current = self._sockets.get(client)
                if current is not None and current is sock:
                    del self._sockets[client]
                    self._writing.discard(client)
                    self._unregister(current)
            else:
                self._writing.add(client)

    def _write_pending(self) -> None:
        for client in list(self._writing):
            sock = self._sockets.get(client)
            if sock is None:
                continue  # not open yet (its "open" comes first) or already closed
            client.loop_write()
            if self._sockets.get(client) is not sock:
                continue  # the write was a DISCONNECT: paho closed the socket
            if client.want_write():
                self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
            else:
                self._writing.discard(client)
                self._selector.modify(sock, selectors.EVENT_READ, client)

    def _unregister(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)  # found by identity even when already closed
