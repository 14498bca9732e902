"""``GET /ima/v1/monitor/Endpoint``, ``/Connection`` and ``/Subscription``.

Endpoint (as recorded): a disabled endpoint is listed with ``Enabled: false``; an enabled one that failed to
start is not listed at all; naming an endpoint that is not listed answers HTTP 500 CWLNA0100. ``Messages``
counts MQTT PUBLISH packets read and written on the endpoint's MQTT-over-TCP connections. Live.

Connection (recorded 2026-12-02; ``connectionMonData.c``): answered from the cache of ``connections.py``, rebuilt
every 60 s. Parameters: ``Endpoint`` (absent, empty or ``all``: every endpoint; a configured endpoint's name;
anything else, ``*`` included, is 500 CWLNA0100) and ``StatType`` (default ``OldestConnection``). An endpoint
the cache does not hold yet has no entries (``ISMRC_ConnectionNotFound`` becomes ``[ ]`` in
``monitoringutil.c``).

Subscription (recorded 2026-12-02; ``engineMonData.c``, ``monitoringSchema.json``): live. ``SubName``,
``TopicString``, ``ClientID``, ``MessagingPolicy`` are wildcards (default ``*``), ``SubType`` Durable, Nondurable,
All (default) or Admin, ``StatType`` the schema's options (default ``PublishedMsgsHighest``), ``ResultCount``
1..100 (default 25). No match is an empty list.

As ``monitoringutil.c``'s ``ism_monitoring_restapi_stateQuery`` does, parameters a monitor does not know are
ignored, and a known one with a value outside the schema is 400 CWLNA0112.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from connections import STAT_TYPES, ConnectionRegistry
from endpoints import EndpointSpec, EndpointStats
from messages import AmlenError, bad_value
from subscriptions import Query, SubscriptionRegistry, stat_types


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
    """The connection monitor body, from the cache as of its last rebuild."""
    stat_type = _one(query, "StatType") or "OldestConnection"
    if stat_type not in STAT_TYPES:
        raise bad_value("StatType", stat_type)
    endpoint = _one(query, "Endpoint") or None
    if endpoint == "all":
        endpoint = None
    if endpoint is not None and endpoint not in configured:
        raise AmlenError(500, 100)
    return {"Version": "v1", "Connection": registry.listed(endpoint, stat_type)}


def subscription_monitor(registry: SubscriptionRegistry, query: Mapping[str, list[str]]) -> dict[str, Any]:
    """The subscription monitor body, live."""
    sub_type = _one(query, "SubType") or "All"
    if sub_type not in ("Durable", "Nondurable", "All", "Admin"):
        raise bad_value("SubType", sub_type)
    stat_type = _one(query, "StatType") or "PublishedMsgsHighest"
    if stat_type not in stat_types():
        raise bad_value("StatType", stat_type)
    count_text = _one(query, "ResultCount") or "25"
    if not count_text.isdigit() or not 1 <= int(count_text) <= 100:
        raise bad_value("ResultCount", count_text)
    wanted = Query(
        sub_name=_one(query, "SubName") or "*",
        topic=_one(query, "TopicString") or "*",
        client_id=_one(query, "ClientID") or "*",
        policy=_one(query, "MessagingPolicy") or "*",
        sub_type=sub_type,
        stat_type=stat_type,
        count=int(count_text),
    )
    return {"Version": "v1", "Subscription": registry.listed(wanted)}


def _one(query: Mapping[str, list[str]], name: str) -> str:
    """A query parameter's (first) value; empty when absent (the schema's default applies)."""
    return (query.get(name) or [""])[0]
