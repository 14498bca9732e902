"""The lab's settings: one frozen, validated object built once from LAB_* variables and an optional `.env`.

Everything else receives a `Settings`; nothing reads the environment at import time. A plain dataclass
on purpose: every `invoke` command builds one, and a validation framework would cost more start-up time
than the whole warm `up` has to spend (issue 13). A bad value is a `SettingsError` whose one line names
the LAB_* key.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from lab.errors import SettingsError
from lab.values import STORE_FILE_MB_RANGE, VALUE_CHECKS, Secret, default_hosts_file, is_valid_hostname, memory_bytes

__all__ = ["Secret", "Settings", "default_hosts_file", "is_valid_hostname", "load_settings", "memory_bytes"]

# Lifetimes from the guide: a 5-year toy root, and 825 days for leaves because Apple platforms reject
# TLS server certificates valid for longer (and the guide follows that rule).
CA_DAYS = 1825
LEAF_DAYS = 825
_HINT = "fix it in .env or the environment (see .env.example)"
# The user's own files: read wherever the lab runs from, so kept as absolute paths.
_USER_FILES = ("server_cert", "server_key", "trust_ca", "admin_ca", "admin_cert", "admin_key", "admin_netrc")


# ---- validators: each returns the normalised value or raises ValueError with the words for the user -------


@dataclass(frozen=True)
class Settings:
    """Every knob of the lab, with the guide's values as defaults. See `.env.example` for each key.

    Build it with `load_settings()` (environment and `.env`) or directly with keyword arguments (tests);
    either way every value is validated. `replace(**changes)` gives a validated copy.
    """

    dir: Path = Path(".lab")
    hostname: str = "testserver.getting.started"
    host_ip: str = "127.0.0.1"
    tls_port: int = 8889
    mtls_port: int = 8890
    admin_port: int = 9089
    admin_url: str = ""  # empty: https://127.0.0.1:<admin_port> (http:// when open), the lab's own Amlen
    image: str = "quay.io/amlen/amlen-server:main"
    container_name: str = "amlen-lab"
    # Docs ask for 4 GB; Amlen's operator runs demo systems in 3Gi, which is kinder to laptops.
    memory: str = "3g"
    store_file_mb: int = STORE_FILE_MB_RANGE[0]
    hosts_file: Path = field(default_factory=default_hosts_file)
    ca_passphrase: Secret | None = field(default=None, repr=False)
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
    client_names: tuple[str, ...] = ("test.client1",)

    workshop_port: int = 8891
    workshop_hostname: str = ""

    # The real-CA path: a two-tier toy PKI, the root served too, or your own server certificate.
    pki: str = "root"
    serve_root: bool = False
    server_cert: Path | None = None
    server_key: Path | None = None
    server_key_password: Secret | None = field(default=None, repr=False)
    trust_ca: Path | None = None

    # The admin plane: how the lab's own Amlen is locked (lab.amlen.adminsec), and how to reach an Amlen elsewhere
    # (LAB_ADMIN_URL): its CA, a client certificate and key, and/or a netrc file with its user and password.
    admin_security: str = "mtls"
    admin_ca: Path | None = None
    admin_cert: Path | None = None
    admin_key: Path | None = None
    admin_netrc: Path | None = None

    # Which keys were given explicitly (not defaults): lets callers tell "the default" from "asked for".
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    _PORT_KEYS: ClassVar[tuple[str, ...]] = ("tls_port", "mtls_port", "admin_port", "workshop_port")

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            if item.name == "given":
                continue
            raw = getattr(self, item.name)
            try:
                value = _convert(item.name, item.type, raw)
                check = VALUE_CHECKS.get(item.name)
                if check is not None:
                    value = check(value)
            except ValueError as exc:
                raise SettingsError(f"{_key(item.name)}: {exc}", _HINT) from None
            if value is not raw:
                object.__setattr__(self, item.name, value)
        self._check_together()

    def _check_together(self) -> None:
        seen: dict[int, str] = {}
        for name in self._PORT_KEYS:
            port = getattr(self, name)
            if port in seen:
                raise SettingsError(
                    f"{_key(name)} and {_key(seen[port])} are both {port}; each needs its own port", _HINT
                )
            seen[port] = name
        if self.security_profile == self.mutual_security_profile:
            raise SettingsError("LAB_SECURITY_PROFILE and LAB_MUTUAL_SECURITY_PROFILE must differ", _HINT)
        if self.tls_endpoint == self.mtls_endpoint:
            raise SettingsError("LAB_TLS_ENDPOINT and LAB_MTLS_ENDPOINT must differ", _HINT)
        if (self.server_cert is None) != (self.server_key is None):
            given, missing = ("LAB_SERVER_CERT", "LAB_SERVER_KEY") if self.server_key is None else \
                ("LAB_SERVER_KEY", "LAB_SERVER_CERT")
            raise SettingsError(f"{given} is set but {missing} is not: your own server certificate needs both",
                                _HINT)
        if (self.admin_cert is None) != (self.admin_key is None):
            raise SettingsError("LAB_ADMIN_CERT and LAB_ADMIN_KEY go together (the client certificate for "
                                "LAB_ADMIN_URL and its key)", _HINT)
        if self.server_cert is None and (self.server_key_password is not None or self.trust_ca is not None):
            extra = "LAB_SERVER_KEY_PASSWORD" if self.server_key_password is not None else "LAB_TRUST_CA"
            raise SettingsError(f"{extra} goes with LAB_SERVER_CERT and LAB_SERVER_KEY (your own server "
                                "certificate); the lab's own clients trust myCA.pem", _HINT)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' field names (each is read from LAB_<NAME>)."""
        return tuple(item.name for item in dataclasses.fields(cls) if item.name != "given")

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with `changes` applied (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, given=self.given | set(changes), **changes)

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
    def verify_dir(self) -> Path:
        """Where verification keeps its throwaway client from another CA between runs."""
        return self.lab_dir / "verify"

    @property
    def own_server(self) -> bool:
        """True when the server certificate is the user's (LAB_SERVER_CERT), not one the lab makes."""
        return self.server_cert is not None

    @property
    def state_file(self) -> Path:
        """The ledger of what `up` created."""
        return self.lab_dir / "state.json"

    @property
    def admin_base_url(self) -> str:
        """The Amlen admin API's base URL: HTTPS unless LAB_ADMIN_SECURITY=open (lab.amlen.adminsec)."""
        scheme = "http" if self.admin_security == "open" else "https"
        return self.admin_url or f"{scheme}://127.0.0.1:{self.admin_port}"

    @property
    def admin_dir(self) -> Path:
        """Where the admin plane's certificates and credentials live (mode 0700)."""
        return self.lab_dir / "admin"

    @property
    def memory_bytes(self) -> int:
        """LAB_MEMORY in bytes."""
        size = memory_bytes(self.memory)
        assert size is not None  # validated in __post_init__
        return size


