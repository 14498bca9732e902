"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from lab.settings import Settings


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def admin_api(settings: Settings) -> tuple[str, requests.Session]:
    """The lab's admin API as a person's HTTP client sees it, through the lab's own client factory
    (`lab.adminsec.admin_client`: HTTPS, the lab CA, the lab.admin certificate): (`.../ima/v1`, session)."""
    from lab.adminsec import admin_client

    client = admin_client(settings)
    return f"{client.base_url}/ima/v1", client.session
