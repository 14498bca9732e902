"""Connection and topic policies, evaluated the way Amlen's ``server_admin/src/policies.c`` does.

- ``ism_common_match`` (``server_utils/src/filter.c``): ``*`` matches any run of characters, ``/`` included;
  everything else is literal.
- ``ism_common_matchWithVars``: the same, after substituting ``${ClientID}``, ``${CommonName}``, ``${UserID}``,
  ``${GroupID}`` (and ``${*}``, ``${$}`` for a literal asterisk or dollar). A variable the connection has no value
  for (no certificate, no user name) makes the match fail.
- A connection policy applies ``matchWithVars`` to ``ClientID`` and the plain match to ``UserID`` and
  ``CommonNames``; a topic policy applies ``matchWithVars`` to ``Topic`` and the plain match to its filters.
  ``Protocol`` is a comma list; ``ClientAddress`` a comma list of addresses and ``low-high`` ranges (IPv6 in
  brackets). All filters of one policy must match; any policy of the endpoint's list admits.

Where the stand-in is stricter than the source: a connection without a client certificate never matches a
``CommonNames`` filter (Amlen matches an absent name against ``*``), and ``GroupID`` matches only ``*`` (the
stand-in has no user registry, so no groups).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

PUBLISH, SUBSCRIBE = "Publish", "Subscribe"
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_SHARED_PREFIXES = ("$share/", "$SharedSubscription/")

PolicyLookup = Callable[[str, str], dict[str, Any] | None]
"""(object type, name) -> the policy's properties, or None when it does not exist (read under the config lock)."""


@dataclass(frozen=True)
class Identity:
    """What policies can test about a connection."""

    client_id: str
    user_id: str | None
    common_name: str | None
    address: str
    protocol: str = "mqtt"


def names(value: str | None) -> list[str]:
    """The entries of a comma list, trimmed, empty ones dropped."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def wildcard_match(value: str | None, pattern: str) -> bool:
    """``ism_common_match``: ``*`` matches zero or more characters; an absent value is the empty string."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value or "", re.DOTALL) is not None


def match_with_vars(value: str, pattern: str, identity: Identity) -> bool:
    """``ism_common_matchWithVars``: substitute the connection's variables, then a wildcard match."""
    parts: list[str] = []
    pos = 0
    for found in _VARIABLE.finditer(pattern):
        parts.append(".*".join(re.escape(chunk) for chunk in pattern[pos : found.start()].split("*")))
        substitute = _variable(found.group(1), identity)
        if substitute is None:
            return False
        parts.append(re.escape(substitute))
        pos = found.end()
    parts.append(".*".join(re.escape(chunk) for chunk in pattern[pos:].split("*")))
    return re.fullmatch("".join(parts), value, re.DOTALL) is not None


def _variable(name: str, identity: Identity) -> str | None:
    values = {
        "ClientID": identity.client_id,
        "CommonName": identity.common_name,
        "UserID": identity.user_id,
        "GroupID": None,  # no groups without a user registry
        "*": "*",
        "$": "$",
    }
    value = values.get(name)
    return value or None


def _address_matches(address: str, rule: str) -> bool:
    """``ism_security_checkAddress``: ``*`` or a list of addresses and ``low-high`` ranges."""
    if rule.strip() in ("*", "0.0.0.0", "[::]"):
        return True
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    for entry in names(rule):
        low_text, _, high_text = entry.partition("-")
        try:
            low = ipaddress.ip_address(low_text.strip().strip("[]"))
            high = ipaddress.ip_address((high_text or low_text).strip().strip("[]"))
        except ValueError:
            continue
        if low.version == high.version == client.version and int(low) <= int(client) <= int(high):
            return True
    return False


def _common_filters_match(policy: dict[str, Any], identity: Identity, *, client_id_vars: bool) -> bool:
    """The filters connection and topic policies share; unset (empty) filters are not checked."""
    if policy.get("UserID") and not wildcard_match(identity.user_id, policy["UserID"]):
        return False
    if policy.get("GroupID") and policy["GroupID"] != "*":
        return False
    client_rule = policy.get("ClientID")
    if client_rule:
        matched = (
            match_with_vars(identity.client_id, client_rule, identity)
            if client_id_vars
            else wildcard_match(identity.client_id, client_rule)
        )
        if not matched:
            return False
    protocols = names(policy.get("Protocol"))
    if protocols and "*" not in protocols and identity.protocol.lower() not in {p.lower() for p in protocols}:
        return False
    if policy.get("ClientAddress") and not _address_matches(identity.address, policy["ClientAddress"]):
        return False
    common_names = policy.get("CommonNames")
    return not common_names or (
        identity.common_name is not None and wildcard_match(identity.common_name, common_names)
    )


def config_policy_matches(policy: dict[str, Any], identity: Identity) -> bool:
    """Whether a ConfigurationPolicy's filters (``ClientAddress``, ``UserID``, ``GroupID``, ``CommonNames``) all
    match an admin request; as with connection policies, unset filters are not checked."""
    return _common_filters_match(policy, identity, client_id_vars=False)


def admits_connection(lookup: PolicyLookup, policy_names: Iterable[str], identity: Identity) -> str | None:
    """The name of the first connection policy that admits ``identity``, or None (refused)."""
    for name in policy_names:
        policy = lookup("ConnectionPolicy", name)
        if policy is not None and _common_filters_match(policy, identity, client_id_vars=True):
            return name
    return None


def subscription_topic(topic_filter: str) -> str:
    """The topic part of a shared subscription filter (``$share/<name>/<filter>``); others unchanged."""
    for prefix in _SHARED_PREFIXES:
        if topic_filter.startswith(prefix):
            return topic_filter[len(prefix) :].partition("/")[2]
    return topic_filter


def may(
    lookup: PolicyLookup, policy_names: Iterable[str], action: str, topic: str, identity: Identity
) -> bool:
    """Whether a topic policy of the endpoint grants ``action`` on ``topic`` (a filter counts as a topic)."""
    return granting_policy(lookup, policy_names, action, topic, identity) is not None


def granting_policy(
    lookup: PolicyLookup, policy_names: Iterable[str], action: str, topic: str, identity: Identity
) -> str | None:
    """The first topic policy of the endpoint's list that grants ``action`` on ``topic``, or None."""
    for name in policy_names:
        policy = lookup("TopicPolicy", name)
        if policy is None or action not in names(policy.get("ActionList")):
            continue
        if not match_with_vars(topic, policy.get("Topic", ""), identity):
            continue
        if _common_filters_match(policy, identity, client_id_vars=False):
            return name
    return None
