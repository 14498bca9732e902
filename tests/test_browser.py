"""The browser route: the page server (lab.browser), and the page itself in headless Chromium over wss://.

The Chromium test needs Debian's chromium and playwright-core from npm (tests/browser/); see `.ci/run`.
The broker behind the page is the `wss_lab` fixture: today a real mosquitto with a TLS WebSocket listener and
the lab's certificates; once the lab runs on the Amlen stand-in, a fixture that yields the settings of a lab
brought `up` on it drops in, because the test only uses `settings.hostname`, `tls_port` and `pki_dir`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lab.browser import STATIC_DIR, has_desktop, page_config, serve_page
from lab.certs import ensure_certificates, pki_paths
from lab.errors import LabError
from lab.settings import Settings, load_settings
from lab.trust import ca_nickname, find_nss_dbs, install_ca

REPO = Path(__file__).resolve().parents[1]
DRIVER_DIR = REPO / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
# CI keeps this directory as an artifact: the screenshots show what the page looked like.
ARTIFACTS = REPO / "test-artifacts" / "browser"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.fixture(scope="module")
def wss_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a broker that speaks MQTT over TLS WebSockets at hostname:tls_port with the lab's server cert.

    Today: Debian's mosquitto. Swap for a lab brought `up` on tests/standin when that is ready.
    """
    root = tmp_path_factory.mktemp("wss-lab")
    settings = load_settings(dir=root / "lab", tls_port=_free_port())
    ensure_certificates(settings)
    paths = pki_paths(settings)
    conf = root / "mosquitto.conf"
    # mosquitto 2.0.11 (Debian 12) needs one plain listener before it starts a websockets one (upstream
    # issue #2284), and its websockets listener ignores a bind address (#3045): it listens on all interfaces.
    conf.write_text(
        "user root\nlog_dest stderr\nallow_anonymous true\n"
        f"listener {_free_port()} 127.0.0.1\n"
        f"listener {settings.tls_port}\nprotocol websockets\n"
        f"certfile {paths.server_cert}\nkeyfile {paths.server_key}\n"
    )
    log = root / "mosquitto.log"
    with log.open("wb") as log_file:
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", settings.tls_port), timeout=0.5).close()
                break
            except OSError:
                if broker.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mosquitto did not listen on {settings.tls_port}:\n{log.read_text()}")
                time.sleep(0.05)
        yield settings
    finally:
        broker.terminate()
        broker.wait(timeout=10)


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


def test_chromium_connects_over_wss_and_sees_its_message_only_when_the_lab_ca_is_trusted(
    wss_lab: Settings, page_url: str, driver: Path, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    broker = f"wss://{wss_lab.hostname}:{wss_lab.tls_port}"

    # Without the lab CA: the page says clearly that it could not connect, and why that may be.
    untrusted = _drive(driver, page_url, _browser_home(tmp_path, wss_lab, trust_lab_ca=False), wss_lab,
                       ARTIFACTS / "untrusted.png", "never sent")
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
    trusted = _drive(driver, page_url, home, wss_lab, ARTIFACTS / "trusted.png", message)
    assert trusted["state"] == "connected", trusted
    assert trusted["status"] == f"Connected to {broker}/mqtt over TLS."
    assert trusted["received"] is True, trusted["log"]
    assert any(message in entry and "received" in entry for entry in trusted["log"])
    assert trusted["pageErrors"] == []
    assert not [line for line in trusted["console"] if line.startswith("error")], trusted["console"]
    assert (ARTIFACTS / "trusted.png").stat().st_size > 10_000
