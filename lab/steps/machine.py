"""The machine: preflight checks, the labelled container and its volume, and Amlen's readiness."""

from __future__ import annotations

import dataclasses
import os
import time

import docker

from lab.amlen.adminsec import admin_source
from lab.amlen.waits import wait_until_ready
from lab.container import runtime
from lab.elevate import needs_root, prepare_sudo
from lab.errors import ContainerError, HostsError
from lab.hosts import HostsState, hosts_status, manual_instructions
from lab.steps.context import LabContext

__all__ = ["ContainerStep", "PreflightStep", "ReadyStep", "container_spec", "exposed_address", "memory_notice"]


class PreflightStep:
    """Your own certificate usable (LAB_SERVER_CERT/KEY), a local engine reachable (named: which, what version,
    which socket; one on another machine stops here, before anything is made: `lab.container.engine.local_only`) and the
    host ports free (or held by this lab's container)."""

    name = "preflight"

    def check(self, ctx: LabContext) -> bool:
        return False

    def apply(self, ctx: LabContext) -> str:
        s = ctx.settings
        if s.own_server:
            from lab.pki.own import load_own_server

            # The user's files are judged before any container or volume exists (the certificates step reads
            # them again when it writes the chain): an EC key or a wrong name costs nothing to refuse here.
            load_own_server(s)
        ours = runtime.find_lab_container(ctx.docker, s)
        held_by_us = set()
        if ours is not None and ours.status == "running":
            held_by_us = {port for _, port in runtime.published_ports(ours).values()}
        for key, port in (("LAB_ADMIN_PORT", s.admin_port), ("LAB_TLS_PORT", s.tls_port),
                          ("LAB_MTLS_PORT", s.mtls_port), ("LAB_WORKSHOP_PORT", s.workshop_port)):
            if port not in held_by_us and not runtime.port_is_free(port):
                raise ContainerError(
                    f"port {port} on 127.0.0.1 is already in use by another process",
                    f"stop it (`ss -ltnp 'sport = :{port}'` shows who), or set {key} to a free port",
                )
        _hosts_preflight(ctx)
        return (f"{ctx.engine.describe()}; ports {s.admin_port}, {s.tls_port}, {s.mtls_port}, {s.workshop_port} "
                "available")

    def undo(self, ctx: LabContext) -> str:
        return ""


def _hosts_preflight(ctx: LabContext) -> None:
    """Fail before anything is created when the hosts step could not succeed later."""
    if not ctx.options.hosts:
        return
    current = hosts_status(ctx.settings)
    if current.state in (HostsState.OURS_PRESENT, HostsState.USER_PROVIDES):
        return
    if current.state is HostsState.CONFLICT and not ctx.options.force_hosts:
        raise HostsError(current.message, "fix or remove that line, or run `invoke up --force-hosts`")
    path = ctx.settings.hosts_file
    if needs_root(ctx.settings):
        ctx.notice(f"{path} is not writable by you, and the lab needs one line in it: that step alone runs "
                   "through sudo")
        prepare_sudo(ctx.settings)
        return
    if path.exists() and not os.access(path, os.W_OK):
        raise HostsError(
            f"{path} is not writable by you, and the lab needs one line in it",
            f"{manual_instructions(ctx.settings, force=ctx.options.force_hosts)}; then `invoke up` again "
            "(or `invoke up --no-hosts`)",
        )


