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
context (see `lab.mqtt`), still a full MQTT round trip. Rows 3, 4 and 6 always dial the address and do not
judge the server's certificate: they test the server's policy, so a broken hosts entry or a swapped server
certificate turns rows 1-2 red, not these.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.errors import CheckError
from lab.mqtt import ConnectOutcome, Protocol, round_trip, try_connect
from lab.pki.leaves import foreign_client
from lab.pki.paths import pki_paths
from lab.settings import Settings
from lab.tls import DEFAULT_TIMEOUT, handshake, is_silence, tls_context

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
TOPIC_FILTER = "topic1/#"
TOPIC = "topic1/subtopic2"
ALL_PROTOCOLS = (Protocol.MQTT311, Protocol.MQTT5)


@dataclass(frozen=True)
class CheckResult:
    """One row of the matrix: what was expected, whether it happened, and why, in words."""

    name: str
    expected: str
    passed: bool
    detail: str
    seconds: float
    row: int = 0
    protocol: str = ""
    actual: str = ""
    # The failure was silence (nothing answered in time), not an answer: worth one more try.
    no_answer: bool = False
    retried: bool = False


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


@dataclass(frozen=True)
class Target:
    """Where and with which files to check: the broker's name and address, its ports, the lab's files."""

    hostname: str
    address: str
    tls_port: int
    mtls_port: int
    ca_file: Path | None  # what clients trust for the server; None: the system's trust store (a public CA)
    client_key: Path
    client_cert: Path  # what the lab's client presents: its chain file in the two-tier PKI
    # Where the throwaway "other CA" client of row 4 is kept between runs (None: made anew each time). Its two
    # RSA keys would otherwise make row 4 the slowest of the matrix.
    scratch: Path | None = None
    extra_client: tuple[str, Path, Path] | None = None  # row 8: (name, key, certificate to present)


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
        jobs.append(functools.partial(_round_trip_row, 1, target, protocol, count, no_hosts, timeout))
        jobs.append(functools.partial(_round_trip_row, 2, target, protocol, count, no_hosts, timeout))
    first = protocols[0]
    jobs += [
        lambda: _no_certificate_row(target, first, timeout),
        lambda: _foreign_certificate_row(target, first, timeout),
        lambda: _wrong_name_row(target, first, timeout),
        lambda: _plain_row(target, first, timeout),
        lambda: _chain_row(target, first, timeout),
    ]
    if target.extra_client is not None:
        jobs.append(lambda: _named_client_row(target, first, timeout))
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


def _round_trip_row(
    row: int, target: Target, protocol: Protocol, count: int, no_hosts: bool, timeout: float
) -> CheckResult:
    mutual = row == 2
    port = target.mtls_port if mutual else target.tls_port
    host = target.address if no_hosts else target.hostname
    via = f"by address {target.address}, name {target.hostname}" if no_hosts else f"as {target.hostname}"
    name = (f"mutual {port}, client certificate, {via}" if mutual else f"TLS {port}, trusting only the CA, {via}")
    start = time.perf_counter()
    context = tls_context(
        ca_file=target.ca_file,
        cert=target.client_cert if mutual else None,
        key=target.client_key if mutual else None,
        server_name=target.hostname if no_hosts else None,
        system_trust=target.ca_file is None,
    )
    result = round_trip(host, port, context=context, topic_filter=TOPIC_FILTER, topic=TOPIC, count=count,
                        protocol=protocol, timeout=timeout)
    passed = result.received >= count
    if result.connect.accepted:
        actual = f"{result.received}/{count} received"
    else:
        actual = "refused" if result.connect.reached else "not reached"
    detail = result.reason
    if mutual and result.connect.reached and not result.connect.accepted and "TLS alert" not in detail:
        # As in rows 3-4: paho may lose the server's alert to a reset; a bare handshake reads it.
        alert = _alert(target, target.client_cert, target.client_key, target.mtls_port)()
        detail = f"no CONNACK: {alert}" if alert else detail
    if not result.connect.accepted and not no_hosts and "does not resolve" in result.reason:
        detail += f": {target.hostname} needs the lab's hosts entry (`invoke up`), or run with --no-hosts"
    return CheckResult(name, f"{count}/{count} received", passed, detail, time.perf_counter() - start,
                       row, protocol.value, actual, no_answer=not passed and result.silent)


