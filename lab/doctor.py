"""`invoke doctor`: the guide's debugging page (ping, netstat, telnet, `openssl s_client -showcerts`,
`openssl x509 -text`) run for the user, each finding as OK / WARN / FAIL with a hint that names the cause.

Checks run in dependency order and never crash on an earlier failure: a check whose prerequisite failed
reports SKIP with "skipped: needs <what>". Amlen's checks need the lab container only when the admin URL is
the lab's own (LAB_ADMIN_URL empty); against a remote Amlen they run without Docker.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lab.amlen import AmlenClient, is_ready
from lab.certinfo import CertInfo, describe_certificate, lint_certificates, pki_paths
from lab.errors import LabError
from lab.hosts import hosts_status
from lab.mqtt import handshake, tls_context
from lab.settings import Settings

__all__ = ["EXPIRY_WARN_DAYS", "DoctorCheck", "DoctorReport", "Status", "doctor"]

EXPIRY_WARN_DAYS = 30  # a month's notice is enough to re-run `invoke certs` before a workshop
_TCP_TIMEOUT = 2.0
_LOOPBACK = {"127.0.0.1", "::1"}


class Status(StrEnum):
    """How a check came out."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class DoctorCheck:
    """One finding: what was checked, how it came out, what it means, what to do; `data` for `--json`."""

    name: str
    status: Status
    detail: str
    hint: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DoctorReport:
    """All findings in order; `ok` when none failed (warnings allowed)."""

    checks: list[DoctorCheck]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(check.status is not Status.FAIL for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


def doctor(settings: Settings) -> DoctorReport:
    """Run every diagnostic against the lab described by `settings` and return the findings."""
    run = _Run(settings)
    for check in (_docker, _container, _image, _published_ports, _amlen_status, _endpoints, _trusted_ca,
                  _name_resolution, _ports, _handshakes, _local_files):
        check(run)
    return DoctorReport(run.checks)


class _Run:
    """What earlier checks found, for later ones to build on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.checks: list[DoctorCheck] = []
        self.docker: Any = None
        self.container: Any = None
        self.amlen: AmlenClient | None = None
        self.listening: set[int] = set()
        self.remote_admin = bool(settings.admin_url)

    def add(self, name: str, status: Status, detail: str, hint: str = "", **data: Any) -> None:
        self.checks.append(DoctorCheck(name, status, detail, hint, data))

    def skip(self, name: str, needs: str) -> None:
        self.add(name, Status.SKIP, f"skipped: needs {needs}")


# --- Docker and the container -----------------------------------------------------------------------------


def _docker(run: _Run) -> None:
    from lab.runtime import docker_client  # imported late: the docker SDK is slow to import

    try:
        run.docker = docker_client()
    except LabError as exc:
        run.add("Docker", Status.FAIL, exc.message, exc.hint or "")
        return
    version = run.docker.version().get("Version", "?")
    run.add("Docker", Status.OK, f"engine reachable (version {version})")


def _container(run: _Run) -> None:
    if run.docker is None:
        return run.skip("lab container", "Docker")
    from lab.runtime import find_lab_container

    container = find_lab_container(run.docker, run.settings)
    if container is None:
        return run.add("lab container", Status.FAIL, f"no container labelled for {run.settings.lab_dir}",
                       "`invoke up` creates it")
    state = container.attrs.get("State", {})
    if container.status != "running":
        return run.add(
            "lab container", Status.FAIL,
            f"{container.name} is {container.status} (exit code {state.get('ExitCode')})",
            "`invoke logs` shows why it stopped; `invoke up` starts it again", id=container.short_id,
        )
    run.container = container
    # docker-py gives no image when the container's record names none; say so rather than fail the doctor.
    image = container.image
    image_name = (", ".join(image.tags) or image.short_id) if image is not None else "unknown"
    run.add("lab container", Status.OK, f"{container.name} ({container.short_id}) running, image {image_name}",
            id=container.short_id)


def _image(run: _Run) -> None:
    if run.docker is None:
        return run.skip("image", "Docker")
    from lab.image import check_image

    running = run.container.image if run.container is not None else None
    try:
        finding = check_image(run.docker, run.settings.image, running.id if running is not None else None)
    except LabError as exc:
        return run.add("image", Status.FAIL, exc.message, exc.hint or "")
    run.add("image", Status.OK if finding.ok else Status.FAIL, finding.detail, finding.hint, id=finding.id)


def _published_ports(run: _Run) -> None:
    if run.container is None:
        return run.skip("published ports", "the lab container running")
    from lab.runtime import published_ports

    ports = published_ports(run.container)
    shown = ", ".join(f"{ip or '0.0.0.0'}:{host_port}->{port}" for port, (ip, host_port) in sorted(ports.items()))
    # The workshop port may be published for the room on purpose (`invoke workshop --expose`); no other port.
    workshop = run.settings.workshop_port
    open_wide = [f"{host_port}" for port, (ip, host_port) in sorted(ports.items())
                 if ip not in _LOOPBACK and port != workshop]
    exposed = next((ip for port, (ip, _) in ports.items() if port == workshop and ip not in _LOOPBACK), None)
    if exposed and not open_wide:
        return run.add("published ports", Status.OK, f"loopback only, but the workshop port {workshop} on "
                       f"{exposed} for the room (`invoke workshop --expose`): {shown}", ports=ports)
    if open_wide:
        return run.add("published ports", Status.WARN,
                       f"published on all interfaces: {shown}; the admin API has no password",
                       "recreate the container with `invoke down --keep-certs && invoke up` (binds 127.0.0.1)",
                       ports=ports)
    run.add("published ports", Status.OK, f"loopback only: {shown}", ports=ports)


# --- Amlen ------------------------------------------------------------------------------------------------


def _amlen_status(run: _Run) -> None:
    if run.container is None and not run.remote_admin:
        return run.skip("Amlen status", "the lab container running")
    client = AmlenClient(run.settings.admin_base_url, timeout=5.0)
    try:
        status = client.status()
    except LabError as exc:
        return run.add("Amlen status", Status.FAIL, exc.message, exc.hint or "")
    server = status.get("Server") or {}
    words = (f"State {server.get('State')} ({server.get('StateDescription', '?')}), "
             f"ErrorCode {server.get('ErrorCode')}, version {server.get('Version', '?')}")
    if not is_ready(status):
        message = server.get("ErrorMessage") or "not ready"
        return run.add("Amlen status", Status.FAIL, f"{words}: {message}",
                       "wait a few seconds after start; `invoke logs` shows the server's log")
    run.amlen = client
    run.add("Amlen status", Status.OK, words, server=server)


def _endpoints(run: _Run) -> None:
    for name, port in ((run.settings.tls_endpoint, run.settings.tls_port),
                       (run.settings.mtls_endpoint, run.settings.mtls_port)):
        label = f"endpoint {name}"
        if run.amlen is None:
            run.skip(label, "Amlen ready")
            continue
        try:
            config = run.amlen.get("Endpoint", name)
            monitor = run.amlen.endpoint_monitor(name) if config is not None else None
        except LabError as exc:
            run.add(label, Status.FAIL, exc.message, exc.hint or "")
            continue
        if config is None:
            run.add(label, Status.FAIL, f"{name} is not configured in Amlen", "`invoke up` creates it")
        elif monitor is None:
            run.add(label, Status.FAIL,
                    f"{name} (port {config.get('Port', port)}) is missing from the endpoint monitor: "
                    "POST accepted but nothing bound: port held by another process? see `invoke logs`",
                    "free the port inside the container, then `invoke up` posts the endpoint again")
        elif not monitor.get("Enabled", False) or monitor.get("LastErrorCode", 0):
            run.add(label, Status.FAIL, f"{name}: Enabled {monitor.get('Enabled')}, LastErrorCode "
                    f"{monitor.get('LastErrorCode')}", "`invoke logs`; `invoke up` re-applies it", monitor=monitor)
        else:
            run.add(label, Status.OK, f"{name} live on port {config.get('Port', port)} "
                    f"({monitor.get('Active', 0)} active connections)", monitor=monitor)


def _trusted_ca(run: _Run) -> None:
    profile = run.settings.mutual_security_profile
    label = f"trusted CA of {profile}"
    if run.amlen is None:
        return run.skip(label, "Amlen ready")
    try:
        found = run.amlen.get("TrustedCertificate", profile)
    except LabError as exc:
        return run.add(label, Status.FAIL, exc.message, exc.hint or "")
    if not found:
        return run.add(label, Status.FAIL,
                       f"{profile} has no trusted CA: the mutual port refuses every client certificate, "
                       "including the lab's", "`invoke up` uploads myCA.pem and attaches it again")
    ca_name = pki_paths(run.settings).ca_cert.name
    files = sorted(str(name) for name in found)
    if ca_name not in files:
        return run.add(label, Status.FAIL, f"{profile} trusts {', '.join(files)}, not the lab's {ca_name}",
                       "`invoke up` attaches the lab CA", files=files)
    run.add(label, Status.OK, f"{profile} trusts {', '.join(files)}", files=files)


# --- the network ------------------------------------------------------------------------------------------


def _name_resolution(run: _Run) -> None:
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


def _ports(run: _Run) -> None:
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


def _handshakes(run: _Run) -> None:
    settings = run.settings
    paths = pki_paths(settings)
    if not paths.ca_cert.is_file():
        for port in (settings.tls_port, settings.mtls_port):
            run.skip(f"TLS on {port}", f"the lab CA ({paths.ca_cert})")
        return
    client_key, client_cert = paths.client(settings.client_names[0]) if settings.client_names else (None, None)
    has_client = bool(client_cert and client_cert.is_file() and client_key and client_key.is_file())
    for port, mutual in ((settings.tls_port, False), (settings.mtls_port, True)):
        label = f"TLS on {port}"
        if port not in run.listening:
            run.skip(label, f"port {port} accepting connections")
            continue
        cert = client_cert if mutual and has_client else None
        key = client_key if mutual and has_client else None
        _handshake_check(run, label, port, paths.ca_cert, paths.server_cert, cert, key)


def _handshake_check(run: _Run, label: str, port: int, ca: Path, local_server: Path,
                     cert: Path | None, key: Path | None) -> None:
    settings = run.settings
    seen = handshake(settings.host_ip, port, context=tls_context(ca_file=None, cert=cert, key=key),
                     server_name=settings.hostname, wait_for_alert=cert is not None)
    if not seen.completed:
        return run.add(label, Status.FAIL, f"no TLS handshake with {settings.host_ip}:{port}: {seen.error}",
                       "is this an Amlen TLS endpoint? `invoke status`, `invoke logs`")
    chain = [describe_certificate(der) for der in seen.chain]
    shown = "; ".join(_cert_line(info) for info in chain)
    version = seen.version or "TLS"  # unknown when the server ended the connection right after the handshake
    data: dict[str, Any] = {"version": seen.version, "chain": [_cert_data(info) for info in chain]}
    verdict = handshake(settings.host_ip, port, context=tls_context(ca_file=ca, cert=cert, key=key,
                        server_name=settings.hostname), server_name=settings.hostname)
    leaf = chain[0] if chain else None
    causes: list[str] = []
    if leaf is not None and not _covers(leaf.san, settings.hostname):
        causes.append(f"the presented certificate is for {', '.join(leaf.san) or leaf.subject}, "
                      f"its SAN does not cover {settings.hostname}")
    if leaf is not None and local_server.is_file():
        local = describe_certificate(local_server)
        if local.sha256_fingerprint != leaf.sha256_fingerprint:
            causes.append(f"it is not the lab's {local_server.name}")
    if verdict.error:
        causes.append(f"verification against {ca.name}: {verdict.error}")
    if seen.alert:
        causes.append(f"with the lab's client certificate: {seen.alert}")
    if causes:
        hint = ("Amlen serves another certificate: `invoke up` re-uploads the lab's and re-applies the profile"
                if leaf is not None and not _covers(leaf.san, settings.hostname)
                else "the mutual profile must trust the lab CA: `invoke up` re-attaches myCA.pem"
                if seen.alert else "`invoke certs` and `invoke up` bring the certificates back in line")
        return run.add(label, Status.FAIL, f"{version}, presents {shown}; " + "; ".join(causes), hint, **data)
    if leaf is not None and leaf.days_left < EXPIRY_WARN_DAYS:
        return run.add(label, Status.WARN, f"{version}, presents {shown}; expires in {leaf.days_left} days",
                       "`invoke certs` renews it, `invoke up` uploads it", **data)
    run.add(label, Status.OK, f"{version}, presents {shown}; verifies against {ca.name}, "
            f"SAN covers {settings.hostname}" + (", client certificate accepted" if cert else ""), **data)


# --- local files ------------------------------------------------------------------------------------------


def _local_files(run: _Run) -> None:
    settings = run.settings
    paths = pki_paths(settings)
    files = [paths.ca_cert, paths.server_cert] + [paths.client(name)[1] for name in settings.client_names]
    try:
        problems = lint_certificates(settings)
    except LabError as exc:
        problems = [exc.message]
    for path in files:
        label = f"file {path.name}"
        if not path.is_file():
            run.add(label, Status.FAIL, f"{path} is missing", "`invoke certs` makes the lab's certificates")
            continue
        try:
            info = describe_certificate(path)
        except LabError as exc:
            run.add(label, Status.FAIL, exc.message, exc.hint or "")
            continue
        own = [p for p in problems if p.startswith(f"{path.name}:")]
        line = _cert_line(info, usages=True)
        if own:
            run.add(label, Status.FAIL, f"{line}; " + "; ".join(own), "`invoke certs` re-issues it",
                    **_cert_data(info))
        elif info.days_left < EXPIRY_WARN_DAYS:
            run.add(label, Status.WARN, f"{line}; expires in {info.days_left} days", "`invoke certs` renews it",
                    **_cert_data(info))
        else:
            matched = "" if info.is_ca else "; key matches"
            run.add(label, Status.OK, line + matched, **_cert_data(info))


def _cert_line(info: CertInfo, *, usages: bool = False) -> str:
    text = f"subject {info.subject}, issuer {info.issuer}"
    if info.san:
        text += f", SAN {', '.join(info.san)}"
    if usages:
        text += f", {'CA, ' if info.is_ca else ''}{info.key_type} {info.key_bits}"
        if info.key_usage or info.extended_key_usage:
            text += f", usages {', '.join(info.key_usage + info.extended_key_usage)}"
    return text + f", valid {info.not_before:%Y-%m-%d} to {info.not_after:%Y-%m-%d}"


def _cert_data(info: CertInfo) -> dict[str, Any]:
    data = asdict(info)
    return {key: (str(value) if isinstance(value, Path | dt.datetime) else value) for key, value in data.items()}


def _covers(san: tuple[str, ...], hostname: str) -> bool:
    # RFC 6125: a wildcard stands for exactly one left-most label.
    for name in san:
        name = name.lower()
        if name == hostname or (name.startswith("*.") and hostname.partition(".")[2] == name[2:]):
            return True
    return False
