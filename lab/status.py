"""`invoke status`: where the lab stands, read-only and quick (doctor explains; status reports)."""

from __future__ import annotations

from typing import Any

from lab import runtime
from lab.amlen import AmlenClient, is_ready
from lab.certs import describe_certificate, pki_paths
from lab.errors import LabError
from lab.hosts import hosts_status
from lab.settings import Settings
from lab.volume import volume_usage

__all__ = ["lab_status"]


def lab_status(settings: Settings) -> dict[str, Any]:
    """Container state, readiness, each endpoint live or not, the hosts entry and certificate expiry."""
    result: dict[str, Any] = {"lab_dir": str(settings.lab_dir)}
    try:
        client = runtime.docker_client()
        container = runtime.find_lab_container(client, settings)
        result["container"] = (
            {"name": container.name, "state": container.status, "image": settings.image} if container else None
        )
        usage = volume_usage(container) if container is not None else None
        if usage is not None:
            result["volume"] = {"apparent_bytes": usage.apparent_bytes, "disk_bytes": usage.disk_bytes,
                                "store_file_mb": usage.store_file_mb}
    except LabError as exc:
        result["container"] = {"error": exc.message}
    try:
        with AmlenClient(settings.admin_base_url, timeout=2.0) as amlen:
            status = amlen.status()
            server = status.get("Server") or {}
            result["amlen"] = {"ready": is_ready(status), "state": server.get("StateDescription"),
                               "version": server.get("Version")}
            result["endpoints"] = {}
            for name, port in ((settings.tls_endpoint, settings.tls_port),
                               (settings.mtls_endpoint, settings.mtls_port)):
                entry = amlen.endpoint_monitor(name)
                live = bool(entry and entry.get("Enabled") and not entry.get("LastErrorCode"))
                result["endpoints"][name] = {"port": port, "live": live}
    except LabError as exc:
        result["amlen"] = {"ready": False, "error": exc.message}
    try:
        hosts = hosts_status(settings)
        result["hosts"] = {"state": hosts.state.value, "message": hosts.message}
    except LabError as exc:
        result["hosts"] = {"error": exc.message}
    pki = pki_paths(settings)
    certs = {}
    for label, path in (("CA", pki.ca_cert), ("server", pki.server_cert)):
        if path.exists():
            info = describe_certificate(path)
            certs[label] = {"path": str(path), "expires": info.not_after.isoformat(), "days_left": info.days_left}
    result["certificates"] = certs
    return result
