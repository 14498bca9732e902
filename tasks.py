"""amlen-lab tasks: `invoke up` builds the Amlen TLS lab, `invoke down` removes it. `invoke --list` shows all.

Each task parses its options, builds the settings, makes one call into `lab` and renders the result.
Errors the user can fix (LabError) end as one line with a hint and exit code 1; anything else is a bug.
"""

from __future__ import annotations

import atexit
import functools
import gc
import sys
from typing import Any, ClassVar

from invoke import Context, Exit, Task, task

from lab.errors import LabError

# At exit Python walks every object still alive looking for cycles: 0.1-0.15 s after `status`'s imports, a third of
# the command. The process is ending and its memory goes back whole; freezing them skips that walk (files and
# sockets are closed by `with` blocks, not by the collector).
atexit.register(gc.freeze)


class _LabTask(Task):  # type: ignore[type-arg]
    """A task whose LabError ends as one line on stderr and exit code 1 (Ctrl-C: 130), never a traceback."""

    interrupted: ClassVar[str | None] = "interrupted"  # what Ctrl-C prints

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from lab.report import error_line

        try:
            return super().__call__(*args, **kwargs)
        except LabError as exc:
            raise Exit(error_line(exc), code=1) from None
        except KeyboardInterrupt:
            raise Exit(self.interrupted, code=130) from None


lab_task = functools.partial(task, klass=_LabTask)


def _settings(**overrides: Any) -> Any:
    from lab.settings import load_settings

    return load_settings(**overrides)


def _explanation(settings: Any, explain: bool, *, down: bool = False) -> Any:
    """The manual equivalent of each step for `--explain`, or None without it."""
    from lab.learn.guide import explanation

    return explanation(settings, down=down) if explain else None


@lab_task(help={
    "hosts": "add the hosts-file entry (--no-hosts skips it and verifies by address instead)",
    "force_hosts": "add the lab's line even if a line of yours maps the name elsewhere (yours stays)",
    "verify": "run the TLS matrix at the end (--no-verify skips it)",
    "keep_on_failure": "on failure, keep what this run created for inspection instead of rolling back",
    "explain": "print each step's manual equivalent (openssl, curl, docker, client commands) as it runs",
})
def up(c: Context, hosts: bool = True, force_hosts: bool = False, verify: bool = True,
       keep_on_failure: bool = False, explain: bool = False) -> None:
    """Build the whole TLS lab: certificates, Amlen container, endpoints 8889/8890, hosts entry, checks."""
    from lab.plan import up as run_up
    from lab.report import StepPrinter, print_summary, up_summary
    from lab.steps import Options

    settings = _settings()
    options = Options(hosts=hosts, force_hosts=force_hosts, verify=verify, keep_on_failure=keep_on_failure)
    with StepPrinter("up", _explanation(settings, explain)) as printer:
        printer.finish(run_up(settings, options, on_event=printer.on_event, on_progress=printer.on_progress))
    print_summary(up_summary(settings))
    if not hosts:
        print(f"No hosts entry: clients must reach {settings.hostname} some other way; "
              f"`invoke verify --no-hosts` checks the TLS handshakes by address.")


@lab_task(help={
    "keep_container": "delete the lab's Amlen objects but keep the container running",
    "purge": "also delete the certificates, including the CA (which browsers may trust)",
    "explain": "print each step's manual equivalent (curl, docker, hosts commands) as it runs",
})
def down(c: Context, keep_container: bool = False, purge: bool = False, explain: bool = False) -> None:
    """Remove what `up` created: endpoints, container, volume, hosts line (certificates stay unless --purge)."""
    from lab.plan import down as run_down
    from lab.report import StepPrinter
    from lab.steps import Options

    settings = _settings()
    with StepPrinter("down", _explanation(settings, explain, down=True)) as printer:
        printer.finish(run_down(settings, Options(keep_container=keep_container, purge=purge),
                                on_event=printer.on_event))


