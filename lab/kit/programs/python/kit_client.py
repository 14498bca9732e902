"""The kit's Python program: connect over TLS as the kit says, publish one message to itself, receive it.

    python kit_client.py [mtls|tls]        (run.sh runs it; KIT_* environment variables override connection.env)

It dials KIT_ADDRESS but sends and verifies KIT_SERVER_NAME: paho-mqtt passes the host given to connect() to
`SSLContext.wrap_socket(server_hostname=...)` and has no option to change that name, so the context below pins
it (paho's documented `tls_set_context` hook). Verification is the `ssl` module's: CERT_REQUIRED and
check_hostname=True (PROTOCOL_TLS_CLIENT's defaults, set explicitly so nobody reads them as optional).
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

KIT_DIR = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 60


class PinnedNameContext(ssl.SSLContext):
    """An SSLContext that always sends and verifies `server_name`, whatever host paho dialled."""

    server_name = ""

    def wrap_socket(self, sock: socket.socket, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | bytes | None = None,
                    session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
        return super().wrap_socket(sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
                                   suppress_ragged_eofs=suppress_ragged_eofs,
                                   server_hostname=self.server_name or server_hostname, session=session)


def settings() -> dict[str, str]:
    """connection.env (KEY=value lines), overridden by KIT_* environment variables."""
    values: dict[str, str] = {}
    for line in (KIT_DIR / "connection.env").read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    values.update({k: v for k, v in os.environ.items() if k.startswith("KIT_")})
    return values


def tls_context(kit: dict[str, str], *, client_certificate: bool) -> ssl.SSLContext:
    context = PinnedNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED  # verify the server's certificate against the kit's CA only
    context.check_hostname = True  # ... and that it names KIT_SERVER_NAME: without this any lab certificate passes
    context.server_name = kit["KIT_SERVER_NAME"]
    context.load_verify_locations(cafile=str(KIT_DIR / kit["KIT_CA"]))
    if client_certificate:
        context.load_cert_chain(certfile=str(KIT_DIR / kit["KIT_CERT"]), keyfile=str(KIT_DIR / kit["KIT_KEY"]))
    return context


def run(mode: str) -> str:
    """The round trip; returns the `received ...` line, raises RuntimeError (or ssl/OS errors) on failure."""
    kit = settings()
    port = int(kit["KIT_MTLS_PORT"] if mode == "mtls" else kit["KIT_TLS_PORT"])
    topic, payload = kit["KIT_TOPIC"], f"hello from python {uuid.uuid4().hex[:8]}"
    received = threading.Event()
    problems: list[str] = []
    lines: list[str] = []

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{kit['KIT_CLIENT_ID']}-py-{mode}")
    client.tls_set_context(tls_context(kit, client_certificate=mode == "mtls"))

    def on_connect(c: mqtt.Client, userdata: object, flags: object, reason: ReasonCode, props: object) -> None:
        if reason.is_failure:
            problems.append(f"the broker refused the connection: {reason}")
            received.set()
            return
        c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode],
                     props: Properties) -> None:
        if any(r.is_failure for r in reasons):
            problems.append(f"the broker refused the subscription to {topic}: {reasons[0]}")
            received.set()
            return
        c.publish(topic, payload, qos=1)

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.payload.decode(errors="replace") == payload:
            lines.append(f"received {message.topic}: {payload}")
            received.set()

    def on_log(c: mqtt.Client, userdata: object, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:  # paho reports socket and TLS errors of its loop only here
            problems.append(text)

    def on_disconnect(c: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        problems.append(f"disconnected: {reason}")
        received.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.on_log, client.on_disconnect = on_log, on_disconnect
    client.connect(kit["KIT_ADDRESS"], port, keepalive=30)  # the TLS handshake and its checks happen here
    deadline = time.monotonic() + WAIT_SECONDS
    while not received.is_set() and time.monotonic() < deadline:
        client.loop(timeout=0.5)
    if lines:
        client.disconnect()
        return lines[0]
    raise RuntimeError(problems[0] if problems else f"no message on {topic} within {WAIT_SECONDS} s")


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "mtls"
    if mode not in ("mtls", "tls"):
        print(f"error: unknown mode {mode!r} (mtls or tls)", file=sys.stderr)
        return 2
    try:
        print(run(mode))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # ssl.SSLError is an OSError
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