def _key(name: str) -> str:
    return f"LAB_{name.upper()}"


def _convert(name: str, kind: Any, raw: Any) -> Any:
    """A raw value (a string from the environment, or a Python value) as the field's type."""
    kind = str(kind)
    if raw is None:
        return None
    if kind.startswith("Secret"):
        return raw if isinstance(raw, Secret) else Secret(str(raw))
    if kind.startswith("Path"):
        path = raw if isinstance(raw, Path) else Path(str(raw))
        # Your own files are read wherever the lab runs from: an absolute path, ~ expanded.
        return path.expanduser().absolute() if name in _USER_FILES else path
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{raw!r} is not true or false")
    if kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError(f"{raw!r} is not a valid integer")
        try:
            return raw if isinstance(raw, int) else int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw!r} is not a valid integer") from None
    if kind == "float":
        try:
            return raw if isinstance(raw, float) else float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{raw!r} is not a valid number") from None
    if kind.startswith("tuple"):
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return tuple(raw)
    if not isinstance(raw, str):
        raise ValueError(f"{raw!r} is not text")
    return raw


def _from_files_and_environment(environ: Mapping[str, str], env_file: Path | None) -> dict[str, str]:
    """LAB_* values: `.env` first, the environment over it; empty values count as unset."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values  # only when there is a .env: the import is not free

        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update({k: v for k, v in environ.items() if k.startswith("LAB_")})
    known = {_key(name): name for name in Settings.names()}
    return {known[key]: value for key, value in values.items() if key in known and value.strip()}


def load_settings(*, env_file: Path | None = Path(".env"), **overrides: Any) -> Settings:
    """Build the settings from the environment, `.env` and `overrides`; invalid values raise SettingsError.

    The message is one line naming the LAB_* key, so a typo in `.env` is found at once.
    """
    values: dict[str, Any] = _from_files_and_environment(os.environ, env_file)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values, given=frozenset(values))
