"""amlen-lab: the Amlen TLS guide as two commands, `invoke up` and `invoke down`.

The public surface, for scripts and for other projects' tests::

    from lab import load_settings, up, down
    report = up(load_settings(dir="/tmp/my-lab"))

Names are imported on first use, so `import lab` (which pytest does for the plugin) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "LabError",
    "Options",
    "Settings",
    "__version__",
    "configure",
    "down",
    "load_settings",
    "up",
    "verify",
]

_SURFACE = {
    "__version__": "lab.version",
    "LabError": "lab.errors",
    "Options": "lab.steps",
    "Settings": "lab.settings",
    "configure": "lab.plan",
    "down": "lab.plan",
    "load_settings": "lab.settings",
    "up": "lab.plan",
    "verify": "lab.clients.checks",
}


def __getattr__(name: str) -> Any:
    if name in _SURFACE:
        return getattr(importlib.import_module(_SURFACE[name]), name)
    raise AttributeError(f"module 'lab' has no attribute {name!r}")