@lab_task(help={
    "admin_url": "the admin API of the Amlen to configure, e.g. http://amlen.example:9089 (default: LAB_ADMIN_URL)",
    "hosts": "add the hosts-file entry (--no-hosts skips it)",
    "verify": "run the TLS matrix at the end (--no-verify skips it)",
    "explain": "print each step's manual equivalent (openssl, curl, client commands) as it runs",
})
def configure(c: Context, admin_url: str = "", hosts: bool = True, verify: bool = True, explain: bool = False) -> None:
    """Apply the guide's certificates and endpoints to an Amlen that already runs (e.g. `docker compose up`)."""
    from lab.plan import configure as run_configure
    from lab.report import StepPrinter, print_summary, up_summary
    from lab.steps import Options

    settings = _settings(admin_url=admin_url or None)
    with StepPrinter("configure", _explanation(settings, explain)) as printer:
        printer.finish(run_configure(settings, Options(hosts=hosts, verify=verify), on_event=printer.on_event,
                                     on_progress=printer.on_progress))
    print_summary(up_summary(settings))


@lab_task(help={
    "output": "write the Markdown to FILE instead of printing it",
    "script": "write the same commands as one bash script to FILE (set -euo pipefail; files in the current dir)",
})
def guide(c: Context, output: str = "", script: str = "") -> None:
    """Write the TLS guide for this lab as Markdown: each step of `up` as commands to type by hand."""
    from pathlib import Path

    from lab.learn.guide import write_guide
    from lab.report import print_guide

    print_guide(write_guide(_settings(), output=Path(output) if output else None,
                            script=Path(script) if script else None))


@lab_task(help={"json": "print JSON for scripts"})
def status(c: Context, json: bool = False) -> None:
    """Show the container, Amlen's readiness, each endpoint, the hosts entry and certificate expiry."""
    from lab.report import print_status
    from lab.status import lab_status

    print_status(lab_status(_settings()), as_json=json)


@lab_task(help={"follow": "keep printing new lines (Ctrl-C stops)", "lines": "how many lines to show first"})
def logs(c: Context, follow: bool = False, lines: int = 50) -> None:
    """Show Amlen's server log from inside the container (Amlen logs to files, not to `docker logs`)."""
    from lab.container.runtime import server_log

    for chunk in server_log(_settings(), follow=follow, lines=lines):
        sys.stdout.write(chunk)
        sys.stdout.flush()


@lab_task(help={
    "new_ca": "replace the CA and re-issue every certificate it signed (the old CA is gone for good)",
    "rotate": "on the running lab: a new server key and certificate (new serial), uploaded, proven live",
})
def certs(c: Context, new_ca: bool = False, rotate: bool = False) -> None:
    """Make or refresh the CA, server and client certificates (keeps what is still good); --rotate the server's."""
    from lab.kit import refreshing_kits
    from lab.kit.report import print_refreshed
    from lab.report import print_certificates, print_rotation

    if new_ca and rotate:
        raise Exit("error: choose one of --new-ca and --rotate", code=1)
    settings = _settings()
    if rotate:
        from lab.rotation import rotate as rotate_server

        print_rotation(rotate_server(settings))
        print_refreshed(refreshing_kits(settings, lambda: None)[1])
        return
    from lab.pki.leaves import ensure_certificates

    results, kits = refreshing_kits(settings, lambda: ensure_certificates(settings, new_ca=new_ca))
    print_certificates("Certificates", results)
    print_refreshed(kits)


@lab_task(iterable=["name"], help={
    "name": "client name, used as CN and file name; repeat the flag or separate names with commas",
    "force": "re-issue even when the existing certificate is still good",
    "expired": "the expiry drill: a certificate that expired yesterday (Amlen must refuse it)",
    "days": "lifetime in days (e.g. 3, to watch `invoke doctor` warn)",
    "not_before": "valid only from this UTC date or time, e.g. 2030-01-01 or 2030-01-01T08:00 (a future start)",
})
def client_cert(c: Context, name: list[str], force: bool = False, expired: bool = False, days: int = 0,
                not_before: str = "") -> None:
    """Make more client certificates from the lab CA, e.g. --name alice,bob (--expired for the drill)."""
    from lab.kit import refreshing_kits
    from lab.kit.report import print_refreshed
    from lab.pki.leaves import issue_client_certs, parse_validity
    from lab.report import print_certificates

    names = [part.strip() for value in name for part in value.split(",") if part.strip()]
    validity = parse_validity(expired=expired, days=days, not_before=not_before)
    settings = _settings()
    # A re-issued client's kit gets its new key and certificate.
    results, kits = refreshing_kits(settings, lambda: issue_client_certs(settings, names, force=force,
                                                                          validity=validity))
    print_certificates("Client certificates", results)
    print_refreshed(kits)