def _rejection(
    row: int, name: str, expected: str, protocol: Protocol, outcome: ConnectOutcome, start: float,
    *, explain_alert: Callable[[], str | None] | None = None,
) -> CheckResult:
    if outcome.accepted:
        return CheckResult(name, expected, False, f"accepted: {outcome.reason}; the port lets this client in",
                           time.perf_counter() - start, row, protocol.value, "accepted")
    if not outcome.reached:
        return CheckResult(name, expected, False, f"could not test: {outcome.reason}",
                           time.perf_counter() - start, row, protocol.value, "not reached",
                           no_answer=outcome.silent)
    reason = outcome.reason.removeprefix("no CONNACK: ")
    if explain_alert is not None and "TLS alert" not in reason:
        # paho often loses the server's TLS 1.3 alert to a reset; a bare handshake reads it reliably.
        reason = explain_alert() or reason
    if is_silence(reason):
        # Silence is not a refusal: a server that refuses says so (an alert, a close, a CONNACK code).
        return CheckResult(name, expected, False, f"no answer at all: {reason}", time.perf_counter() - start,
                           row, protocol.value, "no answer", no_answer=True)
    return CheckResult(name, expected, True, f"no CONNACK: {reason}", time.perf_counter() - start, row,
                       protocol.value, "rejected")


def _alert(target: Target, cert: Path | None = None, key: Path | None = None,
           port: int | None = None) -> Callable[[], str | None]:
    def probe() -> str | None:
        context = tls_context(ca_file=None, cert=cert, key=key)
        shake = handshake(target.address, port or target.mtls_port, context=context,
                          server_name=target.hostname, wait_for_alert=True)
        return shake.error or shake.alert
    return probe


def _no_certificate_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
    start = time.perf_counter()
    context = tls_context(ca_file=None, server_name=target.hostname)
    outcome = try_connect(target.address, target.mtls_port, context=context, protocol=protocol, timeout=timeout)
    return _rejection(3, f"mutual {target.mtls_port}, no client certificate", "rejected, no CONNACK",
                      protocol, outcome, start, explain_alert=_alert(target))


def _foreign_certificate_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
    start = time.perf_counter()
    name = f"mutual {target.mtls_port}, certificate from another CA"
    with contextlib.ExitStack() as stack:
        directory = target.scratch or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lab-foreign-")))
        key, cert = foreign_client(directory)
        context = tls_context(ca_file=None, cert=cert, key=key, server_name=target.hostname)
        outcome = try_connect(target.address, target.mtls_port, context=context, protocol=protocol,
                              timeout=timeout)
        return _rejection(4, name, "rejected, no CONNACK", protocol, outcome, start,
                          explain_alert=_alert(target, cert, key))


def _wrong_name_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
    start = time.perf_counter()
    name = f"TLS {target.tls_port}, dialled as {target.address} (not in the certificate)"
    expected = "refused: hostname mismatch"
    context = tls_context(ca_file=target.ca_file, system_trust=target.ca_file is None)
    outcome = try_connect(target.address, target.tls_port, context=context, protocol=protocol, timeout=timeout)
    seconds = time.perf_counter() - start
    if outcome.hostname_mismatch:
        return CheckResult(name, expected, True, outcome.reason, seconds, 5, protocol.value, "refused")
    if outcome.accepted:
        actual, detail = "accepted", f"accepted: the certificate covers {target.address}, so a wrong name passes"
    elif outcome.reached:
        actual, detail = "refused", f"refused for another reason than the name: {outcome.reason}"
    else:
        actual, detail = "not reached", f"could not test: {outcome.reason}"
    return CheckResult(name, expected, False, detail, seconds, 5, protocol.value, actual,
                       no_answer=outcome.silent)


