"""The guide's browser route: a local page with an MQTT-over-secure-WebSocket client, prefilled for the lab.

The page is static (`lab/static/`: index.html, app.js, style.css and the vendored MQTT.js bundle) plus one
generated file, `config.js`, that carries the lab's host name and ports. It is served over plain HTTP on
127.0.0.1 only: a page from http://127.0.0.1 may open wss:// connections, and the browser, not this server,
checks the broker's certificate against the CAs it trusts (see `lab.pki.trust`).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import sys
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from lab.errors import LabError
from lab.pki.paths import pki_paths
from lab.settings import Settings

__all__ = [
    "DEFAULT_TOPIC",
    "STATIC_DIR",
    "PageServer",
    "has_desktop",
    "open_page",
    "page_config",
    "serve_browser_page",
    "serve_page",
]

STATIC_DIR = Path(__file__).parent.parent / "static"
# MQTT.js's default WebSocket path; Amlen accepts MQTT over WebSocket on any path of an endpoint port.
WS_PATH = "/mqtt"
DEFAULT_TOPIC = "amlen-lab/browser"
# Loopback only: the page needs no other audience, and nothing on the network should reach it.
DEFAULT_HOST = "127.0.0.1"
# The page loads nothing from elsewhere (no CDN) and talks only WebSocket; the browser enforces that.
_CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    # MQTT.js runs its keep-alive timer in a Worker made from a blob: URL (timers survive background tabs).
    "worker-src 'self' blob:; base-uri 'none'; form-action 'none'"
)


def page_config(settings: Settings) -> dict[str, Any]:
    """What the page is prefilled with: the lab's host name, TLS and mutual-TLS ports, path and a topic."""
    return {
        "hostname": settings.hostname,
        "tlsPort": settings.tls_port,
        "mtlsPort": settings.mtls_port,
        "tls": True,
        "path": WS_PATH,
        "topic": DEFAULT_TOPIC,
        "caFile": str(pki_paths(settings).ca_cert),
        "clientNames": list(settings.client_names),
        "trustCommand": "invoke trust --install",
    }


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves STATIC_DIR plus the generated /config.js and /config.json; no listings, no other methods."""

    def __init__(self, *args: Any, config: dict[str, Any], **kwargs: Any) -> None:
        self._config = config
        super().__init__(*args, directory=str(STATIC_DIR), **kwargs)

    def end_headers(self) -> None:
        # Always fresh: after `up` regenerates things, a reload must not show a cached old host or port.
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/config.js":
            body = b"window.LAB_CONFIG = " + json.dumps(self._config).encode() + b";\n"
            self._send(body, "text/javascript")
        elif path == "/config.json":
            self._send(json.dumps(self._config).encode(), "application/json")
        else:
            super().do_GET()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404, "No listing")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        # The task owns the terminal; a request log would bury the URL the user needs.
        pass

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class PageServer:
    """A running page server; `url` is what to open. Use as a context manager, or call `close()`."""

    httpd: http.server.ThreadingHTTPServer
    url: str
    _thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        """Serve in this thread until `close()` (or Ctrl-C in the caller)."""
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> PageServer:
        """Serve from a daemon thread, for tests and callers that go on working."""
        self._thread = threading.Thread(target=self.serve_forever, name="lab-page", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_page(settings: Settings, *, port: int = 0, host: str = DEFAULT_HOST) -> PageServer:
    """Bind the page server on `host`:`port` (0: any free port) and return it, not yet serving.

    A taken port ends in a LabError naming it, with the way out.
    """
    handler = functools.partial(_Handler, config=page_config(settings))
    try:
        httpd = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise LabError(
            f"cannot serve the page on {host}:{port}: {exc.strerror or exc}",
            "choose another port with `invoke browser --port N`, or 0 for any free port",
        ) from exc
    httpd.daemon_threads = True
    # socketserver types the address as it accepts it (str or bytes host); a bound TCP socket reports a str.
    bound_host, bound_port = cast(tuple[str, int], httpd.server_address[:2])
    return PageServer(httpd, f"http://{bound_host}:{bound_port}/")


def has_desktop(platform: str = sys.platform, environ: dict[str, str] | None = None) -> bool:
    """True where a desktop browser can be opened: macOS, Windows, or a Unix session with X11/Wayland."""
    if platform in ("darwin", "win32"):
        return True
    env = os.environ if environ is None else environ
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def open_page(url: str) -> bool:
    """Open `url` in the desktop browser if there is a desktop; False when nothing was opened."""
    if not has_desktop():
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False  # no usable browser registered: the printed URL is the fallback


def serve_browser_page(settings: Settings, say: Callable[[str], None], *, port: int = 0,
                       open_browser: bool = True) -> None:
    """`invoke browser`: serve the page on 127.0.0.1:`port`, `say` where, open it (if asked and possible), and
    serve until Ctrl-C."""
    server = serve_page(settings, port=port)
    with server:
        say(f"MQTT web client: {server.url}  (connects to wss://{settings.hostname}:{settings.tls_port})")
        say("The browser must trust the lab CA first: `invoke trust` shows how. Ctrl-C stops the page.")
        if open_browser and not open_page(server.url):
            say("No desktop browser here: open the URL in a browser on this machine.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            say("page stopped")
