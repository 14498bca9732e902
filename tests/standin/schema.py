"""The slice of Amlen's configuration schema the lab touches, and Amlen's generic validation of it.

Property names, types, defaults and limits are those of Amlen's
``server_main/config/serverConfigSchema.json``. The checks mirror ``ism_config_validateItemDataJson``
(``server_admin/src/validate_genericData.c``): strict JSON types (a string where a number belongs is CWLNA0127
with jansson's type name), ranges and options (CWLNA0112), unknown properties (CWLNA0138, as recorded on a
real server), and the name rules of named objects.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from messages import AmlenError, bad_value


class Kind(enum.Enum):
    """Amlen's schema types that matter here."""

    NAME = "Name"
    STRING = "String"
    NUMBER = "Number"
    BOOLEAN = "Boolean"
    ENUM = "Enum"
    LIST = "List"
    BUFFER_SIZE = "BufferSize"
    IP_ADDRESS = "IPAddress"
    SELECTOR = "Selector"


class _NoDefault:
    """Marks a property without a schema default (``None`` is not usable: JSON null means something else)."""

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True)
class Prop:
    """One property of an object type, as the schema declares it."""

    kind: Kind
    default: Any = NO_DEFAULT
    required: bool = False
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    options: tuple[str, ...] = ()
    settable: bool = True
    min_one: bool = False  # Amlen's "MinOneOption": at least one of the group must be non-empty.


def _str(default: Any = NO_DEFAULT, max_length: int | None = None, **kw: Any) -> Prop:
    return Prop(Kind.STRING, default=default, max_length=max_length, **kw)


def _bool(default: bool) -> Prop:
    return Prop(Kind.BOOLEAN, default=default)


def _filters() -> dict[str, Prop]:
    """The policy filters; at least one must be non-empty (CWLNA0139)."""
    return {
        "ClientID": _str("", 1024, min_one=True),
        "ClientAddress": _str("", 8192, min_one=True),
        "UserID": _str("", 1024, min_one=True),
        "GroupID": _str("", 1024, min_one=True),
        "CommonNames": _str("", 1024, min_one=True),
        "Protocol": _str("", min_one=True),
    }


DESCRIPTION = _str("", 1024)

SCHEMAS: dict[str, dict[str, Prop]] = {
    "MessageHub": {"Description": DESCRIPTION},
    "Endpoint": {
        "Enabled": _bool(True),
        "Port": Prop(Kind.NUMBER, required=True, minimum=1, maximum=65535),
        "Protocol": _str("JMS,MQTT"),
        "Interface": Prop(Kind.IP_ADDRESS, default="All"),
        "InterfaceName": _str("", settable=False),
        "SecurityProfile": _str("", 32),
        "ConnectionPolicies": _str(required=True),
        "TopicPolicies": _str(min_one=True),
        "QueuePolicies": _str(min_one=True),
        "SubscriptionPolicies": _str(min_one=True),
        "MaxMessageSize": Prop(Kind.BUFFER_SIZE, default="1024KB", minimum=1024, maximum=268435456),
        "MaxSendSize": Prop(Kind.NUMBER, default=16384, minimum=128, maximum=65536),
        "BatchMessages": _bool(True),
        "EnableAbout": _bool(False),
        "MessageHub": _str(required=True, max_length=256),
        "Description": DESCRIPTION,
    },
    "CertificateProfile": {
        "Certificate": _str(required=True, max_length=255),
        "Key": _str(required=True, max_length=255),
        "ExpirationDate": _str(settable=False),
    },
    "SecurityProfile": {
        "TLSEnabled": _bool(True),
        "MinimumProtocolMethod": Prop(Kind.ENUM, default="TLSv1.2", options=("TLSv1", "TLSv1.1", "TLSv1.2")),
        "UseClientCertificate": _bool(False),
        "UsePasswordAuthentication": _bool(True),
        "AllowNullPassword": _bool(False),
        "Ciphers": Prop(Kind.ENUM, default="Fast", options=("Best", "Medium", "Fast")),
        "CertificateProfile": _str(""),
        "UseClientCipher": _bool(False),
        "LTPAProfile": _str(""),
        "OAuthProfile": _str(""),
        "CRLProfile": _str(""),
    },
    "ConnectionPolicy": {
        "Description": DESCRIPTION,
        **_filters(),
        "AllowDurable": _bool(True),
        "AllowPersistentMessages": _bool(True),
        "ExpectedMessageRate": Prop(Kind.ENUM, default="Default", options=("Low", "Default", "High", "Max")),
        "MaxSessionExpiryInterval": Prop(Kind.NUMBER, minimum=0, maximum=4294967294),
    },
    "TopicPolicy": {
        "Description": DESCRIPTION,
        **_filters(),
        "Topic": _str(required=True, max_length=1024),
        "ActionList": Prop(Kind.LIST, required=True, options=("Publish", "Subscribe")),
        "MaxMessages": Prop(Kind.NUMBER, default=5000, minimum=1, maximum=20000000),
        "MaxMessagesBehavior": Prop(
            Kind.ENUM, default="RejectNewMessages", options=("RejectNewMessages", "DiscardOldMessages")
        ),
        "MaxMessageTimeToLive": _str("unlimited"),
        "DisconnectedClientNotification": _bool(False),
        "DefaultSelectionRule": Prop(Kind.SELECTOR, max_length=4096),
    },
    "SubscriptionPolicy": {
        "Description": DESCRIPTION,
        **_filters(),
        "Subscription": _str(required=True, max_length=1024),
        "ActionList": Prop(Kind.LIST, required=True, options=("Receive", "Control")),
        "MaxMessages": Prop(Kind.NUMBER, default=5000, minimum=1, maximum=20000000),
        "MaxMessagesBehavior": Prop(
            Kind.ENUM, default="RejectNewMessages", options=("RejectNewMessages", "DiscardOldMessages")
        ),
        "DefaultSelectionRule": Prop(Kind.SELECTOR, max_length=4096),
    },
    # serverConfigSchema.json / validate_CRLProfile.c; "Overwrite" is a request option (CRL_PROFILE_OPTIONS).
    "CRLProfile": {
        "CRLSource": _str(required=True, max_length=2048),
        "UpdateInterval": Prop(Kind.NUMBER, default=60, minimum=5, maximum=43200),
        "RevalidateConnection": _bool(False),
    },
    # Present (the admin endpoint's policy) and readable; the stand-in does not implement changing it.
    "ConfigurationPolicy": {
        "Description": DESCRIPTION,
        "ClientAddress": _str("", 8192, min_one=True),
        "UserID": _str("", 1024, min_one=True),
        "GroupID": _str("", 1024, min_one=True),
        "CommonNames": _str("", 1024, min_one=True),
        "ActionList": Prop(Kind.LIST, required=True, options=("Configure", "View", "Monitor", "Manage")),
    },
}

