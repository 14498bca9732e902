"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from lab.settings import Settings

# What a test may send a child to stop it; SIGKILL and SIGSTOP need nothing (they cannot be ignored).
STOP_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)


@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler] | Any) -> Iterator[str]:
    """An HTTP server for `handler` (a handler class or factory) on a free loopback port, in a thread: its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def default_signals() -> None:
    """`preexec_fn` for a child a test will signal: SIGINT, SIGQUIT and SIGTERM back to their default disposition.

    An ignored signal stays ignored across exec, and a run started as a background job of a non-interactive
    shell (a CI launcher's `cmd &`) starts with SIGINT and SIGQUIT ignored; Python then installs no
    KeyboardInterrupt handler, so a child would never see the Ctrl-C the test sends. It only calls sigaction:
    preexec_fn runs between fork and exec, where little is safe.
    """
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_DFL)


def ignored_signals(pid: int) -> set[int]:
    """The signals process `pid` ignores now (the SigIgn mask of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {number for number in range(1, 65) if mask & (1 << (number - 1))}
    return set()


def admin_api(settings: Settings) -> tuple[str, requests.Session]:
    """The lab's admin API as a person's HTTP client sees it, through the lab's own client factory
    (`lab.amlen.adminsec.admin_client`: HTTPS, the lab CA, the lab.admin certificate): (`.../ima/v1`, session)."""
    from lab.amlen.adminsec import admin_client

    client = admin_client(settings)
    return f"{client.base_url}/ima/v1", client.session
