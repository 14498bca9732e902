"""The facts a kit's programs read: where to dial, which name to verify, the ports, and the kit's file names.

Written twice, as `connection.env` (KEY=value lines: `source`, `java.util.Properties` and dotenv all read them,
so no value may hold a space, a quote or a backslash) and `connection.json` (the same facts, lower-case names
without `KIT_`). The paths are relative to the kit directory; environment variables of the same `KIT_*` names
override the file at run time (each program's `run.sh` does that).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from lab.errors import KitError

__all__ = ["Connection", "KitFiles", "env_text", "json_text"]

# A value every reader takes literally: no whitespace, quotes, `$`, `#`, `\` (escapes in Properties and dotenv).
_PLAIN = re.compile(r"^[A-Za-z0-9._/:+@%,-]+$")


@dataclass(frozen=True)
class KitFiles:
    """The kit's credential files, relative to the kit directory (a seat's bundle keeps its own PEM names)."""

    ca: str = "ca.pem"
    cert: str = "client.pem"
    key: str = "client.key"
    keystore: str = "client.p12"
    truststore: str = "truststore.p12"
    password_file: str = "kit.password"


@dataclass(frozen=True)
class Connection:
    """Where and as whom a kit's programs connect. `tls_port` is None for a seat (its endpoint is mutual only)."""

    address: str
    server_name: str
    tls_port: int | None
    mtls_port: int
    client_id: str
    topic: str
    files: KitFiles = KitFiles()

    def pairs(self) -> list[tuple[str, str]]:
        """The facts as (KIT_ name, value), in the contract's order."""
        files = self.files
        rows = [("KIT_ADDRESS", self.address), ("KIT_SERVER_NAME", self.server_name)]
        if self.tls_port is not None:
            rows.append(("KIT_TLS_PORT", str(self.tls_port)))
        rows += [
            ("KIT_MTLS_PORT", str(self.mtls_port)),
            ("KIT_CLIENT_ID", self.client_id),
            ("KIT_TOPIC", self.topic),
            ("KIT_CA", files.ca),
            ("KIT_CERT", files.cert),
            ("KIT_KEY", files.key),
            ("KIT_KEYSTORE", files.keystore),
            ("KIT_TRUSTSTORE", files.truststore),
            ("KIT_PASSWORD_FILE", files.password_file),
        ]
        for key, value in rows:
            if not _PLAIN.match(value):
                raise KitError(f"{key}={value!r} cannot be written to connection.env (space, quote or escape)",
                               "choose a client name and topic of letters, digits, '.', '-', '_' and '/'")
        return rows


def env_text(connection: Connection) -> str:
    """`connection.env`: one KEY=value line per fact, no quotes, no spaces around '='."""
    lines = ["# amlen-lab connection kit: KEY=value (sh, java.util.Properties and dotenv read it); "
             "KIT_* environment variables override it"]
    lines += [f"{key}={value}" for key, value in connection.pairs()]
    return "\n".join(lines) + "\n"


def json_text(connection: Connection) -> str:
    """`connection.json`: the same facts, ports as numbers, the files in an object."""
    connection.pairs()  # the same validation as the env form
    files = connection.files
    data: dict[str, object] = {"address": connection.address, "server_name": connection.server_name}
    if connection.tls_port is not None:
        data["tls_port"] = connection.tls_port
    data |= {
        "mtls_port": connection.mtls_port,
        "client_id": connection.client_id,
        "topic": connection.topic,
        "files": {"ca": files.ca, "cert": files.cert, "key": files.key, "keystore": files.keystore,
                  "truststore": files.truststore, "password_file": files.password_file},
    }
    return json.dumps(data, indent=2) + "\n"
