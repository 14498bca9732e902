"""The real broker behind the stand-in's endpoints: one Debian mosquitto on loopback.

Amlen serves MQTT and MQTT over WebSocket on the same endpoint port ("Protocol All"); a mosquitto listener
speaks only one of them. So the endpoint ports are served by the stand-in's TLS front (``endpoints.py``),
which terminates TLS and forwards each connection to one of four loopback listeners here: plain MQTT or
WebSocket, each either anonymous (security profile without password authentication) or closed to every user
(password authentication on: the stand-in has no user registry, so a client that does not turn password
authentication off is refused with "not authorised" instead of slipping through).
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Log(Protocol):
    """The logging callable the stand-in passes around (see ``diag.ServerLog.log``)."""

    def __call__(
        self, msg_id: str, severity: str, category: str, text: str, *, console: bool = False
    ) -> None: ...


@dataclass(frozen=True)
class BrokerPorts:
    """Loopback ports of the four mosquitto listeners."""

    base: int

    @property
    def mqtt(self) -> int:
        return self.base

    @property
    def websocket(self) -> int:
        return self.base + 1

    @property
    def mqtt_password(self) -> int:
        return self.base + 2

    @property
    def websocket_password(self) -> int:
        return self.base + 3

    def pick(self, *, websocket: bool, password: bool) -> int:
        """The listener a connection goes to."""
        if websocket:
            return self.websocket_password if password else self.websocket
        return self.mqtt_password if password else self.mqtt


_START_TIMEOUT = 10.0
_RESTART_BACKOFF = 1.0


class Broker:
    """Runs mosquitto, restarts it if it dies, stops it on shutdown."""

    def __init__(self, workdir: Path, log_file: Path, ports: BrokerPorts, log: Log) -> None:
        self._workdir = workdir
        self._log_file = log_file
        self.ports = ports
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def _write_config(self) -> Path:
        password_file = self._workdir / "no-users.passwd"
        password_file.write_text("")  # no user can log in; see the module docstring
        listeners = []
        for port, websocket, password in (
            (self.ports.mqtt, False, False),
            (self.ports.websocket, True, False),
            (self.ports.mqtt_password, False, True),
            (self.ports.websocket_password, True, True),
        ):
            lines = [f"listener {port} 127.0.0.1"]
            if websocket:
                lines.append("protocol websockets")
            if password:
                lines += ["allow_anonymous false", f"password_file {password_file}"]
            else:
                lines.append("allow_anonymous true")
            listeners.append("\n".join(lines))
        config = self._workdir / "mosquitto.conf"
        # mosquitto 2.0.11 refuses to start with websockets listeners only; we always have plain ones as well.
        # Its stdout is block-buffered when redirected, so it logs to a file.
        config.write_text(
            # Started as root (local runs), mosquitto would switch to user "mosquitto" and lose the log file.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            "per_listener_settings true\n"
            "persistence false\n"
            f"log_dest file {self._log_file}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "connection_messages true\n\n" + "\n\n".join(listeners) + "\n"
        )
        return config

    def start(self) -> None:
        """Start mosquitto and wait until every listener accepts connections."""
        config = self._write_config()
        with self._lock:
            self._process = subprocess.Popen(
                ["mosquitto", "-c", str(config)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
            )
        deadline = time.monotonic() + _START_TIMEOUT
        for port in (
            self.ports.mqtt,
            self.ports.websocket,
            self.ports.mqtt_password,
            self.ports.websocket_password,
        ):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or self._process.poll() is not None:
                        raise RuntimeError(f"mosquitto did not start; see {self._log_file}") from None
                    time.sleep(0.02)
        threading.Thread(target=self._supervise, name="broker-supervisor", daemon=True).start()

    def _supervise(self) -> None:
        process = self._process
        assert process is not None
        code = process.wait()
        if self._stopping.is_set():
            return
        self._log(
            "CWLNA0100",
            "ERROR",
            "Server",
            f"The stand-in's broker (mosquitto) exited with code {code}; restarting it.",
            console=True,
        )
        time.sleep(_RESTART_BACKOFF)
        if not self._stopping.is_set():
            self.start()

    def stop(self) -> None:
        """Stop mosquitto (SIGTERM, then SIGKILL after a grace period)."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
