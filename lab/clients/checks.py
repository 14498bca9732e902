"""The verification matrix: real MQTT clients prove each promise of the TLS setup, the good and the bad paths.

| row | port   | client                                    | expected                              |
|-----|--------|-------------------------------------------|---------------------------------------|
| 1   | TLS    | trusts only myCA.pem, name verified       | subscribe + publish N, all received   |
| 2   | mutual | + the lab's client certificate            | the same round trip                   |
| 3   | mutual | no client certificate                     | rejected, no CONNACK                  |
| 4   | mutual | client certificate from another CA        | rejected, no CONNACK                  |
| 5   | TLS    | dialled by address (name not in the cert) | refused by the client: name mismatch  |
| 6   | TLS    | plain MQTT, no TLS                        | rejected, no CONNACK                  |
| 7   | TLS    | trusts only the root: the chain presented | verifies (leaf, then intermediate)    |
| 8   | mutual | `--client NAME`: that client's certificate | CONNACK, or refused when it is expired|

Protocols: the round trips (1, 2) run once per MQTT version asked for (3.1.1 and 5 by default), because that
is where the versions differ; rows 3-8 are decided at the TLS layer before any MQTT byte is read, so they run
once, with the first version asked for.

Row 7 is `openssl s_client -verify_return_error` done by hand: a client that trusts only the root (and no
partial chain) must be able to build the chain from what the server sends, the commonest TLS failure with
brokers in the wild when it cannot. Its detail lists the presented chain. Row 8 runs only when asked for (the
expiry drills: `invoke client-cert --name late --expired`, then `invoke verify --client late`).

Rows 1-2 connect the way the guide's clients do: by host name, so they also prove the hosts entry. With
`no_hosts` (`--no-hosts`) they dial `settings.host_ip` and send/verify the host name through the TLS
context (see `lab.clients.mqtt`), still a full MQTT round trip. Rows 3, 4 and 6 always dial the address and do not
judge the server's certificate: they test the server's policy, so a broken hosts entry or a swapped server
certificate turns rows 1-2 red, not these.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from lab.clients.mqtt import Protocol
from lab.clients.rows import (
    CheckResult,
    Target,
    chain_row,
    foreign_certificate_row,
    named_client_row,
    no_certificate_row,
    plain_row,
    round_trip_row,
    wrong_name_row,
)
from lab.clients.tls import DEFAULT_TIMEOUT
from lab.errors import CheckError
from lab.pki.paths import pki_paths
from lab.settings import Settings

__all__ = [
    "DEFAULT_COUNT",
    "CheckResult",
    "Target",
    "VerifyReport",
    "parse_protocols",
    "run_matrix",
    "target_from_settings",
    "verify",
]

DEFAULT_COUNT = 5  # the guide publishes five messages
ALL_PROTOCOLS = (Protocol.MQTT311, Protocol.MQTT5)


@dataclass(frozen=True)
class VerifyReport:
    """All rows; `passed` only when every row came out as expected."""

    rows: list[CheckResult]
    passed: bool
    seconds: float = 0.0
    no_hosts: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return asdict(self)


def target_from_settings(settings: Settings, *, client: str = "") -> Target:
    """The lab's broker and files; CheckError when a file is missing (nothing could be verified).

    `client` adds row 8: that client certificate (from `invoke client-cert`) on the mutual port.
    """
    paths = pki_paths(settings)
    if not settings.client_names:
        raise CheckError("no client certificate is configured (LAB_CLIENT_NAMES is empty)",
                         "set LAB_CLIENT_NAMES, e.g. test.client1")
    client_key, client_cert = paths.client_presented(settings.client_names[0])
    extra = None
    if client:
        extra_key, extra_cert = paths.client_presented(client)
        if not extra_cert.is_file():
            raise CheckError(f"cannot verify --client {client}: {extra_cert} is missing",
                             f"make it first: `invoke client-cert --name {client}` (--expired for the drill)")
        extra = (client, extra_key, extra_cert)
    for path in (paths.ca_cert, client_key, client_cert):
        if not path.is_file():
            raise CheckError(f"cannot verify: {path} is missing", "run `invoke certs` (or `invoke up`)")
    return Target(
        hostname=settings.hostname,
        address=settings.host_ip,
        tls_port=settings.tls_port,
        mtls_port=settings.mtls_port,
        ca_file=paths.server_trust,
        client_key=client_key,
        client_cert=client_cert,
        scratch=settings.verify_dir,
        extra_client=extra,
    )


def parse_protocols(text: str) -> tuple[Protocol, ...]:
    """`both`, `3.1.1` (or `311`, `4`) or `5` -> the protocol versions to check; CheckError otherwise."""
    value = text.strip().lower().removeprefix("mqtt").removeprefix("v")
    if value in ("both", "all", ""):
        return ALL_PROTOCOLS
    if value in ("3.1.1", "311", "4"):
        return (Protocol.MQTT311,)
    if value in ("5", "5.0"):
        return (Protocol.MQTT5,)
    raise CheckError(f"unknown MQTT protocol {text!r}", "use --protocol 3.1.1, 5 or both")


def verify(
    settings: Settings,
    *,
    count: int = DEFAULT_COUNT,
    protocols: Sequence[Protocol] = ALL_PROTOCOLS,
    no_hosts: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    client: str = "",
) -> VerifyReport:
    """Run the matrix against the lab described by `settings` (rows in parallel; about 0.2 s when healthy)."""
    return run_matrix(
        target_from_settings(settings, client=client), count=count, protocols=protocols, no_hosts=no_hosts,
        timeout=timeout,
    )


def run_matrix(
    target: Target,
    *,
    count: int = DEFAULT_COUNT,
    protocols: Sequence[Protocol] = ALL_PROTOCOLS,
    no_hosts: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> VerifyReport:
    """Run every row against `target`, concurrently (each row is its own connection), in row order."""
    if count < 1:
        raise CheckError(f"count must be at least 1, not {count}", "pass --count 5")
    if not protocols:
        raise CheckError("no MQTT protocol version selected", "pass --protocol 3.1.1, 5 or both")
    jobs: list[Callable[[], CheckResult]] = []
    for protocol in protocols:
        jobs.append(functools.partial(round_trip_row, 1, target, protocol, count, no_hosts, timeout))
        jobs.append(functools.partial(round_trip_row, 2, target, protocol, count, no_hosts, timeout))
    first = protocols[0]
    jobs += [
        lambda: no_certificate_row(target, first, timeout),
        lambda: foreign_certificate_row(target, first, timeout),
        lambda: wrong_name_row(target, first, timeout),
        lambda: plain_row(target, first, timeout),
        lambda: chain_row(target, first, timeout),
    ]
    if target.extra_client is not None:
        jobs.append(lambda: named_client_row(target, first, timeout))
    start = time.perf_counter()
    # Every row is its own session with its own deadline, so a stuck row never holds the others.
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="verify") as pool:
        rows = list(pool.map(_once_more_after_silence, jobs))
    rows.sort(key=lambda r: (r.row, r.protocol))
    return VerifyReport(rows, all(r.passed for r in rows), time.perf_counter() - start, no_hosts)


def _once_more_after_silence(job: Callable[[], CheckResult]) -> CheckResult:
    """Run a row; when it failed only because nothing answered, run it again on a fresh connection.

    A paused machine (laptop sleep, a loaded VM) makes every pending timeout fire at once when it resumes,
    though the server never had its turn: only a failure the second attempt confirms is a failure.
    """
    first = job()
    if first.passed or not first.no_answer:
        return first
    second = job()
    note = f"retried once on a fresh connection; the first attempt got {first.detail}"
    return dataclasses.replace(second, detail=f"{second.detail} ({note})", seconds=first.seconds + second.seconds,
                               retried=True)


# --- rows -----------------------------------------------------------------------------------------------
