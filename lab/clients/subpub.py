"""The guide's paho clients (`invoke sub` / `invoke pub`): its command lines, as written, with the lab's files.

The guide runs paho's `client_sub_opts.py` / `client_pub_opts.py` examples plus `-K key -C cert` for mutual
TLS, e.g. `-H testserver.getting.started -P 8890 -t 'topic1/#' -s --cacerts myCA.pem -D -K test.client1.key
-C test.client1.crt`. Every flag of those examples is accepted; values arrive as text and are checked here,
so a malformed one is a one-line usage error, never a traceback. File names are looked up in the current
directory first, then in the lab's pki directory, so the guide's bare `myCA.pem` works from anywhere.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import CheckError
from lab.pki.paths import pki_paths
from lab.settings import Settings

if TYPE_CHECKING:
    from lab.clients.mqtt import SessionOptions

__all__ = ["ClientFlags", "ClientTarget", "GuideSession", "client_target", "guide_publish", "guide_session",
           "guide_subscribe", "parse_number", "resolve_file"]

_TLS_VERSIONS = {
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1": ssl.TLSVersion.TLSv1,
}


@dataclass(frozen=True)
class ClientFlags:
    """What the guide's client command lines say about TLS (host, port and files as typed)."""

    host: str = ""
    port: str = ""
    tls: bool = True
    cacerts: str = ""
    key: str = ""
    cert: str = ""
    insecure: bool = False
    tls_version: str = ""
    # The session's flags (-q -c -u -p -d -k and the MQTT version), as typed.
    qos: str = "0"
    client_id: str = ""
    username: str = ""
    password: str = ""
    clean_session: bool = True
    keepalive: str = "60"
    protocol: str = "3.1.1"


@dataclass(frozen=True)
class GuideSession:
    """A guide-style client, ready to connect: where, with which TLS context, and how (options, QoS)."""

    target: ClientTarget
    options: SessionOptions
    qos: int


def guide_session(settings: Settings, flags: ClientFlags, *, log: Callable[[str], None] | None = None
                  ) -> GuideSession:
    """Check every value of the flags (before any file is looked at, so a typo is named first), then find the
    files and build the TLS context; `log` receives paho's log lines (the examples' -D)."""
    from lab.clients.checks import parse_protocols
    from lab.clients.mqtt import SessionOptions

    qos = int(parse_number("-q/--qos", flags.qos, low=0, high=2))
    options = SessionOptions(
        protocol=parse_protocols(flags.protocol)[0], client_id=flags.client_id, clean_session=flags.clean_session,
        keepalive=int(parse_number("-k/--keepalive", flags.keepalive, low=5, high=65535)),
        username=flags.username or None, password=flags.password or None, log=log,
    )
    return GuideSession(client_target(settings, flags), options, qos)


def guide_subscribe(settings: Settings, flags: ClientFlags, topic: str, say: Callable[[str], None], *,
                    stop_after: int = 0, debug: bool = False) -> None:
    """`invoke sub`: subscribe to `topic` and `say` each message as it arrives, until `stop_after` of them
    (0: until Ctrl-C); `debug` says paho's log too."""
    from lab.clients.mqtt import subscribe

    session = guide_session(settings, flags, log=say if debug else None)
    target = session.target
    say(f"subscribing to {topic} on {target.description}")
    messages = subscribe(target.host, target.port, topic, context=target.context, qos=session.qos,
                         options=session.options)
    for received, message in enumerate(messages, 1):
        say(f"{message.topic} {message.payload.decode(errors='replace')}")
        if stop_after and received >= stop_after:
            break


def guide_publish(settings: Settings, flags: ClientFlags, topic: str, payloads: list[str],
                  say: Callable[[str], None], *, delay: float = 0, debug: bool = False) -> None:
    """`invoke pub`: publish `payloads` to `topic`, `delay` seconds apart, and say how many went out."""
    from lab.clients.mqtt import publish

    session = guide_session(settings, flags, log=say if debug else None)
    target = session.target
    sent = publish(target.host, target.port, topic, payloads, context=target.context, qos=session.qos,
                   options=session.options, delay=delay)
    say(f"published {sent} message(s) to {topic} on {target.description}")