@lab_task(help={
    "client": "the client whose kit to write (default: the lab's first client, e.g. test.client1)",
    "lang": "languages, comma-separated: java,node,go,c,python (default: all)",
    "force": "overwrite kit files you changed by hand",
    "legacy_p12": "PKCS#12 in the legacy form (3DES, SHA-1) for Java 8 before 8u301 and OpenSSL 1.1",
})
def kit(c: Context, client: str = "", lang: str = "", force: bool = False, legacy_p12: bool = False) -> None:
    """Write a connection kit: PEM and PKCS#12 files, connection.env, a program per language (.lab/kits/)."""
    from lab.kit import make_client_kit, parse_languages
    from lab.kit.report import print_kit

    languages = parse_languages(lang)
    print_kit(make_client_kit(_settings(), client, languages, legacy_p12=legacy_p12, force=force))


@lab_task(help={
    "install": "trust the lab CA in your Chrome/Chromium and Firefox certificate databases (Linux; certutil)",
    "uninstall": "remove the lab CA from them again (only the entry the lab added)",
})
def trust(c: Context, install: bool = False, uninstall: bool = False) -> None:
    """Browser trust for the lab CA: show where and how (default), --install it, or --uninstall it."""
    from lab.pki.trust import trust_report
    from lab.report import print_trust_guide

    if install and uninstall:
        raise Exit("error: choose one of --install and --uninstall", code=1)
    print_trust_guide(trust_report(_settings(), install=install, uninstall=uninstall))


@lab_task(help={
    "port": "port for the page on 127.0.0.1 (0: any free port)",
    "no_open": "only print the URL; do not open a browser",
})
def browser(c: Context, port: int = 0, no_open: bool = False) -> None:
    """Serve a local MQTT-over-secure-WebSocket page prefilled for the lab, and open it; Ctrl-C stops."""
    from lab.clients.browser import serve_browser_page
    from lab.report import say

    serve_browser_page(_settings(), say, port=port, open_browser=not no_open)


@lab_task(help={
    "add": "add the lab's line (no change when it, or a line of yours for the same address, is there)",
    "remove": "remove the lab's line (only this lab directory's marked line)",
    "show": "show which line makes the host name resolve (the default)",
    "force": "with --add: put the lab's line above a line of yours that maps the name elsewhere (yours stays)",
})
def hosts(c: Context, add: bool = False, remove: bool = False, show: bool = False, force: bool = False) -> None:
    """Add, remove or show the lab's line in the hosts file (default: show); the `up`/`down` step alone."""
    from lab.hosts import add_hosts_entry, hosts_status, remove_hosts_entry
    from lab.report import console

    # No lab_lock: under sudo it would create a root-owned .lab/.lock that later runs as the user cannot open;
    # lab.hosts re-reads the file just before writing instead.
    if add + remove + show > 1:
        raise Exit("error: choose one of --add, --remove and --show", code=1)
    if force and not add:
        raise Exit("error: --force goes with --add", code=1)
    settings = _settings()
    outcome = (add_hosts_entry(settings, force=force) if add else remove_hosts_entry(settings) if remove
               else hosts_status(settings))
    console.print(outcome.message, markup=False, highlight=False, soft_wrap=True)


@lab_task(help={
    "count": "messages each round trip publishes and must receive back",
    "protocol": "MQTT version for the rows: 3.1.1, 5 or both (round trips run once per version)",
    "no_hosts": "dial the lab's address and send the host name in TLS, for when the hosts entry is absent",
    "client": "also try the mutual port with client certificate NAME (an expired one must be refused)",
    "json": "print JSON for scripts",
})
def verify(c: Context, count: int = 5, protocol: str = "both", no_hosts: bool = False, client: str = "",
           json: bool = False) -> None:
    """Prove the TLS setup with real MQTT clients: what must work works, what must fail fails."""
    from lab.clients.checks import parse_protocols
    from lab.clients.checks import verify as run_verify
    from lab.report import print_verify

    report = run_verify(_settings(), count=count, protocols=parse_protocols(protocol), no_hosts=no_hosts,
                        client=client)
    print_verify(report, as_json=json)
    if not report.passed:
        raise Exit(None if json else "error: some rows are not as expected (hint: `invoke doctor` names the cause)",
                   code=1)


