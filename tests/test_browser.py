"""The browser route: the page server (lab.clients.browser), and the page itself in headless Chromium over wss://.

The Chromium test needs Debian's chromium and playwright-core from npm (tests/browser/); see `.ci/run`.
The broker behind the page is a lab brought `up` on the Amlen stand-in (`wss_lab`), whose endpoints speak
MQTT and MQTT over secure WebSocket on the same port, as Amlen's `Protocol "All"` endpoints do.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from lab.clients.browser import DEFAULT_TOPIC, STATIC_DIR, has_desktop, page_config, serve_page
from lab.clients.tls import tls_context
from lab.errors import LabError
from lab.pki.paths import pki_paths
from lab.pki.trust import ca_nickname, find_nss_dbs, install_ca
from lab.settings import Settings, load_settings
from tests.conftest import LabEnv, lab_up

REPO = Path(__file__).resolve().parents[1]
DRIVER_DIR = REPO / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
# CI keeps this directory as an artifact: the screenshots show what the page looked like.
ARTIFACTS = REPO / "test-artifacts" / "browser"


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# -- the page server -----------------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(dir=tmp_path / "lab", tls_port=8889, mtls_port=8890)


def test_page_server_serves_the_page_prefilled_with_the_labs_host_and_tls_port(settings: Settings) -> None:
    with serve_page(settings).start() as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, headers, body = _get(server.url + "config.json")
        assert status == 200
        config = json.loads(body)
        assert (config["hostname"], config["tlsPort"], config["mtlsPort"], config["tls"]) == (
            "testserver.getting.started", 8889, 8890, True,
        )
        assert config["caFile"] == str(pki_paths(settings).ca_cert)
        status, headers, body = _get(server.url + "config.js")
        assert body.startswith(b"window.LAB_CONFIG = ")
        assert headers["Cache-Control"] == "no-store"
        status, headers, body = _get(server.url)
        assert status == 200
        assert b'id="connect"' in body
        assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_page_server_lists_no_directories_and_serves_nothing_outside_static(settings: Settings) -> None:
    with serve_page(settings).start() as server:
        assert _get(server.url + "vendor/")[0] == 404
        assert _get(server.url + "../browser.py")[0] == 404
        assert _get(server.url + "%2e%2e/browser.py")[0] == 404
        assert _get(server.url + "vendor/mqtt.min.js")[0] == 200


def test_page_server_on_a_taken_port_fails_with_a_hint(settings: Settings) -> None:
    with serve_page(settings).start() as first:
        port = int(first.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(LabError, match=f"cannot serve the page on 127.0.0.1:{port}") as info:
            serve_page(settings, port=port)
    assert "--port" in (info.value.hint or "")


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and tag in ("script", "link"):
                self.refs.append(value)


def test_page_loads_only_vendored_local_assets_with_licence_and_checksum() -> None:
    parser = _Assets()
    parser.feed((STATIC_DIR / "index.html").read_text())
    local = [ref for ref in parser.refs if not ref.startswith("data:")]
    assert "vendor/mqtt.min.js" in local
    for ref in local:
        assert "//" not in ref, f"{ref} is not local: the page must work without a CDN"
        assert (STATIC_DIR / ref).is_file() or ref == "config.js"
    vendor = STATIC_DIR / "vendor"
    assert "MIT License" in (vendor / "MQTT.js-LICENSE.md").read_text()
    digest = hashlib.sha256((vendor / "mqtt.min.js").read_bytes()).hexdigest()
    assert f"sha256:    {digest}" in (vendor / "VERSION").read_text()


def test_desktop_is_detected_from_display_variables_on_linux_only() -> None:
    assert has_desktop("linux", {}) is False
    assert has_desktop("linux", {"DISPLAY": ":0"}) is True
    assert has_desktop("linux", {"WAYLAND_DISPLAY": "wayland-0"}) is True
    assert has_desktop("darwin", {}) is True


def test_page_config_follows_the_settings(tmp_path: Path) -> None:
    custom = load_settings(dir=tmp_path / "lab", hostname="broker.example.test", tls_port=9443)
    config = page_config(custom)
    assert (config["hostname"], config["tlsPort"]) == ("broker.example.test", 9443)


# -- the page in a real browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["root", "intermediate"])
def wss_lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            standin_image: str) -> Iterator[Settings]:
    """Settings of a lab `up --no-hosts` on the Amlen stand-in: MQTT over wss on its TLS endpoint port, with
    the guide's one-tier CA and with LAB_PKI=intermediate (the browser trusts the root, the server sends the
    intermediate).

    The host name is the guide's (testserver.getting.started): Chromium resolves it through
    --host-resolver-rules (tests/browser/drive.mjs), so the machine's hosts file is never touched. The TLS
    port is a free one rather than the guide's 8889, so a developer's own lab on 8889 does not collide.
    """
    lab_dir = tmp_path_factory.mktemp("wss-lab") / "lab"
    lab = LabEnv.new(lab_dir, standin_image, prefix="amlen-lab-browser", LAB_HOSTNAME="testserver.getting.started",
                     LAB_PKI=request.param)
    with lab_up(lab, "--no-hosts"):
        yield lab.settings().replace(pki=request.param)


@pytest.fixture(scope="module")
def page_url(wss_lab: Settings) -> Iterator[str]:
    with serve_page(wss_lab).start() as server:
        yield server.url


@pytest.fixture(scope="module")
def driver() -> Path:
    """The node script that drives Debian's Chromium; fails (never skips) when CI forgot to install it."""
    script = DRIVER_DIR / "drive.mjs"
    if not CHROMIUM.is_file() or not (DRIVER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail(
            "browser test needs Debian's chromium and playwright-core: "
            "apt-get install -y chromium && npm ci --prefix tests/browser"
        )
    if shutil.which("node") is None:
        pytest.fail("browser test needs Node.js (apt-get install -y nodejs)")
    return script


def _browser_home(root: Path, settings: Settings, *, trust_lab_ca: bool) -> Path:
    """A HOME for Chromium: its NSS database ($HOME/.pki/nssdb) trusts only the lab CA, or nothing."""
    home = root / ("home-trusting-lab-ca" if trust_lab_ca else "home-trusting-nothing")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{db}"], check=True)
    if trust_lab_ca:
        install_ca(settings, nss_dbs=find_nss_dbs(home))
    return home


def _drive(driver: Path, url: str, home: Path, settings: Settings, screenshot: Path, message: str) -> dict:
    options = {
        "url": url, "home": str(home), "userDataDir": str(home / "chromium-profile"),
        "hostname": settings.hostname, "screenshot": str(screenshot), "message": message,
        "chromium": str(CHROMIUM),
    }
    run = subprocess.run(
        ["node", str(driver), json.dumps(options)],
        cwd=DRIVER_DIR, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, f"driver failed:\n{run.stdout}\n{run.stderr}"
    return json.loads(run.stdout.strip().splitlines()[-1])


@contextmanager
def _mqtt_listener(settings: Settings, topic: str) -> Iterator[tuple[list[str], threading.Event]]:
    """A paho client on the same TLS port, over plain MQTT (not WebSocket), subscribed before it yields.

    Yields the payloads received and an event set at each arrival: what the browser publishes over wss must
    reach an MQTT client of the same endpoint, as on Amlen's `Protocol "All"` endpoints.
    """
    received: list[str] = []
    arrived, subscribed = threading.Event(), threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"browser-test-{uuid.uuid4().hex[:8]}")
    client.tls_set_context(tls_context(ca_file=pki_paths(settings).ca_cert, server_name=settings.hostname))
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: (received.append(message.payload.decode()), arrived.set())
    client.connect("127.0.0.1", settings.tls_port, keepalive=30)
    client.loop_start()
    try:
        assert subscribed.wait(10), f"no SUBACK from the stand-in on port {settings.tls_port}"
        yield received, arrived
    finally:
        client.disconnect()
        client.loop_stop()


def test_chromium_connects_over_wss_and_sees_its_message_only_when_the_lab_ca_is_trusted(
    wss_lab: Settings, page_url: str, driver: Path, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    broker = f"wss://{wss_lab.hostname}:{wss_lab.tls_port}"
    shots = ARTIFACTS / wss_lab.pki
    shots.mkdir(exist_ok=True)

    # Without the lab CA: the page says clearly that it could not connect, and why that may be.
    untrusted = _drive(driver, page_url, _browser_home(tmp_path, wss_lab, trust_lab_ca=False), wss_lab,
                       shots / "untrusted.png", "never sent")
    assert untrusted["state"] == "error", untrusted
    assert untrusted["status"].startswith(f"Could not connect to {broker}/mqtt — is the lab CA trusted")
    assert "invoke trust --install" in untrusted["status"]
    assert any("ERR_CERT_AUTHORITY_INVALID" in line for line in untrusted["console"]), untrusted["console"]

    # With only the lab CA trusted: connect, subscribe, publish, and the message comes back into the page.
    home = _browser_home(tmp_path, wss_lab, trust_lab_ca=True)
    listing = subprocess.run(["certutil", "-L", "-d", f"sql:{home / '.pki' / 'nssdb'}"],
                             capture_output=True, text=True, check=True).stdout
    assert [line.split("  ")[0] for line in listing.splitlines()[3:] if line.strip()] == [ca_nickname(wss_lab)]
    message = f"hello from chromium {time.time_ns()}"
    with _mqtt_listener(wss_lab, f"{DEFAULT_TOPIC}/#") as (heard, arrived):
        trusted = _drive(driver, page_url, home, wss_lab, shots / "trusted.png", message)
        assert arrived.wait(5) and message in heard, "an MQTT client on the same port hears the browser"
    assert trusted["state"] == "connected", trusted
    assert trusted["status"] == f"Connected to {broker}/mqtt over TLS."
    assert trusted["received"] is True, trusted["log"]
    assert any(message in entry and "received" in entry for entry in trusted["log"])
    assert trusted["pageErrors"] == []
    assert not [line for line in trusted["console"] if line.startswith("error")], trusted["console"]
    assert (shots / "trusted.png").stat().st_size > 10_000
