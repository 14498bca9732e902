"""Which container engine the lab talks to, where it is, and what it can do.

The lab speaks the Docker API, and many engines serve it: Docker, rootful and rootless Podman
(`podman system service`), Docker Desktop, Colima, Rancher Desktop, Podman Machine. They sit on different
sockets and differ where the lab cares: Podman qualifies local images as `localhost/...`, rootless Podman on
cgroup v1 cannot limit memory (the limit is dropped and Amlen sizes itself from the host's memory), and an
engine on another machine would publish the lab's ports there, not on this machine's 127.0.0.1.

The engine is found as the docker CLI finds it (DOCKER_HOST, then the current docker context), then on the
usual sockets in order; the first that answers is used. Every answer names it: "Podman 4.3.1, rootless,
unix:///run/user/1000/podman/podman.sock".
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
import platform
import socket
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.constants
import docker.errors

from lab.errors import ContainerError

__all__ = [
    "Endpoint",
    "Engine",
    "candidate_sockets",
    "chosen_endpoint",
    "connect",
    "context_host",
    "docker_error_text",
    "identify",
    "is_local",
    "local_only",
]

# A socket that exists but does not answer must not hold up the search for the next one.
_PROBE_TIMEOUT = 3
# The API version a client is made with until the engine's ping names its own (every engine answers /_ping).
_FLOOR_API = "1.24"


@dataclass(frozen=True)
class Endpoint:
    """An engine's address (`unix:///...`, `tcp://...`, `ssh://...`, `npipe://...`) and why it was chosen."""

    url: str
    source: str  # "DOCKER_HOST", "docker context NAME", "found"


