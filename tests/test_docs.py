"""The documentation site: built with `mkdocs build --strict`, its reference pages written from the code, and the
built site opened in headless Chromium (the Mermaid diagram rendered, the navigation working).

Needs the docs extra (part of the test extra), Mermaid from npm (`npm ci --prefix docs`, done by scripts/test and
.ci/run), Debian's chromium and playwright-core (tests/browser/). Nothing here touches Docker.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from types import ModuleType

import pytest

from lab import errors
from lab.settings import Settings
from tests.helpers import serve_http

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "browser" / "docs.mjs"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as CI builds it: strict, so a broken link, a missing page or a drifted reference fails here."""
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout}\n{run.stderr}"
    return out


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    """The built site over HTTP on a free loopback port, as `mkdocs serve` or any web server would serve it."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve_http(functools.partial(Quiet, directory=str(site))) as url:
        yield f"{url}/"


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def test_the_reference_pages_name_every_task_setting_and_error(site: Path) -> None:
    from invoke import Collection

    import tasks

    task_page = _page(site, "reference/tasks")
    for name in Collection.from_module(tasks).task_names:
        assert f'id="{name}"' in task_page, name
    assert "--keep-on-failure" in task_page and "on failure, keep what this run created" in task_page

    settings_page = _page(site, "reference/settings")
    for item in dataclasses.fields(Settings):
        if item.name != "given":
            key = f"LAB_{item.name.upper()}"
            assert f'id="{key.lower().replace("_", "-")}"' in settings_page, key
    assert "256-65536" in settings_page  # the allowed values come from the check's docstring

    errors_page = _page(site, "reference/errors")
    for name in errors.__all__:
        assert f'id="{name.lower()}"' in errors_page, name
    # A hint the lab raises with, read from the source (lab/settings.py's SettingsError hint).
    assert "fix it in .env or the environment (see .env.example)" in errors_page


def test_mermaid_is_served_from_the_site_and_no_page_asks_a_cdn(site: Path) -> None:
    script = site / "assets" / "javascripts" / "mermaid.min.js"
    assert script.stat().st_size > 1_000_000
    home = _page(site, ".")
    assert 'src="assets/javascripts/mermaid.min.js"' in home
    assert "fonts.googleapis.com" not in home  # theme.font: false


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference_hook", REPO / "docs" / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as MkDocs loads hooks: its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_settings_that_drift_from_env_example_are_warnings_which_fail_a_strict_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = _hook()
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    drifted = example.replace("LAB_TLS_PORT=8889", "LAB_TLS_PORT=8899").replace("LAB_MEMORY=3g\n", "")
    (tmp_path / ".env.example").write_text(drifted + "# gone\nLAB_NO_SUCH_KEY=1\n", encoding="utf-8")
    monkeypatch.setattr(hook, "ROOT", tmp_path)
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.reference"):
        hook.settings_page()
    warnings = [record.getMessage() for record in caplog.records]
    assert any("LAB_TLS_PORT=8899" in text and "8889" in text for text in warnings), warnings
    assert any("does not describe LAB_MEMORY" in text for text in warnings), warnings
    assert any("LAB_NO_SUCH_KEY" in text for text in warnings), warnings


def test_the_real_env_example_agrees_with_the_settings(caplog: pytest.LogCaptureFixture) -> None:
    hook = _hook()
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.reference"):
        page = hook.settings_page()
    assert not caplog.records, [record.getMessage() for record in caplog.records]
    assert "`LAB_PKI`" in page and "<code>root</code> or <code>intermediate</code>" in page


@pytest.fixture(scope="module")
def driver() -> Path:
    """The node script that drives Debian's Chromium; fails (never skips) when CI forgot to install it."""
    playwright = DRIVER.parent / "node_modules" / "playwright-core"
    if not (CHROMIUM.exists() and shutil.which("node") and playwright.is_dir()):
        pytest.fail("the docs test needs Debian's chromium and playwright-core: "
                    "apt-get install -y chromium && npm ci --prefix tests/browser")
    return DRIVER


def test_chromium_renders_the_diagram_and_the_navigation_changes_the_page(site_url: str, driver: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    options = {"url": site_url, "navText": "Getting started", "chromium": str(CHROMIUM),
               "screenshot": str(ARTIFACTS / "home.png"), "timeoutMs": 60000}
    run = subprocess.run(["node", str(driver), json.dumps(options)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, f"driver failed:\n{run.stdout}\n{run.stderr}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["pageErrors"] == []
    assert result["foreignRequests"] == []  # Mermaid and fonts from the site itself, nothing from a CDN
    # The home page's picture of what `invoke up` makes, drawn by Mermaid as an SVG with its labels.
    [diagram] = result["diagrams"]
    assert diagram["svg"] and diagram["width"] > 300 and diagram["height"] > 100
    labels = " ".join(diagram["labels"])
    for part in ("8889", "8890", "8891", "9089", ".lab/", "/etc/hosts"):
        assert part in labels, (part, labels)
    assert result["before"] == {"url": site_url, "title": "amlen-lab", "h1": "amlen-lab"}
    assert result["after"] == {"url": f"{site_url}getting-started/", "title": "Getting started - amlen-lab",
                               "h1": "Getting started"}
