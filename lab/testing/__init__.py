"""A TLS-ready Amlen for other projects' tests (testcontainers), and the pytest plugin.

    container      `AmlenLabContainer`: start (certificates, readiness, objects, handshakes) and stop
    clients        its TLS contexts and paho clients
    engines        testcontainers on Docker and Podman (Ryuk, where Podman published)
    pytest_plugin  the `amlen_lab` fixtures, registered by the pytest11 entry point

`from lab.testing import AmlenLabContainer` works as it did when this was one module. Names are imported on
first use, so the pytest plugin (which imports this package) imports no docker, testcontainers or paho.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.testing.clients import CONNECT_TIMEOUT as CONNECT_TIMEOUT
    from lab.testing.container import AmlenLabContainer as AmlenLabContainer

__all__ = ["CONNECT_TIMEOUT", "AmlenLabContainer"]

_SURFACE = {
    "AmlenLabContainer": "lab.testing.container",
    "CONNECT_TIMEOUT": "lab.testing.clients",
}


def __getattr__(name: str) -> Any:
    if name in _SURFACE:
        return getattr(importlib.import_module(_SURFACE[name]), name)
    raise AttributeError(f"module 'lab.testing' has no attribute {name!r}")
