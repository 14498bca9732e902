"""A web page in the developer's browser is an attacker: the lab's admin API must not be reachable from it.

Headless Chromium (Debian's, driven by playwright-core, tests/browser/attack.mjs) opens a page served from
another origin (another loopback port) whose script `fetch`es `GET /ima/v1/configuration/Endpoint` and POSTs a
MessageHub as a "simple" request (text/plain, no preflight). Against a lab with LAB_ADMIN_SECURITY=open both
work (the risk, shown: Amlen reflects the Origin with allow-credentials); against the default lab (mutual TLS)
both fail, even with the lab CA trusted by the browser, and the configuration is unchanged.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab.amlen.adminsec import admin_client
from tests.conftest import LabEnv
from tests.test_browser import CHROMIUM, DRIVER_DIR, _browser_home

_PAGE = """<!doctype html><meta charset="utf-8"><title>cute cats</title><pre id="result"></pre><script>
const targets = %s;
async function attempt(base) {
  const seen = {base};
  try {
    const read = await fetch(base + "/ima/v1/configuration/Endpoint", {credentials: "include"});
    seen.read = {status: read.status, body: await read.text()};
  } catch (error) { seen.read = {error: String(error)}; }
  try {
    const body = JSON.stringify({MessageHub: {CsrfHub: {Description: "planted by a web page"}}});
    const write = await fetch(base + "/ima/v1/configuration",
                              {method: "POST", headers: {"Content-Type": "text/plain"}, body, credentials: "include"});
    seen.write = {status: write.status, body: await write.text()};
  } catch (error) { seen.write = {error: String(error)}; }
  return seen;
}
(async () => {
  const results = [];
  for (const base of targets) results.push(await attempt(base));
  document.getElementById("result").textContent = JSON.stringify(results);
  document.body.dataset.done = "1";
})();
</script>"""


@contextmanager
def _attacker_page(targets: list[str]) -> Iterator[str]:
    """The attacker's page on its own loopback origin (another port than the admin API)."""
    page = (_PAGE % json.dumps(targets)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def _attack(tmp_path: Path, lab: LabEnv, targets: list[str], *, trust_lab_ca: bool) -> list[dict]:
    if not CHROMIUM.is_file() or not (DRIVER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("browser test needs Debian's chromium and playwright-core: "
                    "apt-get install -y chromium && npm ci --prefix tests/browser")
    home = _browser_home(tmp_path, lab.settings(), trust_lab_ca=trust_lab_ca)
    with _attacker_page(targets) as url:
        options = {"url": url, "home": str(home), "userDataDir": str(home / "chromium-profile"),
                   "chromium": str(CHROMIUM)}
        run = subprocess.run(["node", str(DRIVER_DIR / "attack.mjs"), json.dumps(options)], cwd=DRIVER_DIR,
                             capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, f"driver failed:\n{run.stdout}\n{run.stderr}"
    return list(json.loads(run.stdout.strip().splitlines()[-1]))


def _hubs(lab: LabEnv) -> dict:
    with admin_client(lab.settings()) as amlen:
        return amlen.get("MessageHub") or {}


def test_an_open_lab_is_read_and_changed_by_any_web_page(lab_env: LabEnv, tmp_path: Path) -> None:
    lab_env.env["LAB_ADMIN_SECURITY"] = "open"
    up = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "LAB_ADMIN_SECURITY=open leaves Amlen's admin API on plain HTTP" in " ".join(up.stdout.split())
    [seen] = _attack(tmp_path, lab_env, [f"http://127.0.0.1:{lab_env.admin_port}"], trust_lab_ca=False)
    # The risk, shown: the page read the endpoints (Amlen reflects its Origin with allow-credentials)...
    assert seen["read"]["status"] == 200 and "ClientCertsTLS" in seen["read"]["body"], seen
    # ...and its POST was applied.
    assert seen["write"]["status"] == 200 and "CWLNA6011" in seen["write"]["body"], seen
    assert "CsrfHub" in _hubs(lab_env)


@pytest.mark.parametrize("trust_lab_ca", [False, True])
def test_the_default_lab_is_out_of_reach_of_web_pages(lab_env: LabEnv, tmp_path: Path, trust_lab_ca: bool) -> None:
    up = lab_env.invoke("up", "--no-hosts", "--no-verify")
    assert up.returncode == 0, up.stdout + up.stderr
    before = _hubs(lab_env)
    port = lab_env.admin_port
    # Plain HTTP and HTTPS; with the lab CA trusted by the browser (`invoke certs --trust`) too: it holds no
    # lab.admin certificate, so the handshake still fails.
    results = _attack(tmp_path, lab_env, [f"http://127.0.0.1:{port}", f"https://127.0.0.1:{port}",
                                          f"https://localhost:{port}"], trust_lab_ca=trust_lab_ca)
    for seen in results:
        assert "error" in seen["read"] and "error" in seen["write"], seen
        assert "Failed to fetch" in seen["read"]["error"], seen
    assert _hubs(lab_env) == before and "CsrfHub" not in before