class _GuideFlags(_LabTask):
    """The paho examples' flags (client_sub_opts.py / client_pub_opts.py) plus the guide's -K/-C."""

    NAMES: ClassVar[dict[str, tuple[str, ...]]] = {
        "host": ("H",), "port": ("P",), "topic": ("t",), "qos": ("q",), "clientid": ("c",), "username": ("u",),
        "password": ("p",), "disable_clean_session": ("d",), "keepalive": ("k",), "tls": ("use-tls", "s"),
        "cacerts": ("F",), "debug": ("D",), "key": ("K",), "cert": ("C",), "count": ("nummsgs", "N"),
        "delay": ("S",), "message": ("m",),
    }

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Any]:
        arguments = super().get_arguments(ignore_unknown_help)
        for argument in arguments:
            long_name = argument.names[0]
            argument.names = (long_name, *self.NAMES.get(long_name.replace("-", "_"), ()))
        return arguments


class _SubFlags(_GuideFlags):
    """`sub` is meant to end by Ctrl-C: exit code 130 without a message."""

    interrupted = None


_CLIENT_HELP = {
    "host": "broker host name (default: the lab's, as in the certificate)",
    "port": "broker port (default: the TLS port; on the mutual port the lab's client certificate is used)",
    "topic": "topic (filter for sub)",
    "qos": "quality of service 0, 1 or 2",
    "clientid": "MQTT client ID (default: a random lab-... ID)",
    "username": "user name, sent in CONNECT",
    "password": "password, sent in CONNECT",
    "disable_clean_session": "keep the session (and queued messages) when the client disconnects",
    "keepalive": "keepalive in seconds",
    "tls": "TLS (the default; -s is accepted as in the guide, --no-tls for plain MQTT)",
    "insecure": "do not check the server's certificate (for debugging only)",
    "cacerts": "CA file to trust (default: the lab's myCA.pem; found here or in the lab's pki directory)",
    "tls_version": "pin the TLS version: tlsv1.3, tlsv1.2, tlsv1.1 or tlsv1",
    "debug": "print paho's log",
    "key": "client key file (mutual TLS)",
    "cert": "client certificate file (mutual TLS)",
    "protocol": "MQTT version: 3.1.1 or 5",
}


def _client_flags(host: str, port: str, tls: bool, insecure: bool, cacerts: str, tls_version: str, key: str,
                  cert: str, qos: str, clientid: str, username: str, password: str, disable_clean_session: bool,
                  keepalive: str, protocol: str) -> Any:
    """The guide's flags as typed (their values are checked in lab.clients.subpub, errors in one line)."""
    from lab.clients.subpub import ClientFlags

    return ClientFlags(host, port, tls, cacerts, key, cert, insecure, tls_version, qos=qos, client_id=clientid,
                       username=username, password=password, clean_session=not disable_clean_session,
                       keepalive=keepalive, protocol=protocol)


@lab_task(klass=_SubFlags, auto_shortflags=False, help={**_CLIENT_HELP, "count": "stop after N messages (0: never)"})
def sub(c: Context, host: str = "", port: str = "", topic: str = "topic1/#", qos: str = "0", clientid: str = "",
        username: str = "", password: str = "", disable_clean_session: bool = False, keepalive: str = "60",
        tls: bool = True, insecure: bool = False, cacerts: str = "", tls_version: str = "", debug: bool = False,
        key: str = "", cert: str = "", count: str = "0", protocol: str = "3.1.1") -> None:
    """Subscribe like the guide's paho client and print messages as they arrive (Ctrl-C stops)."""
    from lab.clients.subpub import guide_subscribe, parse_number
    from lab.report import say

    stop_after = int(parse_number("-N/--count", count, low=0, high=10**9))
    flags = _client_flags(host, port, tls, insecure, cacerts, tls_version, key, cert, qos, clientid, username,
                          password, disable_clean_session, keepalive, protocol)
    guide_subscribe(_settings(), flags, topic, say, stop_after=stop_after, debug=debug)