def _plain_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
    start = time.perf_counter()
    outcome = try_connect(target.address, target.tls_port, context=None, protocol=protocol, timeout=timeout)
    result = _rejection(6, f"TLS {target.tls_port}, plain MQTT without TLS", "rejected, no CONNACK",
                        protocol, outcome, start)
    if result.passed:
        return CheckResult(result.name, result.expected, True,
                           f"{result.detail} (the port speaks only TLS)", result.seconds, 6, protocol.value,
                           result.actual)
    return result


def _chain_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
    """`openssl s_client -verify_return_error`: trusting only the root, the server's chain must verify."""
    from cryptography import x509

    from lab.pki.chain import chain_words

    start = time.perf_counter()
    trusted = target.ca_file.name if target.ca_file is not None else "the system's trust store"
    name = f"TLS {target.tls_port}, a client trusting only {trusted} verifies the chain presented"
    expected = "verified: leaf, then its issuers up to the root"
    shown = handshake(target.address, target.tls_port, context=tls_context(ca_file=None),
                      server_name=target.hostname, timeout=timeout)
    presented = chain_words([x509.load_der_x509_certificate(der) for der in shown.chain])
    # The chain only, as `openssl s_client -verify_return_error` without -verify_hostname: rows 1 and 5 judge
    # the name, so a certificate for another name turns those red, not this one.
    context = tls_context(ca_file=target.ca_file, server_name=target.hostname, system_trust=target.ca_file is None)
    context.check_hostname = False
    verdict = handshake(target.address, target.tls_port, server_name=target.hostname, timeout=timeout,
                        context=context)
    seconds = time.perf_counter() - start
    if not shown.reached or not verdict.reached:
        error = shown.error or verdict.error or "no answer"
        return CheckResult(name, expected, False, f"could not test: {error}", seconds, 7, protocol.value,
                           "not reached", no_answer=is_silence(error))
    if verdict.completed:
        return CheckResult(name, expected, True, f"verified; presented: {presented}", seconds, 7, protocol.value,
                           "verified")
    return CheckResult(name, expected, False, f"{verdict.error}; presented: {presented}", seconds, 7,
                       protocol.value, "refused", no_answer=is_silence(verdict.error or ""))


def _named_client_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
    """Row 8: the client named by `--client`; one that expired (or is not valid yet) must be refused."""
    from lab.pki.info import describe_certificate

    assert target.extra_client is not None
    client, key, cert = target.extra_client
    start = time.perf_counter()
    info = describe_certificate(cert)
    now = dt.datetime.now(dt.UTC)
    if info.not_after <= now:
        state, expected = f"expired {info.not_after:%Y-%m-%d %H:%M} UTC", "refused: certificate expired"
    elif info.not_before > now:
        state, expected = f"valid from {info.not_before:%Y-%m-%d %H:%M} UTC", "refused: certificate not yet valid"
    else:
        state, expected = f"valid until {info.not_after:%Y-%m-%d}", "CONNACK"
    name = f"mutual {target.mtls_port}, client certificate {client} ({state})"
    context = tls_context(ca_file=None, cert=cert, key=key, server_name=target.hostname)
    outcome = try_connect(target.address, target.mtls_port, context=context, protocol=protocol, timeout=timeout)
    if expected == "CONNACK":
        return CheckResult(name, expected, outcome.accepted, outcome.reason, time.perf_counter() - start, 8,
                           protocol.value, "accepted" if outcome.accepted else "refused", no_answer=outcome.silent)
    result = _rejection(8, name, expected, protocol, outcome, start, explain_alert=_alert(target, cert, key))
    if result.passed and "expired" not in result.detail and "bad certificate" not in result.detail:
        # Refused, but not for its dates: say what the server did say.
        return dataclasses.replace(result, passed=False, detail=f"refused for another reason: {result.detail}")
    return result
