"""MkDocs hook: Mermaid served from the site itself, never from a CDN.

Material for MkDocs renders ```mermaid fences with the page's global `mermaid` when a script defined one, and
only otherwise fetches it from unpkg.com, which a machine without internet (or a reader behind a proxy) cannot
reach. `mkdocs.yml` lists `assets/javascripts/mermaid.min.js` in `extra_javascript`; this hook puts that file
into the build from the npm package pinned in docs/package.json (`npm ci --prefix docs`), so no megabytes of
vendored JavaScript live in the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

DOCS = Path(__file__).resolve().parent.parent
MERMAID = DOCS / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
SITE_PATH = "assets/javascripts/mermaid.min.js"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the pinned mermaid.min.js to the site; stop the build with the way out when it is not installed."""
    if not MERMAID.is_file():
        raise PluginError(f"{MERMAID} is missing: run `npm ci --prefix docs` (scripts/docs does it for you)")
    pinned = json.loads((DOCS / "package.json").read_text(encoding="utf-8"))["dependencies"]["mermaid"]
    installed = json.loads((MERMAID.parent.parent / "package.json").read_text(encoding="utf-8"))["version"]
    if installed != pinned:
        raise PluginError(f"docs/node_modules has mermaid {installed}, docs/package.json pins {pinned}: "
                          "run `npm ci --prefix docs`")
    if not any(str(script) == SITE_PATH for script in config.extra_javascript):
        raise PluginError(f"mkdocs.yml: extra_javascript must list {SITE_PATH} (Material would use the CDN)")
    files.append(File.generated(config, SITE_PATH, abs_src_path=str(MERMAID)))
    return files