@dataclass(frozen=True)
class ClientTarget:
    """Where a guide-style client connects, and with which TLS context (None: plain MQTT)."""

    host: str
    port: int
    context: ssl.SSLContext | None
    description: str


def parse_number(flag: str, text: str, *, low: float, high: float, integer: bool = True) -> int | float:
    """A flag's value as a number in [low, high]; a CheckError naming the flag otherwise."""
    try:
        value: int | float = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise CheckError(f"usage: {flag} expects {kind}, not {text!r}", "`invoke --help sub` lists the flags") from None
    if not low <= value <= high:
        raise CheckError(f"usage: {flag} must be between {low:g} and {high:g}, not {text}",
                         "`invoke --help sub` lists the flags")
    return value


def resolve_file(name: str, settings: Settings) -> Path:
    """`name` as given, else in the current directory, else in the lab's pki directory (the guide's names)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    in_pki = pki_paths(settings).dir / path.name
    if not path.is_absolute() and in_pki.is_file():
        return in_pki
    raise CheckError(f"{name} not found here or in {pki_paths(settings).dir}",
                     "run `invoke certs` (or `invoke client-cert --name NAME`), or give the file's path")


def client_target(settings: Settings, flags: ClientFlags) -> ClientTarget:
    """The guide's client flags with the lab's defaults: its host name, the TLS port, myCA.pem.

    `--cacerts` implies TLS, as in the paho examples. On the mutual port the lab's first client certificate
    is used unless `-C` says otherwise; `-C` without `-K` takes the key beside the certificate.
    """
    port = int(parse_number("-P/--port", flags.port, low=1, high=65535)) if flags.port else settings.tls_port
    host = flags.host or settings.hostname
    version = _TLS_VERSIONS.get(flags.tls_version.lower()) if flags.tls_version else None
    if flags.tls_version and version is None:
        raise CheckError(f"usage: --tls-version {flags.tls_version} is not one of {', '.join(_TLS_VERSIONS)}",
                         "e.g. --tls-version tlsv1.2")
    if not flags.tls and not flags.cacerts:
        return ClientTarget(host, port, None, f"{host}:{port}, plain MQTT")
    paths = pki_paths(settings)
    # Default trust for the server: myCA.pem; with your own certificate LAB_TRUST_CA, its root, or the system's.
    ca_file = resolve_file(flags.cacerts, settings) if flags.cacerts else paths.server_trust
    cert = resolve_file(flags.cert, settings) if flags.cert else None
    key = resolve_file(flags.key, settings) if flags.key else None
    if cert is None and key is None and port == settings.mtls_port and settings.client_names:
        key, cert = paths.client_presented(settings.client_names[0])
    if cert is not None and key is None:
        # The key beside the certificate: x.crt -> x.key, and a chain file x.chain.pem -> x.key too.
        stem = cert.name.removesuffix(".chain.pem") if cert.name.endswith(".chain.pem") else cert.stem
        key = resolve_file(str(cert.with_name(f"{stem}.key")), settings)
    if key is not None and cert is None:
        raise CheckError("usage: -K/--key needs -C/--cert (the client certificate) too",
                         "pass both, e.g. -K test.client1.key -C test.client1.crt")
    for path in (ca_file, cert, key):
        if path is not None and not path.is_file():
            raise CheckError(f"{path} does not exist", "run `invoke certs`, or give --cacerts/-C/-K")
    from lab.clients.tls import tls_context  # the TLS half only when TLS is used

    context = tls_context(ca_file=None if flags.insecure else ca_file, cert=cert, key=key,
                          system_trust=not flags.insecure and ca_file is None)
    if version is not None:
        context.minimum_version = context.maximum_version = version
    who = f", client certificate {cert.name}" if cert else ""
    trust = ("without checking the server (--insecure)" if flags.insecure
             else f"trusting {ca_file.name}" if ca_file is not None else "trusting the system's CAs")
    return ClientTarget(host, port, context, f"{host}:{port}, TLS {trust}{who}")
