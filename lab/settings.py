"""The lab's settings: one frozen, validated object built once from LAB_* variables and an optional `.env`.

Everything else receives a `Settings`; nothing reads the environment at import time.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lab.errors import SettingsError

__all__ = ["Settings", "default_hosts_file", "load_settings"]

# Lifetimes from the guide: a 5-year toy root, and 825 days for leaves because Apple platforms reject
# TLS server certificates valid for longer (and the guide follows that rule).
CA_DAYS = 1825
LEAF_DAYS = 825

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, each <= 63, total <= 253.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Amlen SecurityProfile names: alphanumeric only, <= 32, not starting with a digit (CWLNA6206/6205/0122).
_SECURITY_PROFILE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,31}$")
# Other Amlen object names: first character >= 'A', none of `,="\`, no control characters, <= 256.
_AMLEN_NAME = re.compile(r'^[A-Z\[\\\]^_`a-z{|}~\x80-\uffff][^,="\\\x00-\x1f]{0,255}$')
# Client certificate names become file names and certificate CNs.
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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


class Settings(BaseSettings):
    """Every knob of the lab, with the guide's values as defaults. See `.env.example` for each key."""

    model_config = SettingsConfigDict(
        env_prefix="LAB_", env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True,
        env_ignore_empty=True,
    )

    dir: Path = Path(".lab")
    hostname: str = "testserver.getting.started"
    host_ip: str = "127.0.0.1"
    tls_port: int = 8889
    mtls_port: int = 8890
    admin_port: int = 9089
    admin_url: str = ""  # empty: http://127.0.0.1:<admin_port>, the container's loopback-published port
    image: str = "quay.io/amlen/amlen-server:main"
    container_name: str = "amlen-lab"
    # Docs ask for 4 GB; Amlen's operator runs demo systems in 3Gi, which is kinder to laptops.
    memory: str = "3g"
    hosts_file: Path = Field(default_factory=default_hosts_file)
    ca_passphrase: SecretStr | None = None
    ready_timeout: float = 180.0

    certificate_profile: str = "TestServer-from-ToyCA"
    security_profile: str = "TestServerSecProfile"
    mutual_security_profile: str = "TestServerMutualAuthSecProfile"
    tls_endpoint: str = "TLSTestPort"
    mtls_endpoint: str = "ClientCertsTLS"
    message_hub: str = "DemoHub"
    connection_policy: str = "DemoConnectionPolicy"
    topic_policy: str = "DemoTopicPolicy"
    subscription_policy: str = "DemoSubscriptionPolicy"

    ca_days: int = CA_DAYS
    server_days: int = LEAF_DAYS
    client_days: int = LEAF_DAYS
    client_names: Annotated[tuple[str, ...], NoDecode] = ("test.client1",)

    @field_validator("client_names", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if not is_valid_hostname(value):
            raise ValueError(f"{value!r} is not a valid DNS host name (RFC 1123: letters, digits, inner hyphens)")
        return value.lower()

    @field_validator("host_ip")
    @classmethod
    def _host_ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None

    @field_validator("tls_port", "mtls_port", "admin_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"{value} is not a port number (1-65535)")
        return value

    @field_validator("security_profile", "mutual_security_profile")
    @classmethod
    def _security_profile(cls, value: str) -> str:
        if not _SECURITY_PROFILE.match(value):
            raise ValueError(
                f"{value!r} would be rejected by Amlen: a SecurityProfile name is letters and digits only, "
                "at most 32, starting with a letter"
            )
        return value

    @field_validator(
        "certificate_profile", "tls_endpoint", "mtls_endpoint", "message_hub",
        "connection_policy", "topic_policy", "subscription_policy",
    )
    @classmethod
    def _amlen_name(cls, value: str) -> str:
        if not _AMLEN_NAME.match(value) or value != value.strip():
            raise ValueError(
                f"{value!r} would be rejected by Amlen: names start with a letter and contain none of , = \" \\"
            )
        return value

    @field_validator("client_names")
    @classmethod
    def _client_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _CLIENT_NAME.match(name):
                raise ValueError(f"{name!r} is not a usable client name (letters, digits, '.', '_', '-')")
        return value

    @field_validator("ca_days", "server_days", "client_days")
    @classmethod
    def _days(cls, value: int) -> int:
        if not 1 <= value <= 36500:
            raise ValueError(f"{value} days is not a usable certificate lifetime (1-36500)")
        return value

    @field_validator("ready_timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive number of seconds")
        return value

    @field_validator("admin_url")
    @classmethod
    def _admin_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError(f"{value!r} is not an admin URL like http://127.0.0.1:9089")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        ports = {"LAB_TLS_PORT": self.tls_port, "LAB_MTLS_PORT": self.mtls_port, "LAB_ADMIN_PORT": self.admin_port}
        seen: dict[int, str] = {}
        for key, port in ports.items():
            if port in seen:
                raise ValueError(f"{key} and {seen[port]} are both {port}; each needs its own port")
            seen[port] = key
        if self.security_profile == self.mutual_security_profile:
            raise ValueError("LAB_SECURITY_PROFILE and LAB_MUTUAL_SECURITY_PROFILE must differ")
        if self.tls_endpoint == self.mtls_endpoint:
            raise ValueError("LAB_TLS_ENDPOINT and LAB_MTLS_ENDPOINT must differ")
        return self

    # Derived values: computed, never configured twice.
    @property
    def lab_dir(self) -> Path:
        """The lab directory as an absolute path."""
        return self.dir.expanduser().resolve()

    @property
    def pki_dir(self) -> Path:
        """Where the CA, server and client files live (mode 0700)."""
        return self.lab_dir / "pki"

    @property
    def state_file(self) -> Path:
        """The ledger of what `up` created."""
        return self.lab_dir / "state.json"

    @property
    def admin_base_url(self) -> str:
        """The Amlen admin API's base URL."""
        return self.admin_url or f"http://127.0.0.1:{self.admin_port}"

    def __repr_args__(self) -> Any:
        # SecretStr already masks the passphrase; keep the repr short and safe to paste into a bug report.
        return [(k, v) for k, v in super().__repr_args__() if k != "ca_passphrase"]


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, `.env` and `overrides`; invalid values raise SettingsError.

    The message is one line naming the LAB_* key, so a typo in `.env` is found at once.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        location = error.get("loc") or ()
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if location:
            key = "LAB_" + str(location[0]).upper()
            raise SettingsError(f"{key}: {message}", "fix it in .env or the environment (see .env.example)") from None
        raise SettingsError(message, "fix it in .env or the environment (see .env.example)") from None
