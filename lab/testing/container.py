"""A TLS-ready Amlen for other projects' tests: a testcontainers module built on the lab's own code.

`AmlenLabContainer` starts an Amlen image on random free host ports and, before `start()` returns, runs the
same sequence as `invoke up` minus the hosts file: the lab's certificates (`lab.pki`), readiness through the
status API (`lab.amlen.waits`), the guide's objects (`lab.amlen.configure.converge`) and a TLS handshake on both
endpoints
(`lab.amlen.configure.confirm_live`). Certificates are made in a thread while Docker starts the container.

No hosts entry is needed: clients dial `host:port` by address and verify the certificate against
`server_hostname` (testserver.getting.started). `ssl_context()` returns a context that does exactly that,
also for paho, which otherwise checks the name it dialled (paho #133/#734): the context substitutes the
lab's name in `wrap_socket` (see `lab.clients.tls.tls_context`), so hostname verification stays on while paho
connects to an IP address.

    with AmlenLabContainer("quay.io/amlen/amlen-server:main") as amlen:
        with amlen.connected_client(mutual=True) as client:
            client.publish("demo/topic", b"hello", qos=1).wait_for_publish()

The engine is found the way testcontainers finds it (DOCKER_HOST, TC_HOST, ~/.testcontainers.properties, the
docker context), else on the usual sockets as `invoke up` finds it (`lab.container.engine`). Ryuk, testcontainers'
reaper, is used on Docker when its image is present or can be pulled; when it cannot be had (no registry),
and always on Podman, it is switched off with a log line instead of failing the start, and `stop()` (the
context manager, the pytest fixtures) removes the container and, when this object made it, the lab
directory. What differs on Podman is in `lab.testing.engines`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import shutil
import ssl
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import docker.errors
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import get_docker_host
from testcontainers.core.exceptions import ContainerStartException

from lab.amlen.admin import AmlenClient
from lab.amlen.adminfiles import admin_files, ensure_admin_files
from lab.amlen.adminsec import AdminSource, admin_client, admin_ssl_context
from lab.amlen.configure import confirm_live, converge, desired_objects, endpoint_probes
from lab.amlen.logs import connection_log_findings
from lab.amlen.waits import wait_until_ready
from lab.container.engine import Engine, docker_error_text, identify
from lab.container.runtime import AMLEN_ADMIN_PORT, ensure_image, lab_labels, read_server_logs
from lab.container.volume import bound_store
from lab.errors import ContainerError
from lab.pki.leaves import ensure_certificates, issue_client_certs
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings
from lab.steps.admin import secure
from lab.testing.clients import LabClients
from lab.testing.engines import (
    Published,
    docker_unreachable,
    found_engine_url,
    memory_not_limited,
    podman_published,
    settle_reaper,
)

__all__ = ["AmlenLabContainer"]

logger = logging.getLogger(__name__)

# Marks containers started by this module, next to the lab's own amlen-lab.* labels and testcontainers'.
_ROLE_LABEL = "amlen-lab.role"


class AmlenLabContainer(LabClients, DockerContainer):
    """An Amlen container with the guide's TLS (`tls_port`) and mutual-TLS (`mtls_port`) endpoints ready.

    `image` defaults to the settings' image (LAB_IMAGE); `pki="intermediate"` makes the two-tier PKI
    (LAB_PKI): the server serves leaf + intermediate and clients present theirs. `settings` defaults to
    `load_settings()` with `dir=lab_dir`; without `lab_dir` a fresh temporary directory holds the
    certificates and is removed by `stop()`. A given lab directory is kept, and a CA already in it is
    reused. `ready_timeout` (seconds) defaults to LAB_READY_TIMEOUT. Raises ContainerError when Docker
    cannot be reached.
    """

    def __init__(
        self,
        image: str | None = None,
        *,
        settings: Settings | None = None,
        lab_dir: Path | str | None = None,
        ready_timeout: float | None = None,
        pki: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._owned_dir: Path | None = None
        if lab_dir is None and (settings is None or "dir" not in settings.given):
            # Named now, created by start(): an object that is never started leaves nothing on disk.
            lab_dir = Path(tempfile.gettempdir()) / f"amlen-lab-{secrets.token_hex(6)}"
            self._owned_dir = lab_dir
        if settings is None:
            settings = load_settings(dir=lab_dir, image=image, pki=pki)
        else:
            updates = {"dir": Path(lab_dir) if lab_dir is not None else None, "image": image, "pki": pki}
            settings = settings.replace(**updates)
        self.settings = settings
        self.ready_timeout = ready_timeout or settings.ready_timeout
        self.pki = pki_paths(settings)
        self.startup: dict[str, float] = {}
        self._engine: Engine | None = None
        self._published: Published | None = None
        if "docker_client_kw" not in kwargs and get_docker_host() is None:
            # testcontainers knows DOCKER_HOST, TC_HOST and the docker context; where none is set, the engine is
            # found on the usual sockets as `invoke up` finds it (rootless Podman's, for one).
            kwargs["docker_client_kw"] = {"environment": {"DOCKER_HOST": found_engine_url()}}
        try:
            super().__init__(settings.image, **kwargs)
        except docker.errors.DockerException as exc:
            raise docker_unreachable(exc) from exc
        self.with_exposed_ports(AMLEN_ADMIN_PORT, settings.tls_port, settings.mtls_port)
        # The caller's docker kwargs win; our labels are merged in, not replaced.
        labels = {**lab_labels(settings), _ROLE_LABEL: "testcontainers", **self._kwargs.get("labels", {})}
        self.with_kwargs(**{"mem_limit": settings.memory, **self._kwargs, "labels": labels})

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start Amlen and configure both endpoints; returns when a TLS handshake succeeds on each.

        Raises a LabError (ContainerError, CertError, AmlenError) after removing what it started.
        """
        marks = [("begin", time.perf_counter())]
        try:
            # Leaving this block waits for the certificate thread, so a failed start cleans up after it.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlen-lab-certs") as pool:
                client = self.get_docker_client().client
                self._engine = identify(client)
                settle_reaper(client, podman=self._engine.is_podman)
                self._drop_memory_limit_it_cannot_set()
                ensure_image(client, self.image, progress=logger.info)
                marks.append(("image", time.perf_counter()))
                if self._owned_dir is not None:
                    self._owned_dir.mkdir(mode=0o700)
                # The RSA keys are the slow part: made while Docker creates the container and Amlen boots.
                certificates = pool.submit(self._make_certificates)
                self._start_container()
                marks.append(("container", time.perf_counter()))
                certificates.result()
                marks.append(("certificates", time.perf_counter()))
                self._configure_amlen(marks)
        except BaseException:
            self.stop()
            raise
        self.startup = {name: end - begin for (_, begin), (name, end) in itertools.pairwise(marks)}
        logger.info("Amlen ready at %s (TLS %d, mutual TLS %d)", self.host, self.tls_port, self.mtls_port)
        return self

    def _drop_memory_limit_it_cannot_set(self) -> None:
        """Rootless Podman on cgroup v1 drops a memory limit: say so once, and start without it."""
        assert self._engine is not None
        if not self._engine.memory_limits and self._kwargs.get("mem_limit"):
            memory_not_limited(self._engine, self._kwargs.pop("mem_limit"))

    def _start_container(self) -> None:
        # testcontainers' start() creates and starts in one go; Amlen's store must be bounded in between
        # (Store.PersistFileSizeMB is read once, when the store is made at the first start), so the two halves
        # are done here with testcontainers' own client (which also picks the network when run in a container).
        client = self.get_docker_client()
        try:
            self._configure()
            self._container = client.create(self.image, command=self._command, environment=self.env,
                                            ports=self.ports, name=self._name, **self._kwargs)
            bound_store(self._container, self.settings.store_file_mb)
            client.start(self._container)
        except (docker.errors.DockerException, ContainerStartException) as exc:
            raise ContainerError(
                f"cannot start a container from {self.image}: {docker_error_text(exc)}",
                "check `docker info` and that the image runs (`docker run --rm IMAGE`)",
            ) from exc
        self._published = self._find_published()

    def _make_certificates(self) -> None:
        ensure_certificates(self.settings)
        if self.settings.admin_security != "open":
            ensure_admin_files(self.settings)

    def _admin_settings(self) -> Settings:
        """The settings as the admin client sees them: the admin API on its published host port."""
        return self.settings.replace(admin_port=self.admin_port)

    def _configure_amlen(self, marks: list[tuple[str, float]]) -> None:
        """Wait for Amlen, lock its admin plane (LAB_ADMIN_SECURITY, as `invoke up` does), apply the guide's
        objects, and prove both endpoints with a TLS handshake."""
        admin = self._admin_settings()
        source = AdminSource(admin, fresh=True)
        wait_until_ready(source, timeout=self.ready_timeout, container=self.get_wrapped_container())
        assert source.found is not None
        marks.append(("ready", time.perf_counter()))
        with secure(admin, source.found[0], source.found[1]) as amlen:
            marks.append(("admin locked", time.perf_counter()))
            converge(amlen, desired_objects(self.settings, self.pki), {})
            marks.append(("configured", time.perf_counter()))
            probes = endpoint_probes(self.settings, self.pki, self.host, self.tls_port, self.mtls_port)
            confirm_live(amlen, probes, diagnose=self._log_findings)
            marks.append(("live", time.perf_counter()))

    def _log_findings(self, endpoint: str) -> list[str]:
        """Why Amlen takes no connection on `endpoint`, from its own log (e.g. too little memory: CWLNA1119)."""
        return connection_log_findings(self.get_wrapped_container(), endpoint)

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        """Remove the container with its anonymous volumes, and the lab directory if this object made it.

        Safe to call twice, and after a failed start.
        """
        try:
            with contextlib.suppress(docker.errors.NotFound):
                super().stop(force=force, delete_volume=delete_volume)
        except docker.errors.DockerException as exc:
            raise ContainerError(
                f"cannot remove the Amlen container: {docker_error_text(exc)}", "see `docker ps -a`"
            ) from exc
        finally:
            self._container = None
            self._published = None
            if self._owned_dir is not None:
                shutil.rmtree(self._owned_dir, ignore_errors=True)

    def _find_published(self) -> Published:
        try:
            if self._engine is not None and self._engine.is_podman:
                ports = (AMLEN_ADMIN_PORT, self.settings.tls_port, self.settings.mtls_port)
                return podman_published(self.get_wrapped_container(), self._engine, ports)
            return Published(
                host=self.get_container_host_ip(),
                admin_port=int(self.get_exposed_port(AMLEN_ADMIN_PORT)),
                tls_port=int(self.get_exposed_port(self.settings.tls_port)),
                mtls_port=int(self.get_exposed_port(self.settings.mtls_port)),
            )
        except (docker.errors.DockerException, ConnectionError, TimeoutError, RuntimeError, KeyError) as exc:
            raise ContainerError(
                f"the container from {self.image} is not running with its ports published ({docker_error_text(exc)})",
                "does the image start? `docker run --rm IMAGE` shows why it exits",
                details=read_server_logs(self.get_wrapped_container()),
            ) from exc

    # -- where clients connect ---------------------------------------------------------------------------

    @property
    def _ports(self) -> Published:
        if self._published is None:
            raise ContainerError("the Amlen container is not started", "call start() or use a `with` block")
        return self._published

    @property
    def host(self) -> str:
        """The address clients dial (testcontainers' answer: localhost, a gateway, or DOCKER_HOST's host)."""
        return self._ports.host

    @property
    def admin_port(self) -> int:
        """Host port of Amlen's REST admin API (9089 inside)."""
        return self._ports.admin_port

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API: https://127.0.0.1:<port> (http:// with LAB_ADMIN_SECURITY=open). Reach it
        with `admin_client()`, or any HTTP client given `admin_ssl_context()` (or `ca_file` plus
        `admin_cert_files()`)."""
        return self._admin_settings().admin_base_url

    def admin_client(self) -> AmlenClient:
        """A ready admin API client (lab.amlen.admin.AmlenClient) on one keep-alive TLS session with the lab.admin
        certificate; close it (or use `with`)."""
        return admin_client(self._admin_settings())

    def admin_ssl_context(self) -> ssl.SSLContext | None:
        """An SSLContext that verifies the admin certificate against the lab CA and presents lab.admin (None
        with LAB_ADMIN_SECURITY=open)."""
        return admin_ssl_context(self._admin_settings())

    def admin_cert_files(self) -> tuple[Path, Path]:
        """(certificate, key) of the lab.admin client certificate, for curl or requests' `cert=`."""
        files = admin_files(self.settings)
        return files.presented_cert, files.client_key

    @property
    def tls_port(self) -> int:
        """Host port of the TLS endpoint (server certificate only; settings.tls_port inside)."""
        return self._ports.tls_port

    @property
    def mtls_port(self) -> int:
        """Host port of the mutual-TLS endpoint (a client certificate from the lab CA is required)."""
        return self._ports.mtls_port

    @property
    def server_hostname(self) -> str:
        """The name in the server certificate: verify against it (and send it as SNI), whatever you dial."""
        return self.settings.hostname

    @property
    def ca_file(self) -> Path:
        """The lab CA (`myCA.pem`) that signed the server and client certificates."""
        return self.pki.ca_cert

    @property
    def client_name(self) -> str:
        """The default client's name (first of LAB_CLIENT_NAMES): the CN of `client_cert`."""
        return self.settings.client_names[0]

    @property
    def client_key(self) -> Path:
        """The default client's private key (unencrypted PEM)."""
        return self.pki.client(self.client_name)[0]

    @property
    def client_cert(self) -> Path:
        """What the default client presents: its certificate from the lab CA (with the intermediate after it,
        as `<name>.chain.pem`, in the two-tier PKI)."""
        return self.pki.client_presented(self.client_name)[1]

    def issue_client_cert(self, name: str) -> tuple[Path, Path]:
        """Issue (or reuse) a client certificate with CN `name` from the lab CA; returns (key, what it presents)."""
        issue_client_certs(self.settings, [name])
        return self.pki.client_presented(name)

    # -- clients -----------------------------------------------------------------------------------------