@lab_task(klass=_GuideFlags, auto_shortflags=False, help={
    **_CLIENT_HELP, "count": "publish N messages", "delay": "seconds between messages", "message": "payload",
})
def pub(c: Context, host: str = "", port: str = "", topic: str = "topic1/subtopic2", qos: str = "0",
        clientid: str = "", username: str = "", password: str = "", disable_clean_session: bool = False,
        keepalive: str = "60", tls: bool = True, insecure: bool = False, cacerts: str = "", tls_version: str = "",
        debug: bool = False, key: str = "", cert: str = "", count: str = "1", delay: str = "0",
        message: str = "hello", protocol: str = "3.1.1") -> None:
    """Publish like the guide's paho client: N messages to a topic, over TLS with the lab's files."""
    from lab.clients.subpub import guide_publish, parse_number
    from lab.report import say

    how_many = int(parse_number("-N/--count", count, low=1, high=10**6))
    pause = float(parse_number("-S/--delay", delay, low=0, high=3600, integer=False))
    flags = _client_flags(host, port, tls, insecure, cacerts, tls_version, key, cert, qos, clientid, username,
                          password, disable_clean_session, keepalive, protocol)
    guide_publish(_settings(), flags, topic, [message] * how_many, say, delay=pause, debug=debug)


@lab_task(help={
    "seats": "make or grow the room to N seats named 01..N (seat certificate CN seat.01 ...)",
    "roster": "make or grow the room from a file: one seat name per line (# comments)",
    "revoke": "put seat NAME's certificate on the workshop CRL: its new connections are refused",
    "reissue": "a new key and certificate (new serial) for seat NAME; the way back after --revoke",
    "status": "one line per seat: expiry, revoked, connected now, since when, messages (the default)",
    "json": "with --status: print JSON for scripts",
    "watch": "with --status: a live table of the room, redrawn every 2 s until Ctrl-C",
    "rehearse": "connect as every seat from its bundle and prove the room; non-zero exit on any failure",
    "expose": "publish the workshop port on this machine's ADDRESS for the room (127.0.0.1: back to loopback)",
    "kits": "with --seats/--roster: each bundle carries these languages' programs, e.g. java,node (none: none)",
})
def workshop(c: Context, seats: int = 0, roster: str = "", revoke: str = "", reissue: str = "",
             status: bool = False, json: bool = False, watch: bool = False, rehearse: bool = False,
             expose: str = "", kits: str = "") -> None:
    """Workshop labs: a seat per participant with its own certificate, endpoint, topics; revoke, status, expose."""
    from lab.workshop.command import WorkshopFlags, run_workshop

    flags = WorkshopFlags(seats, roster, revoke, reissue, status, json, watch, rehearse, expose, kits)
    if not run_workshop(_settings(), flags):
        raise Exit(code=1)


@lab_task(help={
    "save": "write LAB_IMAGE to FILE (docker save, plus the digests to check it by) to hand out",
    "load": "check FILE blob by blob, load it, and make a digest-pinned LAB_IMAGE resolve offline",
})
def image(c: Context, save: str = "", load: str = "") -> None:
    """The lab's Amlen image as one file: --save FILE on a machine that has it, --load FILE on each seat."""
    from pathlib import Path

    from lab.container.image import load_image, save_image
    from lab.report import print_loaded_image, print_saved_image

    if bool(save) == bool(load):
        raise Exit("error: choose one of --save FILE and --load FILE", code=1)
    settings = _settings()
    if save:
        print_saved_image(save_image(settings, Path(save)))
    else:
        print_loaded_image(load_image(settings, Path(load)))


@lab_task(help={"json": "print JSON for scripts"})
def doctor(c: Context, json: bool = False) -> None:
    """Diagnose the lab: Docker, container, Amlen, names, ports, TLS chains, files; each with a hint."""
    from lab.doctor import doctor as run_doctor
    from lab.report import print_doctor

    report = run_doctor(_settings())
    print_doctor(report, as_json=json)
    if not report.ok:
        raise Exit(None if json else "error: some checks failed (hints above)", code=1)
