"""Doctor: the lab's certificate files, as `openssl x509 -text` would show them."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lab.doctor.findings import EXPIRY_WARN_DAYS, Run, Status
from lab.errors import LabError
from lab.pki.info import CertInfo, describe_certificate
from lab.pki.lint import lint_certificates
from lab.pki.paths import pki_paths

# --- local files ------------------------------------------------------------------------------------------


def local_files(run: Run) -> None:
    settings = run.settings
    paths = pki_paths(settings)
    files = [paths.ca_cert] + ([paths.intermediate_cert] if paths.two_tier else [])
    files += [paths.server_cert] if not settings.own_server else []
    files += [paths.served_cert] if paths.served_cert != paths.server_cert else []
    files += [paths.client(name)[1] for name in settings.client_names]
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
        line = cert_line(info, usages=True)
        if own:
            run.add(label, Status.FAIL, f"{line}; " + "; ".join(own), "`invoke certs` re-issues it",
                    **cert_data(info))
        elif info.days_left < EXPIRY_WARN_DAYS:
            run.add(label, Status.WARN, f"{line}; expires in {info.days_left} days", "`invoke certs` renews it",
                    **cert_data(info))
        else:
            matched = "" if info.is_ca else "; key matches"
            run.add(label, Status.OK, line + matched, **cert_data(info))


def cert_line(info: CertInfo, *, usages: bool = False) -> str:
    text = f"subject {info.subject}, issuer {info.issuer}"
    if info.san:
        text += f", SAN {', '.join(info.san)}"
    if usages:
        text += f", {'CA, ' if info.is_ca else ''}{info.key_type} {info.key_bits}"
        if info.key_usage or info.extended_key_usage:
            text += f", usages {', '.join(info.key_usage + info.extended_key_usage)}"
    return text + f", valid {info.not_before:%Y-%m-%d} to {info.not_after:%Y-%m-%d}"


def cert_data(info: CertInfo) -> dict[str, Any]:
    data = asdict(info)
    return {key: (str(value) if isinstance(value, Path | dt.datetime) else value) for key, value in data.items()}


def other_clients(run: Run) -> None:
    """Client certificates made with `invoke client-cert` beyond LAB_CLIENT_NAMES: a warning for each that has
    expired, is not valid yet or expires within 30 days (Amlen refuses it, or soon will), one line for the rest."""
    settings = run.settings
    paths = pki_paths(settings)
    known = {paths.server_cert.name, *(paths.client(name)[1].name for name in settings.client_names)}
    others = sorted(p for p in paths.dir.glob("*.crt") if p.name not in known) if paths.dir.is_dir() else []
    good = 0
    now = dt.datetime.now(dt.UTC)
    for path in others:
        try:
            info = describe_certificate(path)
        except LabError:
            continue
        if info.not_after <= now:
            words = f"expired on {info.not_after:%Y-%m-%d %H:%M} UTC: Amlen refuses it (TLS alert: certificate expired)"
        elif info.not_before > now:
            words = f"not valid before {info.not_before:%Y-%m-%d %H:%M} UTC: Amlen refuses it until then"
        elif info.days_left < EXPIRY_WARN_DAYS:
            words = f"expires in {info.days_left} days"
        else:
            good += 1
            continue
        run.add(f"file {path.name}", Status.WARN, f"{cert_line(info)}; {words}",
                f"`invoke client-cert --name {path.stem} --force` issues a good one", **cert_data(info))
    if good:
        run.add("other client certificates", Status.OK, f"{good} more in {paths.dir}, each valid for "
                f"{EXPIRY_WARN_DAYS}+ days")
