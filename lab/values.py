"""What each LAB_* value may be: one check per kind of value, the limits they enforce, and `Secret`.
`lab.settings` applies them; a failed check is a ValueError that it turns into a one-line SettingsError.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "ADMIN_SECURITY_MODES",
    "MIN_MEMORY",
    "PKI_MODES",
    "RESERVED_CLIENT",
    "STORE_FILE_MB_RANGE",
    "Secret",
    "default_hosts_file",
    "is_valid_hostname",
    "memory_bytes",
]


# Amlen autotunes TcpMaxConnections = (memory MiB // 1024) * 2 * 4000: under 1 GiB that is 0 and every
# connection is refused (CWLNA1119), although the server otherwise looks healthy (reference, 2026-11-29).
MIN_MEMORY = 1 << 30
# Store.PersistFileSizeMB: Amlen accepts 256..65536 MiB; 256 keeps a lab volume near 1.1 GiB instead of
# fs/24 per store file (up to 64 GiB on a large disk).
STORE_FILE_MB_RANGE = (256, 65536)
# LAB_PKI: the guide's one-tier toy CA, or a root with an intermediate CA that signs every certificate.
PKI_MODES = ("root", "intermediate")
# How the lab locks its Amlen's admin plane (lab.amlen.adminsec): client certificate, TLS + password, or not at all.
ADMIN_SECURITY_MODES = ("mtls", "password", "open")
# The admin client's CN (lab.amlen.adminfiles.ADMIN_CLIENT): no lab client may carry it.
RESERVED_CLIENT = "lab.admin"
# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, each <= 63, total <= 253.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Amlen SecurityProfile names: alphanumeric only, <= 32, not starting with a digit (CWLNA6206/6205/0122).
_SECURITY_PROFILE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,31}$")
# Other Amlen object names: first character >= 'A', none of `,="\`, no control characters, <= 256.
_AMLEN_NAME = re.compile(r'^[A-Z\[\\\]^_`a-z{|}~\x80-\uffff][^,="\\\x00-\x1f]{0,255}$')
# Client certificate names become file names and certificate CNs.
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Docker's memory syntax: a number and an optional binary unit (b, k, m, g; "kb", "mib"... accepted too).
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def default_hosts_file() -> Path:
    """The platform's hosts file: %SystemRoot%\\System32\\drivers\\etc\\hosts on Windows, else /etc/hosts."""
    if sys.platform == "win32":
        return Path(os.environ.get("SYSTEMROOT", r"C:\Windows")) / "System32" / "drivers" / "etc" / "hosts"
    return Path("/etc/hosts")


def is_valid_hostname(name: str) -> bool:
    """True when `name` is an RFC 1123 DNS name (and not an IP address)."""
    if not name or len(name) > 253 or name.endswith("."):
        return False
    labels = name.split(".")
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def memory_bytes(text: str) -> int | None:
    """Docker's memory syntax (`3g`, `1536m`, `1073741824`) in bytes; None when it is not that syntax."""
    match = _MEMORY.match(text)
    if not match:
        return None
    return int(float(match[1]) * _MEMORY_UNITS[match[2].lower()])


class Secret:
    """A value kept out of reprs, logs and tracebacks (the CA passphrase)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The value itself; call this only where it is used."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _hostname(value: str) -> str:
    """A DNS host name (RFC 1123: letters, digits and inner hyphens; not an IP address)."""
    if not is_valid_hostname(value):
        raise ValueError(f"{value!r} is not a valid DNS host name (RFC 1123: letters, digits, inner hyphens)")
    return value.lower()


def _optional_hostname(value: str) -> str:
    """Empty, or a DNS host name (RFC 1123)."""
    return _hostname(value) if value else value


def _ip(value: str) -> str:
    """An IPv4 or IPv6 address."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _port(value: int) -> int:
    """A port number, 1-65535; each port setting its own."""
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a port number (1-65535)")
    return value


def _security_profile(value: str) -> str:
    """An Amlen SecurityProfile name: letters and digits, at most 32, starting with a letter."""
    if not _SECURITY_PROFILE.match(value):
        raise ValueError(
            f"{value!r} would be rejected by Amlen: a SecurityProfile name is letters and digits only, "
            "at most 32, starting with a letter"
        )
    return value