class ContainerStep:
    """The labelled Amlen container and its data volume, ports on 127.0.0.1 only."""

    name = "container"

    def check(self, ctx: LabContext) -> bool:
        found = runtime.find_lab_container(ctx.docker, ctx.settings)
        if (found is not None and found.status == "running" and runtime.image_matches(found, ctx.settings.image)
                and runtime.spec_matches(found, container_spec(ctx))):
            ctx.container = found
            return True
        return False

    def apply(self, ctx: LabContext) -> str:
        spec = container_spec(ctx)
        if not spec.memory:
            ctx.notice(memory_notice(ctx))
        pulled = runtime.ensure_image(ctx.docker, spec.image, progress=ctx.progress)
        existing_volume = _volume_exists(ctx.docker, spec.volume)
        container, created = runtime.start_container(ctx.docker, spec)
        ctx.container = container
        ctx.fresh_server = not existing_volume
        if created:
            ctx.ledger.record("container", {"run": ctx.run_id, "id": container.id, "name": container.name})
        if not existing_volume:
            ctx.ledger.record("volume", {"run": ctx.run_id, "name": spec.volume})
        verb = "created" if created else "started"
        return f"{verb} {container.name} from {spec.image}" + (" (pulled)" if pulled else "")

    def undo(self, ctx: LabContext) -> str:
        if ctx.options.keep_container and ctx.undo_all:
            return "kept the container (--keep-container)"
        entry = ctx.ledger.entries.get("container")
        done = []
        if ctx.in_scope(entry) or ctx.undo_all:
            try:
                client = ctx.docker
            except ContainerError:
                if ctx.undo_all and not entry:
                    return "Docker is not reachable; nothing recorded to remove"
                raise
            container = runtime.find_lab_container(client, ctx.settings)
            volume = ctx.ledger.entries.get("volume") or {}
            volume_name = volume.get("name") or runtime.ContainerSpec.from_settings(ctx.settings).volume
            volume_goes = ctx.in_scope(volume) or ctx.undo_all
            if container is not None:
                runtime.remove_container(container, keep_data=not volume_goes)
                done.append(f"removed container {container.name}")
            ctx.ledger.fingerprints.clear()  # the uploaded files went with the container's volume
            ctx.ledger.forget("container")
            if volume_goes and runtime.remove_volume(client, volume_name, ctx.settings):
                done.append(f"removed volume {volume_name}")
            ctx.ledger.forget("volume")
        return "; ".join(done) or "no container to remove"


def container_spec(ctx: LabContext) -> runtime.ContainerSpec:
    """The container this lab wants: the settings, plus where a workshop port is exposed (the ledger says), and
    no memory limit where the engine cannot set one (it would drop it anyway, and every `up` would see a change)."""
    spec = runtime.ContainerSpec.from_settings(ctx.settings, workshop_address=exposed_address(ctx) or "127.0.0.1")
    return spec if ctx.engine.memory_limits else dataclasses.replace(spec, memory="")


def memory_notice(ctx: LabContext) -> str:
    """The one line for an engine that cannot limit memory: Amlen sees the host's, and the lab goes on."""
    from lab.container.volume import format_bytes

    host = ctx.engine.host_memory
    return (f"{ctx.engine.name} {'rootless ' if ctx.engine.rootless else ''}cannot limit a container's memory here "
            f"(no memory cgroup controller for this user): LAB_MEMORY={ctx.settings.memory} is not applied and "
            f"Amlen sizes itself from the host's {format_bytes(host) if host else 'memory'} "
            "(hint: on cgroup v2 with the memory controller delegated to your user, as systemd does, it applies)")


def exposed_address(ctx: LabContext) -> str | None:
    """Where `invoke workshop --expose` published the workshop port (the ledger's `workshop` entry), if anywhere."""
    return (ctx.ledger.entries.get("workshop") or {}).get("expose") or None


def _volume_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        return False
    return True


class ReadyStep:
    """Amlen's status API reports State 1 (Running) with no error."""

    name = "readiness"

    def check(self, ctx: LabContext) -> bool:
        return False

    def apply(self, ctx: LabContext) -> str:
        started = time.monotonic()
        source = admin_source(ctx)
        status = wait_until_ready(
            source, timeout=ctx.settings.ready_timeout, container=ctx.container, progress=ctx.progress
        )
        source.settle(ctx)
        version = (status.get("Server") or {}).get("Version", "?")
        return f"Amlen {version} running (waited {time.monotonic() - started:.1f} s)"

    def undo(self, ctx: LabContext) -> str:
        return ""
