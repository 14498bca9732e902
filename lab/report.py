"""The one place that prints: step progress, summaries and errors, for people (rich) or scripts (JSON)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lab.durations import format_duration
from lab.errors import LabError
from lab.events import Outcome, PlanFailed, RunReport, StepEvent, StepStatus
from lab.settings import Settings
from lab.values import RESERVED_CLIENT

if TYPE_CHECKING:
    from rich.status import Status  # the spinner's class: only `up`/`down` draw one (console.status)

    from lab.clients.checks import VerifyReport
    from lab.container.image import LoadedImage, SavedImage
    from lab.doctor.findings import DoctorReport
    from lab.learn.guide import Explanation, GuideResult
    from lab.pki.trust import TrustReport

__all__ = [
    "StepPrinter",
    "console",
    "error_line",
    "print_certificates",
    "print_doctor",
    "print_guide",
    "print_json",
    "print_loaded_image",
    "print_rows",
    "print_saved_image",
    "print_status",
    "print_summary",
    "print_trust_guide",
    "print_verify",
    "up_summary",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

_MARKS = {
    StepStatus.APPLIED: "[green]✔[/]",
    StepStatus.SKIPPED: "[cyan]•[/]",
    StepStatus.FAILED: "[red]✘[/]",
    StepStatus.UNDONE: "[yellow]↺[/]",
}


class StepPrinter:
    """Shows each step as it runs: a spinner line with a counter and elapsed time, then a result line.

    With an `explanation` (`--explain`), each step's manual equivalent is printed as the step starts. Used as a
    context manager around a plan run, it prints how a failed run ended (a PlanFailed's report) and lets the
    error go on to its one line; a run that succeeds is finished by the caller, with its report.
    """

    def __init__(self, title: str, explanation: Explanation | None = None) -> None:
        self.title = title
        self._status: Status | None = None
        self._started = 0.0
        self._label = ""
        self._explanation = explanation
        self._preamble_shown = False

    def __enter__(self) -> StepPrinter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        if isinstance(error, PlanFailed):
            self.finish(error.report)

    def on_event(self, event: StepEvent) -> None:
        """Receive a plan event."""
        if event.status is StepStatus.RUNNING:
            self._explain(event.step)
            self._started = time.monotonic()
            self._label = f"[{event.index}/{event.total}] {event.step}"
            self._spin(self._label)
            return
        if event.status is StepStatus.NOTICE:
            self._stop()  # a prompt (sudo) may follow: the spinner must not draw over it
            console.print(f"[yellow]![/] {event.step}: {escape(event.detail)}", soft_wrap=True)
            return
        self._stop()
        counter = f"[{event.index}/{event.total}] " if event.total else ""
        console.print(f"{_MARKS[event.status]} {counter}{event.step}: {event.detail} "
                      f"[dim]({format_duration(event.seconds)})[/]")

    def on_progress(self, step: str, text: str) -> None:
        """Update the spinner line with what the running step is doing now."""
        elapsed = time.monotonic() - self._started
        self._spin(f"{self._label}: {text} [dim]({elapsed:.1f} s)[/]")

    def finish(self, report: RunReport) -> None:
        """Close the spinner and print how the run ended."""
        self._stop()
        if report.outcome is Outcome.OK:
            console.print(f"[bold green]{self.title} done[/] in {format_duration(report.seconds)}")
        elif report.outcome is Outcome.ROLLBACK_FAILED:
            what = "could not remove" if self.title == "down" else "rollback left things behind"
            err_console.print(f"[red]{what}:[/] " + "; ".join(report.leftovers))
        elif report.outcome is Outcome.KEPT:
            err_console.print("kept what this run created for inspection (--keep-on-failure); `invoke down` removes it")
        else:
            err_console.print("rolled back: this run left nothing behind (`--keep-on-failure` keeps it for inspection)")

    def _explain(self, step: str) -> None:
        if self._explanation is None:
            return
        if not self._preamble_shown:
            self._preamble_shown = True
            console.print(self._explanation.preamble, markup=False, soft_wrap=True)
        block = self._explanation.blocks.get(step)
        if block:
            console.print(f"\n{block}\n", markup=False, soft_wrap=True)

    def _spin(self, text: str) -> None:
        if not console.is_terminal:
            return
        if self._status is None:
            self._status = console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def _stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def say(line: str) -> None:
    """One line as it is (topics, payloads, paho's log, URLs are text, never rich markup)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def error_line(error: LabError) -> str:
    """One line for the user: what went wrong and what to do (the details, if any, go above it)."""
    if error.details:
        err_console.print(error.details, markup=False)
    return f"error: {error}"


def print_guide(result: GuideResult) -> None:
    """`invoke guide`: the Markdown itself, or which files were written."""
    if result.markdown is not None:
        sys.stdout.write(result.markdown)
    for path in result.written:
        console.print(f"wrote {path}", markup=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine output: JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_rows(title: str, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """A simple table for people."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console.print(table)


def up_summary(settings: Settings) -> Mapping[str, Any]:
    """What a user needs after `up`: endpoints, files and copy-paste commands for the guide's clients."""
    from lab.amlen.adminsec import admin_curl
    from lab.pki.paths import pki_paths

    pki = pki_paths(settings)
    client = settings.client_names[0]
    client_key, client_cert = pki.client_presented(client)  # its chain file in the two-tier PKI
    trust = pki.server_trust
    host, ca = settings.hostname, shlex.quote(str(trust or pki.ca_cert))
    mutual = f"--cert {shlex.quote(str(client_cert))} --key {shlex.quote(str(client_key))}"
    server_ca = f"--cafile {ca}" if trust is not None else "--capath /etc/ssl/certs"
    files = {"CA certificate": str(pki.ca_cert)}
    if pki.two_tier:
        files["intermediate CA"] = str(pki.intermediate_cert)
    if trust is not None and trust != pki.ca_cert:
        files["server's CA (clients trust)"] = str(trust)
    return {
        "endpoints": [
            {"name": settings.tls_endpoint, "url": f"mqtts://{host}:{settings.tls_port}", "client cert": "no"},
            {"name": settings.mtls_endpoint, "url": f"mqtts://{host}:{settings.mtls_port}", "client cert": "required"},
            {"name": "admin API", "url": settings.admin_base_url + "/ima/v1/service/status",
             "client cert": _admin_lock(settings)},
        ],
        "files": {
            **files,
            "server certificate (served)": str(pki.served_cert),
            "client certificate": str(client_cert),
            "client key": str(client_key),
        },
        "commands": {
            "subscribe (TLS)": f"invoke sub -H {host} -P {settings.tls_port} -t 'topic1/#' -s",
            "publish (TLS)": f"invoke pub -H {host} -P {settings.tls_port} -t topic1/subtopic2 -s -m hello",
            "publish (mutual TLS)": f"invoke pub -P {settings.mtls_port} -t topic1/subtopic2 -s -m hello",
            "mosquitto_sub": f"mosquitto_sub -h {host} -p {settings.tls_port} {server_ca} -t 'topic1/#' -v",
            "mosquitto_sub (mutual)": f"mosquitto_sub -h {host} -p {settings.mtls_port} {server_ca} {mutual}"
            " -t 'topic1/#' -v",
            "openssl": f"openssl s_client -connect {settings.host_ip}:{settings.tls_port} -servername {host}"
            f" {'-CAfile ' + ca if trust is not None else ''} -verify_hostname {host} -verify_return_error"
            " -showcerts </dev/null",
            "admin API": admin_curl(settings, "/ima/v1/configuration/Endpoint"),
            # The next step for a developer: the same mutual TLS from their own language (lab.kit).
            "your application (Java; or node, go, c, python)": "invoke kit --lang java",
        },
    }


def _admin_lock(settings: Settings) -> str:
    from lab.amlen.adminsec import lab_owns_admin

    if not lab_owns_admin(settings):
        return "as its owner set it"
    return {"mtls": f"required ({RESERVED_CLIENT})", "password": "no (TLS + password)",
            "open": "no (OPEN: plain HTTP, no login)"}[settings.admin_security]


def print_rotation(rotation: Any) -> None:
    """`invoke certs --rotate`: the old and new server certificate, and the proofs on the live broker."""
    served = ", ".join(f"{port} presents {serial}" for port, serial in rotation.served.items())
    print_rows("Server certificate rotated", ("", "serial", "expires"), (
        ("before", rotation.old_serial, rotation.old_expiry),
        ("after", rotation.new_serial, rotation.new_expiry),
    ))
    for line in (f"endpoints: {served}", f"subscription opened before: {rotation.kept_subscription}",
                 f"new connection: {rotation.new_connection}", f"took {format_duration(rotation.seconds)}"):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def print_certificates(title: str, results: Iterable[Any]) -> None:
    """What `invoke certs` / `client-cert` did to each certificate file, and why."""
    print_rows(title, ("action", "file", "why"), ((r.action, r.path, r.reason) for r in results))


def print_summary(summary: Mapping[str, Any]) -> None:
    """Render `up_summary` as tables."""
    print_rows("Endpoints", ("name", "url", "client cert"), (e.values() for e in summary["endpoints"]))
    print_rows("Files", ("what", "path"), summary["files"].items())
    console.print("[bold]Try it:[/]")
    for label, command in summary["commands"].items():
        console.print(f"  [dim]# {label}[/]\n  {command}", markup=True, soft_wrap=True)


def print_status(data: Mapping[str, Any], *, as_json: bool = False) -> None:
    """Render `lab.status.lab_status` for people (or as JSON for scripts)."""
    if as_json:
        print_json(data)
        return
    container = data.get("container") or {}
    if container.get("error"):
        container_line = container["error"]
    else:
        container_line = f"{container['name']} ({container['state']})" if container else "not created"
    amlen = data.get("amlen") or {}
    if amlen.get("error"):
        amlen_line = amlen["error"]
    else:
        amlen_line = f"ready, {amlen.get('version')}" if amlen.get("ready") else f"not ready ({amlen.get('state')})"
    rows = [("lab directory", data["lab_dir"])]
    if data.get("engine"):
        rows.append(("engine", data["engine"]["describe"]))
    rows.append(("container", container_line))
    volume = data.get("volume")
    if volume:
        from lab.container.volume import format_bytes

        store = (f"store files {volume['store_file_mb']} MiB each" if volume["store_file_mb"] is not None
                 else "store sized by Amlen from the disk (LAB_STORE_FILE_MB applies to new volumes)")
        rows.append(("volume", f"holds {format_bytes(volume['apparent_bytes'])} "
                               f"({format_bytes(volume['disk_bytes'])} on disk); {store}"))
    rows.append(("amlen", amlen_line))
    admin = data.get("admin")
    if admin:
        rows.append(("admin API", f"{admin['url']} ({admin['lock']})"))
    for name, endpoint in (data.get("endpoints") or {}).items():
        rows.append((f"endpoint {name}", f"port {endpoint['port']}: {'live' if endpoint['live'] else 'NOT live'}"))
    hosts = data.get("hosts") or {}
    rows.append(("hosts entry", hosts.get("error") or hosts.get("message")))
    for label, cert in data["certificates"].items():
        rows.append((f"{label} certificate", f"expires {cert['expires'][:10]} ({cert['days_left']} days)"))
    print_rows("amlen-lab status", ("what", "state"), rows)
    if admin:  # outside the table: one line to copy, never wrapped
        console.print(f"admin API by hand: {admin['curl']}", markup=False, highlight=False, soft_wrap=True)


def print_verify(report: VerifyReport, *, as_json: bool = False) -> None:
    """The TLS matrix, one line per row (expectation, outcome, time) and the reason in words beneath (or JSON)."""
    if as_json:
        print_json(report.as_dict())
        return
    console.print(f"[bold]TLS verification[/] ({format_duration(report.seconds)})")
    for r in report.rows:
        mark = "[green]✔[/]" if r.passed else "[red]✘ NOT as expected:[/]"
        protocol = f" (MQTT {r.protocol})" if r.protocol else ""
        console.print(f"{mark} [{r.row}] {escape(r.name)}{protocol}: expected {escape(r.expected)}, "
                      f"got {escape(r.actual)} [dim]({format_duration(r.seconds)})[/]", soft_wrap=True)
        if r.detail:
            console.print(f"      [dim]{escape(r.detail)}[/]", soft_wrap=True)


_STATUS_MARKS = {"OK": "[green]OK  [/]", "WARN": "[yellow]WARN[/]", "FAIL": "[red]FAIL[/]", "SKIP": "[dim]SKIP[/]"}


def print_doctor(report: DoctorReport, *, as_json: bool = False) -> None:
    """The doctor's findings, one line each (OK/WARN/FAIL/SKIP), with the hint beneath what is not OK (or JSON)."""
    if as_json:
        print_json(report.as_dict())
        return
    console.print("[bold]amlen-lab doctor[/]")
    for check in report.checks:
        console.print(f"{_STATUS_MARKS[check.status]} {escape(check.name)}: {escape(check.detail)}", soft_wrap=True)
        if check.hint and check.status != "OK":
            console.print(f"     [dim]hint: {escape(check.hint)}[/]", soft_wrap=True)


def print_trust_guide(trust: TrustReport) -> None:
    """What `invoke trust` says: what trusting a CA means, how per browser, and where the lab CA stands."""
    guide, installed, removed, platform_only = trust.guide, trust.installed, trust.removed, trust.platform_only
    if platform_only:
        commands = guide.os_commands[platform_only]
        console.print(f"Not changing trust on {platform_only} automatically. To trust the lab CA for your user, run:")
        console.print("\n".join(f"  {cmd}" for cmd in commands["install"]), markup=False, soft_wrap=True)
        console.print("To undo:\n" + "\n".join(f"  {cmd}" for cmd in commands["uninstall"]),
                      markup=False, soft_wrap=True)
        return
    if removed is not None:
        console.print("\n".join(f"removed the lab CA from {db}" for db in removed) or "nothing to remove",
                      markup=False, soft_wrap=True)
        return
    if installed is not None:
        console.print("\n".join(f"trusted the lab CA in {db}" for db in installed) or "already trusted everywhere",
                      markup=False, soft_wrap=True)
        console.print("Restart the browser so it rereads its certificate database.")
        console.print(guide.meaning, markup=False, soft_wrap=True)
    else:
        console.print(guide.meaning + f"\n\nThe lab CA: {guide.ca_file}", markup=False, soft_wrap=True)
        for browser, steps in guide.browser_steps.items():
            console.print(f"\n{browser}:\n" + "\n".join(f"  {n}. {s}" for n, s in enumerate(steps, 1)),
                          markup=False, soft_wrap=True)
        console.print("\nOr let the lab do it for Chrome/Chromium and Firefox on Linux: invoke trust --install")
        for system, commands in guide.os_commands.items():
            console.print(f"{system}: " + " ; ".join(commands["install"]), markup=False, soft_wrap=True)
    print_rows(f"Lab CA ({guide.nickname}) in NSS databases", ("browser", "database", "lab CA"), trust.rows)


def print_saved_image(saved: SavedImage) -> None:
    """Where the image file is, what it holds, and how to pin and check it on the seats."""
    record = saved.record
    pin = record.repo_digests[0] if record.repo_digests else record.id
    console.print(
        f"saved {record.reference} ({record.id[:19]}) to {saved.path} ({saved.size / 1e6:.0f} MB)\n"
        f"  file sha256: {saved.sha256}  (publish it: participants compare with `sha256sum`)\n"
        f"  on each seat: LAB_IMAGE={pin} invoke image --load {saved.path.name}, then `invoke up` works offline",
        markup=False, highlight=False, soft_wrap=True,
    )


def print_loaded_image(loaded: LoadedImage) -> None:
    """What was loaded, the digest aliases made, and whether LAB_IMAGE now resolves to it."""
    record = loaded.record
    lines = [f"loaded {record.id[:19]} ({', '.join(record.tags) or 'untagged'}) from {loaded.path}: every blob "
             "matched its digest"]
    lines += [f"  tagged {alias} (stands in for the registry digest, offline)" for alias in loaded.aliases]
    if loaded.lab_image_resolves:
        lines.append(f"  LAB_IMAGE {loaded.lab_image} is this image: `invoke up` needs no registry")
    else:
        lines.append(f"  LAB_IMAGE is {loaded.lab_image}, which is not this image: set LAB_IMAGE={record.id} "
                     "(or one of its tags) to use it")
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