# The named object types the stand-in stores (Amlen has more; see store.NOT_IMPLEMENTED).
NAMED_TYPES = (
    "MessageHub",
    "Endpoint",
    "CertificateProfile",
    "SecurityProfile",
    "ConnectionPolicy",
    "TopicPolicy",
    "SubscriptionPolicy",
    "ConfigurationPolicy",
    "CRLProfile",
)

# Longest object name per type (schema MaxLength of "Name"); SecurityProfile is the exception at 32.
NAME_MAX_LENGTH: dict[str, int] = {"SecurityProfile": 32}
DEFAULT_NAME_MAX_LENGTH = 256

# Entries of the TrustedCertificate array (not a named object).
TRUSTED_CERTIFICATE_ENTRY: dict[str, Prop] = {
    "TrustedCertificate": _str(required=True, max_length=255),
    "SecurityProfileName": Prop(Kind.NAME, required=True),
    "Overwrite": _bool(False),
}

# CRLProfile's request option (validate_CRLProfile.c deletes it before the object is stored).
CRL_PROFILE_OPTIONS: dict[str, Prop] = {"Overwrite": _bool(False)}

# CertificateProfile properties that are request options, not configuration: validated, never stored.
CERTIFICATE_PROFILE_OPTIONS: dict[str, Prop] = {
    "CertFilePassword": _str(),
    "KeyFilePassword": _str(),
    "Overwrite": _bool(False),
}


def json_type_name(value: Any) -> str:
    """jansson's name for the JSON type of ``value``, as Amlen prints it in CWLNA0127."""
    if value is None:
        return "JSON_NULL"
    if value is True:
        return "JSON_TRUE"
    if value is False:
        return "JSON_FALSE"
    if isinstance(value, int):
        return "JSON_INTEGER"
    if isinstance(value, float):
        return "JSON_REAL"
    if isinstance(value, str):
        return "JSON_STRING"
    if isinstance(value, list):
        return "JSON_ARRAY"
    return "JSON_OBJECT"


def check_object_name(obj_type: str, name: str) -> None:
    """Amlen's rules for the name of a named object (``ism_config_validateDataType_name``).

    First character at least ``A`` (no digit, space or punctuation first), no control characters and none of
    ``= , " \\`` (CWLNA0122), no trailing space (CWLNA0115), and at most the schema's MaxLength (CWLNA0133).
    """
    if name == "":
        raise bad_value("Name", '""')
    for index, char in enumerate(name):
        if ord(char) >= 0x80:
            continue  # Amlen checks multi-byte characters only for valid UTF-8.
        if (index == 0 and ord(char) < 0x41) or ord(char) < 0x20 or char in '=,"\\':
            raise AmlenError(400, 122)
    if name.endswith(" "):
        raise AmlenError(400, 115, name)
    if len(name) > NAME_MAX_LENGTH.get(obj_type, DEFAULT_NAME_MAX_LENGTH):
        raise AmlenError(400, 133, obj_type, "Name", name)


