"""Amlen stand-in: test infrastructure that answers like Eclipse Amlen where amlen-lab touches it.

It is not Amlen. It serves Amlen's REST admin API on port 9089 (HTTP and HTTPS on the same port, like Amlen's
default admin endpoint) with the JSON shapes, HTTP statuses and CWLNA codes recorded from a real server, and
it turns enabled Endpoints into real TLS listeners backed by Debian's mosquitto (see ``endpoints.py``).

Start-up follows the real server: the admin port refuses connections for ``STANDIN_LISTEN_DELAY`` seconds,
then ``GET /ima/v1/service/status`` answers HTTP 200 with the starting states 11, 16 and 4 for
``STANDIN_START_DELAY`` seconds, then ``State`` 1 "Running (production)". Environment (all optional):

    STANDIN_LISTEN_DELAY=0.5   STANDIN_START_DELAY=0.4   STANDIN_STOP_DELAY=1.0   STANDIN_BROKER_PORT=18830
    STANDIN_ADMIN_PASSWORD_SET=1 (0: behave as a server without AdminUserID/AdminUserPassword, see CWLNA0375)
    STANDIN_CONN_MONITOR_INTERVAL=60 (seconds between rebuilds of GET /ima/v1/monitor/Connection's cache)
    MESSAGESIGHT_ADMIN_PORT=9089   MESSAGESIGHT_ADMIN_HOST=All   STANDIN_DATA_PATH=/var/lib/amlen-server
    IMATotalMemSizeMB (Amlen's own override of the memory it sizes itself from, see resources.py)

Before anything listens it checks ``data/config/server.cfg`` (it must be writable by the server's user) and
sizes itself from memory; in the store phase it creates the store files (``resources.py``). Either failing
stops the process with exit code 1 and a line in ``imaserver_start.log``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import string
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The stand-in's own modules sit next to this file (python3 puts the script's directory on sys.path).
from admin_http import AdminServer
from broker import Broker, BrokerPorts
from certs import DataPaths
from connections import ConnectionRegistry
from diag import ServerLog
from endpoints import ConnectionBudget, EndpointManager, FrontServices
from messages import AmlenError
from resources import (
    StartupError,
    check_server_cfg,
    create_store_files,
    persist_file_size,
    tcp_max_connections,
    total_memory_mb,
)
from store import Configuration
from subscriptions import SubscriptionRegistry

VERSION = "1.1dev 20261126-0000 (Amlen stand-in)"

# Server states (server_admin/include/admin.h) -> (Status, StateDescription) as adminInternal.c maps them.
RUNNING, STOPPING, TRANSPORT_STARTED, STARTING_STORE, STARTING_ENGINE = 1, 2, 4, 11, 16
_STATE_TEXT = {
    RUNNING: ("Running", "Running (production)"),
    STOPPING: ("Stopping", "Stopping"),
    TRANSPORT_STARTED: ("Initializing", "TransportStarted"),
    STARTING_STORE: ("StoreStarting", "StoreStarting"),
    STARTING_ENGINE: ("EngineStarting", "EngineStarting"),
}
_START_PHASES = (STARTING_STORE, STARTING_ENGINE, TRANSPORT_STARTED)


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "")
    return float(value) if value.strip() else default


@dataclass(frozen=True)
class Settings:
    """The stand-in's knobs, read once from the environment."""

    data_path: Path
    install_certificates: Path
    admin_port: int
    admin_host: str
    listen_delay: float
    start_delay: float
    stop_delay: float
    broker_port: int
    admin_password_set: bool
    conn_monitor_interval: float
    install_config: Path
    memory_override: str  # IMATotalMemSizeMB from the environment, as Amlen reads it

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from ``env``; durations in seconds."""
        return cls(
            data_path=Path(env.get("STANDIN_DATA_PATH", "/var/lib/amlen-server")),
            install_certificates=Path(
                env.get("STANDIN_INSTALL_CERTIFICATES", "/usr/share/amlen-server/certificates")
            ),
            admin_port=int(env.get("MESSAGESIGHT_ADMIN_PORT", "9089")),
            admin_host=env.get("MESSAGESIGHT_ADMIN_HOST", "All"),
            listen_delay=_env_float(env, "STANDIN_LISTEN_DELAY", 0.5),
            start_delay=_env_float(env, "STANDIN_START_DELAY", 0.4),
            stop_delay=_env_float(env, "STANDIN_STOP_DELAY", 1.0),
            broker_port=int(env.get("STANDIN_BROKER_PORT", "18830")),
            admin_password_set=env.get("STANDIN_ADMIN_PASSWORD_SET", "1") != "0",
            conn_monitor_interval=_env_float(env, "STANDIN_CONN_MONITOR_INTERVAL", 60.0),
            install_config=Path(env.get("STANDIN_INSTALL_CONFIG", "/usr/share/amlen-server/config/server.cfg")),
            memory_override=env.get("IMATotalMemSizeMB", ""),
        )


def _container_id() -> str:
    """The Docker container id, found like Amlen's ``container_uuid.sh`` finds it, else the hostname."""
    try:
        match = re.search(r"/containers/([0-9a-f]{64})/", Path("/proc/self/mountinfo").read_text())
    except OSError:
        match = None
    return match.group(1) if match else socket.gethostname()


