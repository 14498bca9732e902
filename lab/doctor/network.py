"""Doctor: the guide's network checks: name resolution, ports, TLS handshakes and the presented chain."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from lab.clients.tls import handshake, tls_context
from lab.doctor.files import cert_data, cert_line
from lab.doctor.findings import EXPIRY_WARN_DAYS, Run, Status
from lab.errors import LabError
from lab.hosts import hosts_status
from lab.pki.chain import Severity, presented_findings
from lab.pki.info import covers_hostname, describe_certificate
from lab.pki.paths import pki_paths

_TCP_TIMEOUT = 2.0

# --- the network ------------------------------------------------------------------------------------------


def name_resolution(run: Run) -> None:
    settings = run.settings
    try:
        hosts = hosts_status(settings).message
    except LabError as exc:
        hosts = exc.message
    try:
        infos = socket.getaddrinfo(settings.hostname, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        return run.add("name resolution", Status.FAIL,
                       f"{settings.hostname} does not resolve ({exc.strerror}); {hosts}",
                       "`invoke up` adds the hosts line (or check the lab with `invoke verify --no-hosts`)")
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    loopback = all(address.startswith("127.") or address == "::1" for address in addresses)
    where = f"{settings.hostname} -> {', '.join(addresses)} ({'loopback' if loopback else 'not loopback'})"
    if settings.host_ip not in addresses:
        return run.add("name resolution", Status.FAIL,
                       f"{where}, but the lab listens on {settings.host_ip}; {hosts}",
                       "fix or remove the other hosts line for the name, then `invoke up`", addresses=addresses)
    run.add("name resolution", Status.OK, f"{where}; {hosts}", addresses=addresses)


def ports(run: Run) -> None:
    settings = run.settings
    admin = urlsplit(settings.admin_base_url)
    targets = (("admin", admin.hostname or settings.host_ip, admin.port or settings.admin_port),
               ("TLS", settings.host_ip, settings.tls_port), ("mutual TLS", settings.host_ip, settings.mtls_port))
    for label, address, port in targets:
        try:
            with socket.create_connection((address, port), timeout=_TCP_TIMEOUT):
                pass
        except OSError as exc:
            words = "connection refused: nothing is listening" if isinstance(exc, ConnectionRefusedError) \
                else (exc.strerror or type(exc).__name__)
            run.add(f"port {port} ({label})", Status.FAIL, f"{address}:{port}: {words}",
                    "`invoke status`; `invoke up` starts the lab")
            continue
        run.listening.add(port)
        run.add(f"port {port} ({label})", Status.OK, f"{address}:{port} accepts TCP")


def handshakes(run: Run) -> None:
    settings = run.settings
    paths = pki_paths(settings)
    trust = paths.server_trust  # None: your own certificate from a public CA, the system's trust store
    if trust is not None and not trust.is_file():
        for port in (settings.tls_port, settings.mtls_port):
            run.skip(f"TLS on {port}", f"the CA clients trust ({trust})")
        return
    client_key, client_cert = paths.client_presented(settings.client_names[0]) if settings.client_names \
        else (None, None)
    has_client = bool(client_cert and client_cert.is_file() and client_key and client_key.is_file())
    for port, mutual in ((settings.tls_port, False), (settings.mtls_port, True)):
        label = f"TLS on {port}"
        if port not in run.listening:
            run.skip(label, f"port {port} accepting connections")
            continue
        cert = client_cert if mutual and has_client else None
        key = client_key if mutual and has_client else None
        _handshake_check(run, label, port, trust, paths.served_cert, cert, key)


def _handshake_check(run: Run, label: str, port: int, ca: Path | None, local_server: Path,
                     cert: Path | None, key: Path | None) -> None:
    settings = run.settings
    seen = handshake(settings.host_ip, port, context=tls_context(ca_file=None, cert=cert, key=key),
                     server_name=settings.hostname, wait_for_alert=cert is not None)
    if not seen.completed:
        return run.add(label, Status.FAIL, f"no TLS handshake with {settings.host_ip}:{port}: {seen.error}",
                       "is this an Amlen TLS endpoint? `invoke status`, `invoke logs`")
    chain = [describe_certificate(der) for der in seen.chain]
    shown = "; ".join(cert_line(info) for info in chain)
    version = seen.version or "TLS"  # unknown when the server ended the connection right after the handshake
    data: dict[str, Any] = {"version": seen.version, "chain": [cert_data(info) for info in chain]}
    trust_name = ca.name if ca is not None else "the system's trust store"
    verdict = handshake(settings.host_ip, port, context=tls_context(ca_file=ca, cert=cert, key=key,
                        server_name=settings.hostname, system_trust=ca is None), server_name=settings.hostname)
    # The chain in words (leaf alone, wrong order, root included, a leaf its chain does not sign): lab.pki.chain.
    certs = [x509.load_der_x509_certificate(der) for der in seen.chain]
    findings = presented_findings(certs, _anchors(ca), trust_name=trust_name)
    broken = [f for f in findings if f.severity is Severity.FAIL]
    warned = [f for f in findings if f.severity is Severity.WARN]
    notes = "".join(f"; {f.words}" for f in findings if f.severity is Severity.OK)
    leaf = chain[0] if chain else None
    causes: list[str] = [f.words for f in broken]
    if leaf is not None and not covers_hostname(leaf.san, settings.hostname):
        causes.append(f"the presented certificate is for {', '.join(leaf.san) or leaf.subject}, "
                      f"its SAN does not cover {settings.hostname}")
    if leaf is not None and local_server.is_file():
        local = describe_certificate(local_server)
        if local.sha256_fingerprint != leaf.sha256_fingerprint:
            causes.append(f"it is not the lab's {local_server.name}")
    if verdict.error and not broken:
        causes.append(f"verification against {trust_name}: {verdict.error}")
    if seen.alert:
        causes.append(f"with the lab's client certificate: {seen.alert}")
    if causes:
        hint = (broken[0].hint if broken
                else "Amlen serves another certificate: `invoke up` re-uploads the lab's and re-applies the profile"
                if leaf is not None and not covers_hostname(leaf.san, settings.hostname)
                else "the mutual profile must trust the lab CA: `invoke up` re-attaches myCA.pem"
                if seen.alert else "`invoke certs` and `invoke up` bring the certificates back in line")
        return run.add(label, Status.FAIL, f"{version}, presents {shown}; " + "; ".join(causes), hint, **data)
    if warned:
        return run.add(label, Status.WARN, f"{version}, presents {shown}; " + "; ".join(f.words for f in warned),
                       warned[0].hint, **data)
    if leaf is not None and leaf.days_left < EXPIRY_WARN_DAYS:
        return run.add(label, Status.WARN, f"{version}, presents {shown}; expires in {leaf.days_left} days",
                       "`invoke certs` renews it, `invoke up` uploads it", **data)
    run.add(label, Status.OK, f"{version}, presents {shown}; verifies against {trust_name}, "
            f"SAN covers {settings.hostname}" + notes + (", client certificate accepted" if cert else ""), **data)


def _anchors(ca: Path | None) -> list[x509.Certificate]:
    """The certificates a client trusts: the CA file's, or the system's roots (your own public certificate)."""
    try:
        if ca is None:
            from lab.pki.own import system_roots

            return system_roots()
        return x509.load_pem_x509_certificates(ca.read_bytes())
    except (OSError, ValueError):
        return []
