"""The kit's README: what is in the kit, how to run each program, and (from each language's NOTES.md) which line
turns verification on. A seat's README starts with its own commands and carries the same kit section.

No secret is written here: the password is only ever in `kit.password` (0600).
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.kit.connection import Connection
from lab.kit.pkcs12 import KDF_ROUNDS, TRUSTSTORE_ALIAS

__all__ = ["client_readme", "kit_section"]


def client_readme(client: str, connection: Connection, languages: Sequence[str], *, legacy_p12: bool) -> str:
    """The top of a client kit's README (the per-language notes follow it)."""
    return f"""# Connection kit for {client}

Everything your own application needs to reach the lab's Amlen broker over TLS as **{client}**, and one small
program per language that proves it: each connects, verifies the server's certificate *and* its host name,
subscribes, publishes one message to itself, receives it and exits 0.

- port {connection.tls_port}: TLS, the server's certificate only (`run.sh tls`)
- port {connection.mtls_port}: mutual TLS, your client certificate required (`run.sh mtls`, the default)

{kit_section(connection, languages, legacy_p12=legacy_p12)}"""


def kit_section(connection: Connection, languages: Sequence[str], *, legacy_p12: bool,
                adding: str = "`invoke kit --lang java,node,go,c,python`") -> str:
    """What every kit's README says about its files, the connection facts, the programs and the PKCS#12 form;
    `adding` names the command that adds programs to a kit that has none."""
    files = connection.files
    tls = connection.tls_port is not None
    first = languages[0] if languages else "<lang>"
    runs = "\n".join(f"    {lang}/run.sh" + (f"            # or: {lang}/run.sh tls" if tls else "")
                     for lang in languages) or f"    (no program in this kit: {adding} adds them)"
    form = ("the legacy form (PBE-SHA1-3DES, HMAC-SHA1) for Java 8 before 8u301 and OpenSSL 1.1"
            if legacy_p12 else
            f"AES-256-CBC with PBKDF2-HMAC-SHA256 ({KDF_ROUNDS} iterations), as OpenSSL 3 makes them; for "
            "Java 8 before 8u301 or OpenSSL 1.1 make the kit again with `--legacy-p12`")
    return f"""## The files

| file | what it is |
| --- | --- |
| `{files.ca}` | the CA your client trusts to verify the server (nothing else) |
| `{files.cert}` | your client certificate (in a two-tier PKI: then the intermediate CA), what your client presents |
| `{files.key}` | your private key (unencrypted, mode 0600): keep it to yourself |
| `{files.keystore}` | the key and certificate chain as PKCS#12, for Java's `javax.net.ssl.keyStore` |
| `{files.truststore}` | the CA as a PKCS#12 truststore (entry `{TRUSTSTORE_ALIAS}`), for `javax.net.ssl.trustStore` |
| `{files.password_file}` | the password of both PKCS#12 files (mode 0600; put your own there and run the kit again) |
| `connection.env`, `connection.json` | where to connect and as whom; every program reads them |

The PKCS#12 files use {form}.

## Where to connect

The programs dial **{connection.address}** and send and verify the name **{connection.server_name}** (TLS SNI and
the certificate's host name), so they work without a hosts-file entry. Your own application can do the same, or
connect to `{connection.server_name}` when the name resolves to the broker. Client ID `{connection.client_id}`,
topic `{connection.topic}`.

Any `KIT_*` variable in the environment overrides `connection.env`: `KIT_SERVER_NAME=127.0.0.1 {first}/run.sh`
must fail with a host-name error, which proves the check is on.

## Run a program

From anywhere (each `run.sh` finds `../connection.env` beside itself); exit 0 and one line
`received <topic>: <payload>` when all is well, one line `error: ...` otherwise:

{runs}

"""