_BUFFER_SIZE = re.compile(r"^([0-9]+)(K|KB|M|MB|G|GB)?$", re.IGNORECASE)
_BUFFER_UNITS = {"": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3}


def buffer_size_bytes(value: str) -> int | None:
    """Bytes of an Amlen buffer size such as ``"1024KB"`` or ``"1048576"``; None when it is not one."""
    match = _BUFFER_SIZE.match(value)
    if not match:
        return None
    return int(match.group(1)) * _BUFFER_UNITS[(match.group(2) or "").upper()]


def _is_interface(value: str) -> bool:
    if value.lower() in ("all", "*"):
        return True
    address = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def check_value(obj_type: str, obj_name: str, prop_name: str, prop: Prop, value: Any) -> Any:
    """Validate one non-null property value by its schema type; return the value to store."""
    expected: tuple[type, ...]
    if prop.kind is Kind.NUMBER:
        expected = (int,)
    elif prop.kind is Kind.BOOLEAN:
        expected = (bool,)
    else:
        expected = (str,)
    # bool is an int in Python, but JSON true is not an integer to jansson.
    if not isinstance(value, expected) or (prop.kind is Kind.NUMBER and isinstance(value, bool)):
        raise AmlenError(400, 127, obj_type, obj_name, prop_name, json_type_name(value))

    if prop.kind is Kind.NUMBER:
        if (prop.minimum is not None and value < prop.minimum) or (
            prop.maximum is not None and value > prop.maximum
        ):
            raise bad_value(prop_name, value)
    elif prop.kind is Kind.NAME:
        check_object_name(obj_type, value)
    elif prop.kind in (Kind.STRING, Kind.SELECTOR):
        # Amlen refuses leading or trailing blanks except in descriptions and policy lists.
        blank_edges = value != value.strip(" ")
        if blank_edges and prop_name != "Description" and not prop_name.endswith("Policies"):
            raise bad_value(prop_name, value)
        if prop.max_length is not None and len(value) > prop.max_length:
            raise AmlenError(400, 144, obj_type, prop_name, value)
    elif prop.kind is Kind.ENUM:
        if value not in prop.options:
            raise bad_value(prop_name, value)
    elif prop.kind is Kind.LIST:
        items = [item.strip() for item in value.split(",")]
        if not value or any(item not in prop.options for item in items):
            raise bad_value(prop_name, value)
    elif prop.kind is Kind.BUFFER_SIZE:
        size = buffer_size_bytes(value)
        if size is None or not (prop.minimum or 0) <= size <= (prop.maximum or size):
            raise bad_value(prop_name, value)
    elif prop.kind is Kind.IP_ADDRESS and not _is_interface(value):
        raise bad_value(prop_name, value)
    return value


def validate_properties(
    obj_type: str,
    obj_name: str,
    body: Any,
    schema: dict[str, Prop],
    current: dict[str, Any] | None,
    *,
    options: dict[str, Prop] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a POSTed object against its schema and merge it into ``current`` (None when creating).

    Returns ``(properties, request_options)``: the stored properties after the merge (schema defaults added on
    create, like ``ism_config_addMissingDefaults``) and the validated values of ``options`` (such as
    ``Overwrite``), which are never stored. JSON null resets a property to its default, or removes an optional
    one.
    """
    if not isinstance(body, dict):
        raise AmlenError(400, 127, obj_type, obj_name, obj_type, json_type_name(body))
    options = options or {}
    merged = dict(current or {})
    request_options: dict[str, Any] = {}
    for prop_name, value in body.items():
        prop = schema.get(prop_name) or options.get(prop_name)
        if prop is None:
            raise AmlenError(400, 138, obj_type, obj_name, prop_name)
        if not prop.settable:
            continue  # read-only (ExpirationDate, InterfaceName): ignored when posted back
        if value is None:
            if prop.default is not NO_DEFAULT:
                value = prop.default
            elif prop.required:
                raise AmlenError(400, 134, prop_name, "null")
            else:
                merged.pop(prop_name, None)
                continue
        value = check_value(obj_type, obj_name, prop_name, prop, value)
        if prop_name in schema:
            merged[prop_name] = value
        else:
            request_options[prop_name] = value

    if current is None:
        for prop_name, prop in schema.items():
            if prop_name not in merged and prop.default is not NO_DEFAULT:
                merged[prop_name] = prop.default
    for prop_name, prop in schema.items():
        if prop.required and prop.settable and prop_name not in merged:
            raise AmlenError(400, 134, prop_name, "NULL")
    return merged, request_options


def check_min_one(obj_type: str, props: dict[str, Any], schema: dict[str, Prop]) -> None:
    """Policies: at least one filter must be set (CWLNA0139)."""
    group = [name for name, prop in schema.items() if prop.min_one]
    if group and not any(props.get(name) for name in group):
        raise AmlenError(400, 139, obj_type, ",".join(group))
