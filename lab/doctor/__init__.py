"""`invoke doctor`: the guide's debugging page (ping, netstat, telnet, `openssl s_client -showcerts`,
`openssl x509 -text`) run for the user, each finding as OK / WARN / FAIL with a hint that names the cause.

Checks run in dependency order and never crash on an earlier failure: a check whose prerequisite failed
reports SKIP with "skipped: needs <what>". Amlen's checks need the lab container only when the admin URL is
the lab's own (LAB_ADMIN_URL empty); against a remote Amlen they run without Docker.
"""

from __future__ import annotations

from lab.doctor.findings import EXPIRY_WARN_DAYS, DoctorCheck, DoctorReport, Run, Status
from lab.settings import Settings

__all__ = ["EXPIRY_WARN_DAYS", "DoctorCheck", "DoctorReport", "Run", "Status", "doctor"]


def doctor(settings: Settings) -> DoctorReport:
    """Run every diagnostic against the lab described by `settings` and return the findings."""
    from lab.doctor.admin import admin_plane
    from lab.doctor.amlen import amlen_status, endpoints, server_log, trusted_ca
    from lab.doctor.container import container, docker_engine, image, lab_volume, memory, published_ports
    from lab.doctor.files import local_files, other_clients
    from lab.doctor.network import handshakes, name_resolution, ports

    run = Run(settings)
    for check in (docker_engine, container, image, memory, published_ports, lab_volume, admin_plane, amlen_status,
                  endpoints,
                  trusted_ca, name_resolution, ports, handshakes, server_log, local_files, other_clients):
        check(run)
    return DoctorReport(run.checks)
