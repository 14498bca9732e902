"""Doctor: Amlen's status, the endpoints, the trusted CA and what Amlen's own log says."""

from __future__ import annotations

from lab.amlen.admin import is_ready
from lab.amlen.adminsec import admin_client
from lab.doctor.findings import Run, Status
from lab.errors import LabError
from lab.pki.paths import pki_paths

# --- Amlen ------------------------------------------------------------------------------------------------


def amlen_status(run: Run) -> None:
    if run.container is None and not run.remote_admin:
        return run.skip("Amlen status", "the lab container running")
    try:
        client = admin_client(run.settings, timeout=5.0)
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


def endpoints(run: Run) -> None:
    from lab.status import lab_endpoints

    for name, port in lab_endpoints(run.settings):
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


def trusted_ca(run: Run) -> None:
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


def server_log(run: Run) -> None:
    """What Amlen's own log says about endpoints that take no connection (CWLNA1119, CWLNA1102)."""
    if run.container is None:
        return run.skip("Amlen's log", "the lab container running")
    from lab.amlen.logs import connection_log_findings

    findings = connection_log_findings(run.container, run.settings.tls_endpoint, run.settings.mtls_endpoint)
    if not findings:
        return run.add("Amlen's log", Status.OK, "no refused connections (CWLNA1119) or unbound ports (CWLNA1102)")
    trouble = any(check.status is Status.FAIL for check in run.checks)
    run.add("Amlen's log", Status.FAIL if trouble else Status.WARN, "; ".join(findings),
            "`invoke logs` shows the lines" if trouble else "seen earlier in the log; the lab works now")