def context_host(env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(context name, endpoint) of the current docker context (`docker context use`), as the CLI reads it.

    The SDK's `from_env` only reads DOCKER_HOST; Podman, Colima and Docker Desktop users often rely on a context.
    """
    env = dict(os.environ) if env is None else env
    config_dir = Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker")
    name = env.get("DOCKER_CONTEXT")
    if not name:
        try:
            name = json.loads((config_dir / "config.json").read_text()).get("currentContext")
        except (OSError, ValueError):
            return None
    if not name or name == "default":
        return None
    meta = config_dir / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    try:
        host = json.loads(meta.read_text())["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (name, host) if isinstance(host, str) and host else None


def candidate_sockets(env: dict[str, str] | None = None, *, home: Path | None = None,
                      system: str | None = None) -> list[str]:
    """The sockets where engines usually listen, in the order they are tried (after DOCKER_HOST and a context).

    Linux: Docker's, rootless Podman's (`$XDG_RUNTIME_DIR/podman/podman.sock`), rootful Podman's, then rootless
    Docker's and Docker Desktop's. macOS: Docker Desktop's, Colima's, Rancher Desktop's and Podman Machine's.
    """
    env = dict(os.environ) if env is None else env
    home = home or Path.home()
    system = system or platform.system()
    runtime_dir = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    found = ["/var/run/docker.sock"]
    if system == "Darwin":
        tmp = env.get("TMPDIR") or tempfile.gettempdir()
        machine = home / ".local/share/containers/podman/machine"
        found += [str(home / ".docker/run/docker.sock"),  # Docker Desktop 4.13 and later
                  str(home / ".colima/default/docker.sock"), str(home / ".colima/docker.sock"),  # Colima
                  str(home / ".rd/docker.sock"),  # Rancher Desktop
                  str(Path(tmp) / "podman/podman-machine-default-api.sock"),  # Podman Machine 5
                  str(machine / "podman-machine-default/podman.sock"), str(machine / "qemu/podman.sock")]  # 4
    else:
        found += [f"{runtime_dir}/podman/podman.sock", "/run/podman/podman.sock",
                  f"{runtime_dir}/docker.sock",  # rootless Docker
                  str(home / ".docker/desktop/docker.sock")]  # Docker Desktop for Linux
    return [f"unix://{path}" for path in dict.fromkeys(found)]


def chosen_endpoint(env: dict[str, str] | None = None) -> Endpoint | None:
    """The engine the user chose (DOCKER_HOST, else the current docker context); None: search the sockets."""
    env = dict(os.environ) if env is None else env
    if env.get("DOCKER_HOST"):
        return Endpoint(env["DOCKER_HOST"], "DOCKER_HOST")
    found = context_host(env)
    if found is not None:
        return Endpoint(found[1], f"docker context {found[0]}")
    return None


def is_local(url: str) -> bool:
    """Is the engine at `url` on this machine (a unix socket, a named pipe, or TCP to one of its addresses)?"""
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.scheme in ("unix", "npipe", "http+unix"):
        return True
    if parts.scheme not in ("tcp", "http", "https"):
        return False  # ssh:// and anything else runs the engine somewhere else
    host = parts.hostname or ""
    if host in ("", "localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == socket.gethostname()
    return address.is_loopback or str(address) in _own_addresses()


@functools.cache
def _own_addresses() -> frozenset[str]:
    try:
        return frozenset(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        return frozenset()


def local_only(endpoint: Endpoint) -> None:
    """Raise, before anything is created, when the chosen engine is not on this machine."""
    if not is_local(endpoint.url):
        raise ContainerError(
            f"the engine at {endpoint.url} ({endpoint.source}) is not on this machine: the lab publishes Amlen's "
            "ports on 127.0.0.1 and checks them there, so it needs a local engine",
            "use a local engine (unset DOCKER_HOST, or `docker context use default`), or run Amlen there and "
            "`invoke configure --admin-url https://HOST:9089` (with LAB_ADMIN_CA and LAB_ADMIN_CERT/KEY or "
            "LAB_ADMIN_NETRC)",
        )


@dataclass
class Engine:
    """A connected engine: its client, where it is, and what it is.

    Name and version come from the `Server` header of `/_ping` (`Libpod/4.3.1`, `Docker/20.10.24`): Podman's
    `/version` and `/info` take a quarter to half a second each (it asks conmon and the OCI runtime every
    time), so they are asked only when a fact needs them.
    """

    client: docker.DockerClient
    endpoint: Endpoint
    server: str  # "Libpod/4.3.1 (linux)", "Docker/20.10.24+dfsg1 (linux)"
    _info: dict[str, Any] | None = field(default=None, repr=False)
    _libpod: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Where the engine listens, as DOCKER_HOST would name it."""
        return self.endpoint.url

    @property
    def is_podman(self) -> bool:
        """Podman's Docker-compatible service (`podman system service`)."""
        return self.server.startswith("Libpod/")

    @property
    def version(self) -> str:
        """The engine's own version (Podman's, not the API's)."""
        product = self.server.split(" ", 1)[0]
        if "/" in product:
            return product.split("/", 1)[1]
        return str(self.client.version().get("Version") or "?")

    @property
    def info(self) -> dict[str, Any]:
        """`docker info`, fetched on first use."""
        if self._info is None:
            self._info = dict(self.client.info())
        return self._info

    @property
    def podman_host(self) -> dict[str, Any]:
        """Podman's own `podman info` host section (libpod API): rootless, cgroup controllers. {} on Docker."""
        if self._libpod is None:
            self._libpod = {}
            if self.is_podman:
                api: Any = self.client.api  # the SDK's own URL and result helpers, for an endpoint it lacks
                try:
                    self._libpod = dict(api._result(api._get(api._url("/libpod/info")), json=True).get("host") or {})
                except (docker.errors.DockerException, ValueError, AttributeError):
                    self._libpod = {}
        return self._libpod

    @property
    def name(self) -> str:
        """"Podman", "Docker", or the desktop product that runs Docker (Docker Desktop, Colima, Rancher Desktop)."""
        if self.is_podman:
            return "Podman"
        # Docker Desktop says so in OperatingSystem; Colima's and Rancher Desktop's VMs in their name and socket.
        seen = " ".join((self.url, str(self.info.get("OperatingSystem") or ""), str(self.info.get("Name") or "")))
        for product, marks in (("Docker Desktop", ("docker desktop",)), ("Rancher Desktop", ("rancher", "/.rd/")),
                               ("Colima", ("colima",))):
            if any(mark in seen.lower() for mark in marks):
                return product
        return "Docker"

    @property
    def rootless(self) -> bool:
        """Does the engine run as an ordinary user (its containers' root is a sub-uid)?"""
        if not self.is_podman:
            return any("rootless" in str(option) for option in self.info.get("SecurityOptions") or [])
        owner = _socket_owner(self.url)
        if owner is not None:  # Podman's socket belongs to the user it runs as: no libpod round trip needed
            return owner != 0
        return bool((self.podman_host.get("security") or {}).get("rootless"))

    @property
    def memory_limits(self) -> bool:
        """Can the engine limit a container's memory? Rootless Podman without a delegated memory controller
        (cgroup v1, or v2 without delegation) drops the limit: Amlen then sizes itself from the host's memory.
        (Podman's Docker-compatible `/info` says MemoryLimit true there all the same: its own info is asked.)"""
        if self.is_podman:
            return not self.rootless or "memory" in (self.podman_host.get("cgroupControllers") or [])
        return bool(self.info.get("MemoryLimit", True))

    @property
    def host_memory(self) -> int:
        """The memory the engine's machine has, in bytes (what Amlen sees without a limit)."""
        if self.is_podman and self.podman_host.get("memTotal"):
            return int(self.podman_host["memTotal"])
        return int(self.info.get("MemTotal") or 0)

    def describe(self) -> str:
        """One line: "Podman 4.3.1, rootless, unix:///run/user/1000/podman/podman.sock"."""
        return f"{self.name} {self.version}, {'rootless' if self.rootless else 'rootful'}, {self.url}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for `status --json` and `doctor --json`."""
        return {"name": self.name, "version": self.version, "rootless": self.rootless, "url": self.url,
                "source": self.endpoint.source, "memory_limits": self.memory_limits}


def connect(env: dict[str, str] | None = None, *, candidates: list[str] | None = None) -> Engine:
    """The engine the lab uses: DOCKER_HOST, else the current context, else the first usual socket that answers.

    Raises ContainerError with one line naming every socket tried when none answers, and, before dialling it,
    when the chosen engine is not on this machine (`local_only`).
    """
    chosen = chosen_endpoint(env)
    if chosen is not None:
        local_only(chosen)
        engine, reason = _try(chosen)
        if engine is None:
            raise ContainerError(f"Docker is not reachable at {chosen.url} ({chosen.source}: {reason})",
                                 _HINT + "; unset DOCKER_HOST (or `docker context use default`) to search the "
                                 "usual sockets")
        return engine
    tried = []
    for url in candidates if candidates is not None else candidate_sockets(env):
        path = url.removeprefix("unix://")
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                tried.append(f"{path} (not a socket)")
                continue
        except FileNotFoundError:
            tried.append(f"{path} (absent)")
            continue
        except OSError as exc:
            tried.append(f"{path} ({exc.strerror or exc})")
            continue
        reason = _dial(path)
        if reason:
            tried.append(f"{path} ({reason})")
            continue
        engine, reason = _try(Endpoint(url, "found"))
        if engine is not None:
            return engine
        tried.append(f"{path} ({reason})")
    raise ContainerError("Docker is not reachable: tried " + ", ".join(tried), _HINT)


_HINT = ("start Docker or Podman (`podman system service --time=0 &` serves Podman's Docker socket), "
         "or set DOCKER_HOST to its socket; `docker info` must work")


def _dial(path: str) -> str:
    """Why the socket at `path` takes no connection ("" when it does): a left-over socket file of an engine that
    stopped refuses, one of another user's engine is "permission denied"."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_TIMEOUT)
        try:
            probe.connect(path)
        except OSError as exc:
            return _reason(exc)
    return ""


def _try(endpoint: Endpoint) -> tuple[Engine | None, str]:
    """Connect to `endpoint` and ping it; (None, why) when it does not answer.

    The client is made with a fixed API version and takes the engine's own from the ping's `Api-Version`
    header: left to negotiate, the SDK asks `/version`, which costs Podman half a second on every command.
    """
    try:
        if endpoint.source == "DOCKER_HOST":  # from_env also reads DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
            client = docker.from_env(timeout=_PROBE_TIMEOUT, version=_FLOOR_API)
        else:
            client = docker.DockerClient(base_url=endpoint.url, timeout=_PROBE_TIMEOUT, version=_FLOOR_API)
    except docker.errors.DockerException as exc:
        return None, _reason(exc)
    try:
        engine = identify(client, endpoint)
    except (docker.errors.DockerException, OSError) as exc:  # requests' errors are OSErrors
        client.close()
        return None, _reason(exc)
    client.api.timeout = docker.constants.DEFAULT_TIMEOUT_SECONDS
    return engine, ""


def identify(client: docker.DockerClient, endpoint: Endpoint | None = None) -> Engine:
    """The engine behind a connected `client` (one `/_ping`: its `Server` header names the engine)."""
    api: Any = client.api  # `ping()` would drop the headers
    answer = api.get(f"{api.base_url}/_ping", timeout=_PROBE_TIMEOUT)
    answer.raise_for_status()
    if api._version == _FLOOR_API and answer.headers.get("Api-Version"):  # made by _try: speak the engine's API
        api._version = str(answer.headers["Api-Version"])
    if endpoint is None:
        url = str(api.base_url)
        url = "unix://" + str(getattr(api, "_custom_adapter", None) and api._custom_adapter.socket_path) \
            if url.startswith("http+docker://") else url
        endpoint = Endpoint(url, "client")
    return Engine(client, endpoint, str(answer.headers.get("Server") or ""))


def _socket_owner(url: str) -> int | None:
    """The uid owning a local unix socket (Linux), None for anything else."""
    if not url.startswith("unix://") or platform.system() != "Linux":
        return None
    try:
        return os.stat(url.removeprefix("unix://")).st_uid
    except OSError:
        return None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, words in (("Permission denied", "permission denied"), ("No such file", "absent"),
                          ("Connection refused", "refused"), ("timed out", "no answer"),
                          ("paramiko", "ssh needs paramiko")):
        if needle in text:
            return words
    return text.splitlines()[0][:120] if text else type(exc).__name__


def docker_error_text(exc: BaseException) -> str:
    """The first line of a docker SDK error (its server explanation when there is one), for one-line errors."""
    explanation: Any = getattr(exc, "explanation", None)
    text = str(explanation or exc) or type(exc).__name__
    return text.splitlines()[0][:300]
