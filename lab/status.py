"""`invoke status`: where the lab stands, read-only and quick (doctor explains; status reports).

The four questions (Docker, Amlen, the hosts file, the certificates) are independent and mostly waiting on
I/O, so they are asked at once: the answer takes as long as the slowest, not as long as all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lab.errors import LabError
from lab.settings import Settings

__all__ = ["lab_endpoints", "lab_status"]


def lab_endpoints(settings: Settings) -> list[tuple[str, int]]:
    """The endpoints this lab runs, with their ports: the guide's two, and the workshop's once it was made."""
    from lab.ledger import Ledger

    found = [(settings.tls_endpoint, settings.tls_port), (settings.mtls_endpoint, settings.mtls_port)]
    recorded = (Ledger.load(settings.state_file).entries.get("amlen") or {}).get("objects") or []
    found += [(o["name"], settings.workshop_port) for o in recorded
              if o.get("type") == "Endpoint" and o.get("name") not in dict(found)]
    return found


def lab_status(settings: Settings) -> dict[str, Any]:
    """Container and volume, readiness, each endpoint live or not, the hosts entry and certificate expiry."""
    parts: list[Callable[[Settings], dict[str, Any]]] = [_docker, _amlen, _hosts, _certificates]
    result: dict[str, Any] = {"lab_dir": str(settings.lab_dir)}
    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="status") as pool:
        for part in pool.map(lambda ask: ask(settings), parts):
            result.update(part)
    return result


def _docker(settings: Settings) -> dict[str, Any]:
    from lab.container import runtime
    from lab.container.engine import connect
    from lab.container.volume import volume_usage

    try:
        engine = connect()
    except LabError as exc:
        return {"container": {"error": exc.message}}
    client = engine.client
    try:
        described = {"engine": {**engine.as_dict(), "describe": engine.describe()}}
        container = runtime.find_lab_container(client, settings)
        if container is None:
            return {**described, "container": None}
        found: dict[str, Any] = {
            **described,
            "container": {"name": container.name, "state": container.status, "image": settings.image},
        }
        usage = volume_usage(container)
        if usage is not None:
            found["volume"] = {"apparent_bytes": usage.apparent_bytes, "disk_bytes": usage.disk_bytes,
                               "store_file_mb": usage.store_file_mb}
        return found
    finally:
        client.close()


def _amlen(settings: Settings) -> dict[str, Any]:
    from lab.amlen.admin import is_ready
    from lab.amlen.adminsec import admin_client

    try:
        with admin_client(settings, timeout=2.0) as amlen:
            status = amlen.status(timeout=2.0)
            server = status.get("Server") or {}
            endpoints = {}
            for name, port in lab_endpoints(settings):
                entry = amlen.endpoint_monitor(name)
                live = bool(entry and entry.get("Enabled") and not entry.get("LastErrorCode"))
                endpoints[name] = {"port": port, "live": live}
    except LabError as exc:
        return {"amlen": {"ready": False, "error": exc.message, "hint": exc.hint}}
    ready = {"ready": is_ready(status), "state": server.get("StateDescription"), "version": server.get("Version")}
    return {"amlen": ready, "endpoints": endpoints, "admin": _admin(settings)}


def _admin(settings: Settings) -> dict[str, Any]:
    """How the admin API is locked, and the one curl line that reaches it by hand."""
    from lab.amlen.adminsec import admin_curl, lab_owns_admin, target_rung

    lock = str(target_rung(settings)) if lab_owns_admin(settings) else "as its owner set it (LAB_ADMIN_URL)"
    if lab_owns_admin(settings) and settings.admin_security == "open":
        lock = "OPEN: plain HTTP, no login, reachable from any web page (LAB_ADMIN_SECURITY=open)"
    return {"url": settings.admin_base_url, "security": settings.admin_security, "lock": lock,
            "curl": admin_curl(settings)}


def _hosts(settings: Settings) -> dict[str, Any]:
    from lab.hosts import hosts_status

    try:
        hosts = hosts_status(settings)
    except LabError as exc:
        return {"hosts": {"error": exc.message}}
    return {"hosts": {"state": hosts.state.value, "message": hosts.message}}


def _certificates(settings: Settings) -> dict[str, Any]:
    from lab.pki.info import describe_certificate
    from lab.pki.paths import pki_paths

    pki = pki_paths(settings)
    certs = {}
    # The server certificate is the leaf Amlen serves (the first of the served file: your own, with LAB_SERVER_CERT).
    files = [("CA", pki.ca_cert)] + ([("intermediate CA", pki.intermediate_cert)] if pki.two_tier else [])
    for label, path in (*files, ("server", pki.served_cert)):
        if path.exists():
            info = describe_certificate(path)
            certs[label] = {"path": str(path), "expires": info.not_after.isoformat(), "days_left": info.days_left}
    return {"certificates": certs}
