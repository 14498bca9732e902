"""The verification matrix's rows: one function per row, each a real MQTT client that must succeed or be refused
as the row says (`lab.clients.checks` runs them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.clients.mqtt import ConnectOutcome, Protocol, round_trip, try_connect
from lab.clients.tls import handshake, is_silence, tls_context
from lab.pki.leaves import foreign_client

__all__ = ["TOPIC", "TOPIC_FILTER", "CheckResult", "Target"]


TOPIC_FILTER = "topic1/#"
TOPIC = "topic1/subtopic2"


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


def round_trip_row(
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


def no_certificate_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
    start = time.perf_counter()
    context = tls_context(ca_file=None, server_name=target.hostname)
    outcome = try_connect(target.address, target.mtls_port, context=context, protocol=protocol, timeout=timeout)
    return _rejection(3, f"mutual {target.mtls_port}, no client certificate", "rejected, no CONNACK",
                      protocol, outcome, start, explain_alert=_alert(target))


def foreign_certificate_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
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


def wrong_name_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
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


def plain_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
    start = time.perf_counter()
    outcome = try_connect(target.address, target.tls_port, context=None, protocol=protocol, timeout=timeout)
    result = _rejection(6, f"TLS {target.tls_port}, plain MQTT without TLS", "rejected, no CONNACK",
                        protocol, outcome, start)
    if result.passed:
        return CheckResult(result.name, result.expected, True,
                           f"{result.detail} (the port speaks only TLS)", result.seconds, 6, protocol.value,
                           result.actual)
    return result


def chain_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
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


def named_client_row(target: Target, protocol: Protocol, timeout: float) -> CheckResult:
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