def _amlen_name(value: str) -> str:
    """An Amlen object name: starts with a letter, none of `, = " \\`, at most 256."""
    if not _AMLEN_NAME.match(value) or value != value.strip():
        raise ValueError(
            f"{value!r} would be rejected by Amlen: names start with a letter and contain none of , = \" \\"
        )
    return value


def _client_names(value: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated names of letters, digits, `.`, `_`, `-` (at most 64 each)."""
    for name in value:
        if not _CLIENT_NAME.match(name):
            raise ValueError(f"{name!r} is not a usable client name (letters, digits, '.', '_', '-')")
        if name.lower() == RESERVED_CLIENT:
            raise ValueError(f"{name!r} is the lab's admin identity (the one CN Amlen's admin API lets in); "
                             "choose another client name")
    return value


def _days(value: int) -> int:
    """Days, 1-36500."""
    if not 1 <= value <= 36500:
        raise ValueError(f"{value} days is not a usable certificate lifetime (1-36500)")
    return value


def _positive(value: float) -> float:
    """Seconds, more than 0."""
    if value <= 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _admin_url(value: str) -> str:
    """Empty, or `http(s)://host:port`."""
    if value and not re.match(r"^https?://[^/\s]+/?$", value):
        raise ValueError(f"{value!r} is not an admin URL like http://127.0.0.1:9089")
    return value.rstrip("/")


def _memory(value: str) -> str:
    """Docker's memory syntax (`3g`, `1536m`), at least `1g`."""
    size = memory_bytes(value)
    if size is None:
        raise ValueError(f"{value!r} is not a memory size like 3g or 1536m")
    if size < MIN_MEMORY:
        raise ValueError(
            f"{value} is below 1 GiB, and under 1 GiB Amlen refuses every connection (it allows "
            "2 x 4000 per whole GiB: CWLNA1119); use 1g or more"
        )
    return value.strip()


def _pki(value: str) -> str:
    """`root` or `intermediate`."""
    mode = value.strip().lower()
    if mode not in PKI_MODES:
        raise ValueError(f"{value!r} is not a PKI mode: 'root' (the guide's CA signs the server directly) or "
                         "'intermediate' (a root, an intermediate CA under it, and every certificate from that)")
    return mode


def _admin_security(value: str) -> str:
    """`mtls` (TLS + the lab.admin client certificate), `password` (TLS + a generated password) or `open`."""
    mode = value.strip().lower()
    if mode not in ADMIN_SECURITY_MODES:
        raise ValueError(f"{value!r} is not an admin security mode: 'mtls' (TLS + the lab.admin client "
                         "certificate, the default), 'password' (TLS + a generated password) or 'open' (plain "
                         "HTTP, no authentication: any web page in your browser can reconfigure Amlen)")
    return mode


def _store_file_mb(value: int) -> int:
    """MiB, 256-65536 (Amlen's range for `Store.PersistFileSizeMB`)."""
    low, high = STORE_FILE_MB_RANGE
    if not low <= value <= high:
        raise ValueError(f"{value} is outside Amlen's range for Store.PersistFileSizeMB ({low}..{high} MiB)")
    return value


VALUE_CHECKS: dict[str, Callable[[Any], Any]] = {
    "hostname": _hostname,
    "host_ip": _ip,
    "tls_port": _port,
    "mtls_port": _port,
    "admin_port": _port,
    "admin_url": _admin_url,
    "memory": _memory,
    "store_file_mb": _store_file_mb,
    "ready_timeout": _positive,
    "certificate_profile": _amlen_name,
    "security_profile": _security_profile,
    "mutual_security_profile": _security_profile,
    "tls_endpoint": _amlen_name,
    "mtls_endpoint": _amlen_name,
    "message_hub": _amlen_name,
    "connection_policy": _amlen_name,
    "topic_policy": _amlen_name,
    "subscription_policy": _amlen_name,
    "ca_days": _days,
    "server_days": _days,
    "client_days": _days,
    "client_names": _client_names,
    "workshop_port": _port,
    "workshop_hostname": _optional_hostname,
    "pki": _pki,
    "admin_security": _admin_security,
}
