"""``GET /ima/v1/monitor/Endpoint`` and ``GET /ima/v1/monitor/Connection``.

Endpoint (as recorded): a disabled endpoint is listed with ``Enabled: false``; an enabled one that failed to
start is not listed at all; naming an endpoint that is not listed answers HTTP 500 CWLNA0100. ``Messages``
counts MQTT PUBLISH packets read and written on the endpoint's MQTT-over-TCP connections.

Connection (``server_monitoring/src/connectionMonData.c``, ``restApi.c``): the query parameters are ``Endpoint``
(a configured endpoint's name, or ``all``) and ``StatType`` (the ordering, default ``NewestConnection``); any
other parameter is ignored, as Amlen ignores unknown monitoring parameters. No connection data is an empty
list. A ``StatType`` that is not one of the six is 400 CWLNA0112 and an ``Endpoint`` that is not configured is
500 CWLNA0100 (neither was recorded: the stricter answers).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from connections import STAT_TYPES, ConnectionRegistry
from endpoints import EndpointSpec, EndpointStats
from messages import AmlenError, bad_value


def endpoint_monitor(
    configured: Mapping[str, dict[str, Any]],
    running: Mapping[str, tuple[EndpointSpec, EndpointStats]],
    name_filter: str | None,
) -> dict[str, Any]:
    """The endpoint monitor body for the configured endpoints and the ones actually listening."""
    pattern = re.compile("^" + ".*".join(map(re.escape, (name_filter or "*").split("*"))) + "$")
    entries = []
    for name, props in configured.items():
        if not pattern.match(name):
            continue
        if props["Enabled"] and name not in running:
            continue
        stats = running[name][1] if name in running else None
        interface = props["Interface"]
        entries.append(
            {
                "Name": name,
                "IPAddr": "ALL" if interface.lower() in ("all", "*") else interface,
                "Enabled": props["Enabled"],
                "Total": stats.total if stats else 0,
                "Active": stats.active if stats else 0,
                "Messages": stats.messages if stats else 0,
                "Bytes": stats.bytes if stats else 0,
                "LastErrorCode": 0,
                "ConfigTime": stats.config_time if stats else None,
                "ResetTime": None,
                "BadConnections": stats.bad_connections if stats else 0,
            }
        )
    if name_filter and "*" not in name_filter and not entries:
        raise AmlenError(500, 100)
    return {"Version": "v1", "Endpoint": entries}


def connection_monitor(
    registry: ConnectionRegistry, configured: Collection[str], query: Mapping[str, list[str]]
) -> dict[str, Any]:
    """The connection monitor body: connections that completed an MQTT CONNECT, behind the monitor lag."""
    stat_type = (query.get("StatType") or ["NewestConnection"])[0]
    if stat_type not in STAT_TYPES:
        raise bad_value("StatType", stat_type)
    endpoint: str | None = (query.get("Endpoint") or [""])[0] or None
    if endpoint == "all":
        endpoint = None
    if endpoint is not None and endpoint not in configured:
        raise AmlenError(500, 100)
    return {"Version": "v1", "Connection": registry.visible(endpoint, stat_type)}