class _Terminated(BaseException):
    """Raised in the main thread by the SIGTERM/SIGINT handler to unwind whatever it is waiting on."""


class StandIn:
    """The whole server: state, configuration, broker, endpoints and the admin HTTP server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = DataPaths(settings.data_path)
        self.paths.create()
        self.log = ServerLog(self.paths.logs)
        self.state = 0
        self.started = time.monotonic()
        self.uid = self._server_uid()
        self.container = _container_id()
        ports = BrokerPorts(settings.broker_port)
        self.broker = Broker(
            self.paths.broker, self.paths.logs / "standin-mosquitto.log", ports, self.log.log
        )
        self.registry = ConnectionRegistry(settings.conn_monitor_interval)
        self.subscriptions = SubscriptionRegistry()
        # The connection limit is known once server.cfg has been read (run()); nothing listens before.
        self.endpoints = EndpointManager(
            FrontServices(ports, self.log.log, ConnectionBudget(0), self.registry, self.subscriptions)
        )
        self.config: Configuration | None = None
        self.http: AdminServer | None = None
        self._finished = threading.Event()
        self._exit_action = "exit"

    def _server_uid(self) -> str:
        path = self.paths.config / "standin-server-uid"
        if not path.exists():
            path.write_text("".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8)))
        return path.read_text().strip()

    def running(self) -> bool:
        """Whether the server reports State 1 (the admin API refuses work before)."""
        return self.state == RUNNING

    def set_state(self, state: int) -> None:
        self.state = state
        self._dump_status()

    def _dump_status(self) -> None:
        """``data/config/imaserver.status``, which Amlen keeps for its container probes."""
        _, description = _STATE_TEXT.get(self.state, ("Initializing", "Initializing"))
        body = {
            "Server": {
                "Name": f"{socket.gethostname()}:{self.settings.admin_port}",
                "ContainerUID": self.container,
                "StateDescription": description,
                "ServerTime": _now(),
                "Version": VERSION,
                "ErrorCode": 0,
                "ErrorMessage": "",
            },
            "HighAvailability": {"Status": "Inactive", "Enabled": False},
        }
        (self.paths.config / "imaserver.status").write_text(json.dumps(body, indent=2) + "\n")

    def status_body(self, service: str | None) -> dict[str, Any]:
        """``GET /ima/v1/service/status[/<service>]`` (``ism_admin_getServerStatus``)."""
        status, description = _STATE_TEXT.get(self.state, ("Initializing", "Initializing"))
        uptime = int(time.monotonic() - self.started)
        days, rest = divmod(uptime, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, seconds = divmod(rest, 60)
        inactive = {"Status": "Inactive", "Enabled": False}
        sections: dict[str, Any] = {
            "Server": {
                "Name": f"{socket.gethostname()}:{self.settings.admin_port}",
                "UID": self.uid,
                "Status": status,
                "State": self.state,
                "StateDescription": description,
                "ServerTime": _now(),
                "UpTimeSeconds": uptime,
                "UpTimeDescription": f"{days} days {hours} hours {minutes} minutes {seconds} seconds",
                "Version": VERSION,
                "ErrorCode": 0,
                "ErrorMessage": "",
            },
            "Container": {"UUID": self.container},
            "HighAvailability": dict(inactive),
            "Cluster": dict(inactive),
            "Plugin": dict(inactive),
            "MQConnectivity": dict(inactive),
            "SNMP": dict(inactive),
        }
        if service is None:
            return {"Version": "v1", **sections}
        if service in ("Server", "imaserver"):
            return {"Version": "v1", "Server": sections["Server"], "Container": sections["Container"]}
        if service in sections and service != "Container":
            return {"Version": "v1", service: sections[service]}
        raise AmlenError(400, 115, service)

    # ---- life cycle ----------------------------------------------------------------------------------------

    def _read_static_config(self) -> dict[str, str]:
        """``server.cfg`` (copied from the install directory when the volume has none, as on a first start)."""
        target = self.paths.server_cfg
        if not target.exists() and self.settings.install_config.is_file():
            shutil.copyfile(self.settings.install_config, target)
        cfg = check_server_cfg(target)
        memory_mb = total_memory_mb({"IMATotalMemSizeMB": self.settings.memory_override}, cfg)
        limit = tcp_max_connections(memory_mb)
        self.endpoints.services.budget.limit = limit
        self.log.log(
            "CWLNA0920", "INFO", "Server", f"Memory: TotalMemSizeMB={memory_mb} TcpMaxConnections={limit}."
        )
        return cfg

    def _start_store(self, cfg: dict[str, str]) -> None:
        """Size and create the store's persistence files (sparse) on a first start."""
        self.paths.persist.mkdir(parents=True, exist_ok=True)
        layout = persist_file_size(cfg, self.paths.persist)
        created = create_store_files(layout)
        how = "Store.PersistFileSizeMB" if layout.configured else "filesystem size / 24"
        detail = f"{len(created)} files created" if created else "existing files kept"
        self.log.log(
            "CWLNA0921",
            "INFO",
            "Store",
            f"Store persistence files: Size={layout.file_size} bytes each ({how}), {detail}: {layout.directory}.",
        )

    def _fail_start(self, error: StartupError) -> None:
        self.log.start_message(f"The server could not start: {error}")
        self.log.log("CWLNA0112", "ERROR", "Server", f"The server could not start: {error}", console=True)
        self.shutdown()
        sys.exit(1)

    def run(self) -> None:
        """Start like Amlen, serve until stopped, then exit or restart in place."""
        self.log.start_message("Amlen stand-in (test infrastructure, not Eclipse Amlen) is starting.")
        self.log.log("CWLNA0900", "INFO", "Server", f"Start the Amlen stand-in ({VERSION}).")
        try:
            cfg = self._read_static_config()
        except StartupError as error:
            self._fail_start(error)
        self.config = Configuration(
            self.paths,
            self.endpoints,
            admin_port=self.settings.admin_port,
            admin_password_set=self.settings.admin_password_set,
            log=self.log.log,
            image_certificates=self.settings.install_certificates,
        )
        time.sleep(self.settings.listen_delay)  # the real admin port refuses connections for a while
        self.http = AdminServer(self, self.config)
        threading.Thread(target=self.http.serve_forever, name="admin-http", daemon=True).start()
        self.log.log("CWLNA6013", "INFO", "Admin", "Administration service is initialized: RunMode=0.")
        for phase in _START_PHASES:
            self.set_state(phase)
            if phase == STARTING_STORE:
                try:
                    self._start_store(cfg)
                except StartupError as error:
                    self._fail_start(error)
            time.sleep(self.settings.start_delay / len(_START_PHASES))
        self.broker.start()
        self.config.start_endpoints()
        self.set_state(RUNNING)
        # Amlen's monitoring thread builds the connection cache once the server runs (connections.py).
        threading.Thread(
            target=self.registry.run_cache, args=(lambda: self.endpoints.running().keys(), self._finished),
            name="connection-cache", daemon=True,
        ).start()
        self.log.log(
            "CWLNA0909", "INFO", "Server", "The server is running: State=Running (production).", console=True
        )
        while not self._finished.wait(0.5):
            pass
        self.shutdown()
        if self._exit_action == "restart":
            self.log.start_message("Amlen stand-in is restarting.")
            os.execv(sys.executable, [sys.executable, *sys.argv])

    def request_stop(self, action: str) -> None:
        """After the reply went out: report Stopping for a while, then stop (``exit``) or restart in place."""

        def later() -> None:
            time.sleep(0.2)
            self.set_state(STOPPING)
            self.log.log("CWLNA6005", "INFO", "Admin", "The Amlen stand-in server is stopping.", console=True)
            time.sleep(self.settings.stop_delay)
            self._exit_action = action
            self._finished.set()

        threading.Thread(target=later, name="stopper", daemon=True).start()

    def shutdown(self) -> None:
        """Close the admin port and the endpoints, stop the broker (idempotent)."""
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None
        self.endpoints.stop_all()
        self.broker.stop()
        self.log.log("CWLNA0906", "INFO", "Server", "The server is stopped.", console=True)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def main() -> None:
    """Run the stand-in until SIGTERM (``docker stop``) or a REST stop; restart in place on a REST restart."""
    app = StandIn(Settings.from_env(os.environ))

    def terminate(signum: int, _frame: object) -> None:
        raise _Terminated(signum)

    # PID 1 in a container ignores SIGTERM unless it installs a handler.
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    try:
        app.run()
    except _Terminated:
        app.shutdown()


if __name__ == "__main__":
    main()
