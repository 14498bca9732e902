"""The lab's steps. Each knows how to check itself ("already done?"), apply itself and undo itself.

A step records what it creates in the ledger, tagged with the run that created it, before it moves on.
`undo` touches only ledger entries that the context's scope allows: a failed `up` undoes its own run,
`down` undoes every run. Every `undo` succeeds when there is nothing left to undo.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import docker
from docker.models.containers import Container

from lab import runtime
from lab.amlen import AmlenClient, AmlenObject, explain_server_log
from lab.certs import Action, FileResult, check_certificates, ensure_certificates, pki_paths
from lab.configure import (
    ObjectAction,
    ObjectResult,
    confirm_live,
    converge,
    desired_objects,
    endpoint_probes,
    fingerprint,
    teardown,
)
from lab.elevate import hosts_as_root, needs_root, prepare_sudo
from lab.errors import CheckError, ContainerError, HostsError
from lab.hosts import HostsState, add_hosts_entry, hosts_status, manual_instructions, remove_hosts_entry
from lab.ledger import Ledger
from lab.settings import Settings
from lab.tls import handshake, tls_context
from lab.waits import wait_until_ready

__all__ = [
    "AmlenConfigStep",
    "CertificatesStep",
    "ContainerStep",
    "EndpointsLiveStep",
    "HostsStep",
    "LabContext",
    "Options",
    "PreflightStep",
    "ReadyStep",
    "Step",
    "VerifyStep",
]


@dataclass(frozen=True)
class Options:
    """The user's choices for one `up`/`down`/`configure`."""

    hosts: bool = True
    force_hosts: bool = False
    verify: bool = True
    keep_on_failure: bool = False
    keep_container: bool = False
    purge: bool = False


@dataclass
class LabContext:
    """What the steps share during one run: settings, ledger, options, and lazily made clients."""

    settings: Settings
    ledger: Ledger
    run_id: str
    options: Options = field(default_factory=Options)
    progress: Callable[[str], None] = lambda _: None
    # A line the user must see now (the spinner stops): e.g. why sudo is about to ask for a password.
    notice: Callable[[str], None] = lambda _: None
    # Which ledger entries an undo may remove: this run's (rollback) or all (down).
    undo_all: bool = False
    container: Container | None = None
    # The container's volume was made by this run: Amlen holds its defaults only, so nothing need be read back.
    fresh_server: bool = False
    _docker: docker.DockerClient | None = None
    _amlen: AmlenClient | None = None

    @property
    def docker(self) -> docker.DockerClient:
        """The docker client, connected on first use."""
        if self._docker is None:
            self._docker = runtime.docker_client()
        return self._docker

    @property
    def amlen(self) -> AmlenClient:
        """The admin API client for this lab's Amlen."""
        if self._amlen is None:
            self._amlen = AmlenClient(self.settings.admin_base_url)
        return self._amlen

    def in_scope(self, entry: Any) -> bool:
        """May an undo in this run remove what `entry` records?"""
        return bool(entry) and (self.undo_all or entry.get("run") == self.run_id)

    def close(self) -> None:
        """Release the clients."""
        if self._amlen is not None:
            self._amlen.close()
        if self._docker is not None:
            self._docker.close()


class Step(Protocol):
    """One reversible piece of the lab."""

    name: str

    def check(self, ctx: LabContext) -> bool | str:
        """True (or a reason, in words) when `apply` can be skipped: already done, or not wanted."""
        ...

    def apply(self, ctx: LabContext) -> str:
        """Do the step; returns one line saying what was done."""
        ...

    def undo(self, ctx: LabContext) -> str:
        """Undo what the ledger (within scope) says this step created; returns one line."""
        ...


class PreflightStep:
    """Docker reachable and the host ports free (or already held by this lab's container)."""

    name = "preflight"

    def check(self, ctx: LabContext) -> bool:
        return False

    def apply(self, ctx: LabContext) -> str:
        s = ctx.settings
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
        return f"Docker reachable; ports {s.admin_port}, {s.tls_port}, {s.mtls_port}, {s.workshop_port} available"

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


class CertificatesStep:
    """The toy CA, server and client certificates (reused when valid), checked against Amlen's rules."""

    name = "certificates"

    def check(self, ctx: LabContext) -> bool:
        return False

    def apply(self, ctx: LabContext) -> str:
        # An exposed workshop port is reached by address too: the server certificate names it (IP SAN).
        exposed = _exposed_address(ctx)
        results = ensure_certificates(ctx.settings, server_addresses=[exposed] if exposed else [])
        created = [str(r.path) for r in results if r.action is Action.CREATED]
        if created:
            ctx.ledger.append("files", {"run": ctx.run_id, "paths": created})
        if _will_upload(ctx, results):
            check_certificates(ctx.settings)  # Amlen's rules, before anything new reaches Amlen
        counts = {action: sum(1 for r in results if r.action is action) for action in Action}
        summary = ", ".join(f"{n} {action.value}" for action, n in counts.items() if n)
        return f"{summary} in {pki_paths(ctx.settings).dir}"

    def undo(self, ctx: LabContext) -> str:
        # `down` keeps certificates unless --purge: the CA may be trusted by browsers and other machines.
        if ctx.undo_all and not ctx.options.purge:
            ctx.ledger.forget("files")  # kept on purpose: nothing left for a later `down` to undo
            return "kept certificates (the CA is precious; `invoke down --purge` removes them)"
        removed = 0
        for entry in list(ctx.ledger.entries.get("files", [])):
            if ctx.in_scope(entry):
                for path in entry["paths"]:
                    with contextlib.suppress(FileNotFoundError):
                        Path(path).unlink()
                        removed += 1
                ctx.ledger.entries["files"].remove(entry)
                ctx.ledger.save()
        trusted = []
        if ctx.undo_all:  # --purge: the CA leaves the browsers' trust stores too, and the PKI directory goes.
            from lab.trust import uninstall_ca

            trusted = uninstall_ca(ctx.settings)
            pki = pki_paths(ctx.settings)
            for path in sorted(pki.dir.glob("*")) if pki.dir.exists() else []:
                path.unlink()
                removed += 1
            for path in (pki.passphrase_file, *sorted((ctx.settings.lab_dir / "verify").glob("*"))):
                if path.exists():
                    path.unlink()
                    removed += 1
            with contextlib.suppress(OSError):
                (ctx.settings.lab_dir / "verify").rmdir()  # verification's throwaway foreign CA
            with contextlib.suppress(OSError):
                pki.dir.rmdir()
        untrusted = f"; removed the CA from {len(trusted)} NSS databases" if trusted else ""
        done = f"removed {removed} certificate files" if removed else "no certificate files to remove"
        return done + untrusted


def _will_upload(ctx: LabContext, results: list[FileResult]) -> bool:
    """Is a certificate new, or different from what Amlen was last given? (Then it is linted first.)"""
    if ctx.fresh_server or any(result.action is not Action.REUSED for result in results):
        return True
    pki = pki_paths(ctx.settings)
    uploads = (pki.server_cert, pki.server_key, pki.ca_cert)
    return any(ctx.ledger.fingerprints.get(path.name) != fingerprint(path.read_bytes()) for path in uploads)


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
    """The container this lab wants: the settings, plus where a workshop port is exposed (the ledger says)."""
    return runtime.ContainerSpec.from_settings(ctx.settings, workshop_address=_exposed_address(ctx) or "127.0.0.1")


def _exposed_address(ctx: LabContext) -> str | None:
    """Where `invoke workshop --expose` published the workshop port (the ledger's `workshop` entry), if anywhere."""
    return (ctx.ledger.entries.get("workshop") or {}).get("expose") or None


def _der(path: Path) -> bytes:
    """A PEM certificate file's DER bytes, to compare with what an endpoint presents."""
    return ssl.PEM_cert_to_DER_cert(path.read_text())


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
        status = wait_until_ready(
            ctx.amlen, timeout=ctx.settings.ready_timeout, container=ctx.container, progress=ctx.progress
        )
        version = (status.get("Server") or {}).get("Version", "?")
        return f"Amlen {version} running (waited {time.monotonic() - started:.1f} s)"

    def undo(self, ctx: LabContext) -> str:
        return ""


class AmlenConfigStep:
    """The guide's certificate profile, security profiles, trusted CA and endpoints, converged."""

    name = "amlen configuration"

    def check(self, ctx: LabContext) -> bool:
        return False

    def apply(self, ctx: LabContext) -> str:
        settings, pki = ctx.settings, pki_paths(ctx.settings)
        objects = desired_objects(settings, pki)
        if ctx.fresh_server:
            ctx.ledger.fingerprints.clear()  # a new volume holds none of the lab's files
        else:
            # Amlen shows a certificate profile's file names and expiry, not the certificate: ask the endpoint.
            seen = handshake(settings.host_ip, settings.tls_port, context=tls_context(ca_file=None),
                             server_name=settings.hostname, timeout=2)
            if seen.chain and seen.chain[0] != _der(pki.server_cert):
                # The endpoint presents another certificate than the lab's: whatever the ledger remembers
                # uploading is no longer what Amlen holds, so upload it again.
                ctx.ledger.fingerprints.pop(pki.server_cert.name, None)
        amlen_entry = ctx.ledger.entries.setdefault(
            "amlen", {"url": ctx.settings.admin_base_url, "objects": []}
        )

        def record(result: ObjectResult) -> None:
            if result.action is ObjectAction.CREATED:
                amlen_entry["objects"].append(
                    {"run": ctx.run_id, "type": result.object.type, "name": result.object.name}
                )
            ctx.ledger.save()

        results = converge(ctx.amlen, objects, ctx.ledger.fingerprints, progress=ctx.progress, on_result=record,
                           fresh=ctx.fresh_server)
        changed = [r.object.label for r in results if r.action is not ObjectAction.UNCHANGED]
        return f"applied {', '.join(changed)}" if changed else f"all {len(results)} objects already match"

    def undo(self, ctx: LabContext) -> str:
        entry = ctx.ledger.entries.get("amlen") or {}
        recorded = [o for o in entry.get("objects", []) if ctx.in_scope(o)]
        if not recorded:
            if entry and not entry.get("objects"):
                ctx.ledger.forget("amlen")
            return "no Amlen objects to delete"
        container_goes = ctx.in_scope(ctx.ledger.entries.get("container")) and not ctx.options.keep_container
        if container_goes:
            # The objects live in the container's volume, which is removed next: no need to ask Amlen.
            deleted = [f"{o['type']} {o['name']}" for o in recorded]
        else:
            objects = [AmlenObject(o["type"], o["name"], {}) for o in recorded]
            with AmlenClient(entry.get("url") or ctx.settings.admin_base_url) as amlen:
                deleted = teardown(amlen, objects)
        entry["objects"] = [o for o in entry.get("objects", []) if o not in recorded]
        if not entry["objects"]:
            ctx.ledger.fingerprints.clear()  # Amlen holds none of the lab's files any more
            ctx.ledger.forget("amlen")
        ctx.ledger.save()
        how = "with the container" if container_goes else "through the admin API"
        return f"deleted {len(deleted)} Amlen objects {how}"


class EndpointsLiveStep:
    """Both endpoints are in Amlen's monitor and complete a TLS handshake (a 200 is not a bound port)."""

    name = "endpoints live"

    def check(self, ctx: LabContext) -> bool:
        return False

    def apply(self, ctx: LabContext) -> str:
        s = ctx.settings
        probes = endpoint_probes(s, pki_paths(s), s.host_ip, s.tls_port, s.mtls_port)
        confirm_live(ctx.amlen, probes, diagnose=lambda name: _log_findings(ctx, name))
        return f"{s.tls_endpoint} on {s.tls_port} and {s.mtls_endpoint} on {s.mtls_port} answer MQTT over TLS"

    def undo(self, ctx: LabContext) -> str:
        return ""


def _log_findings(ctx: LabContext, endpoint: str) -> list[str]:
    """Why Amlen takes no connection on `endpoint`, from its log files (only for the lab's own container)."""
    if ctx.settings.admin_url:
        return []  # someone else's Amlen: its logs are not ours to read
    container = ctx.container or runtime.find_lab_container(ctx.docker, ctx.settings)
    if container is None:
        return []
    text = runtime.read_server_logs(container, lines=400,
                                    names=("imaserver-connection.log", "imaserver-default.log"))
    return explain_server_log(text, endpoint)


class HostsStep:
    """`<host_ip> <hostname>` in the hosts file, one marked line owned by this lab."""

    name = "hosts entry"

    def check(self, ctx: LabContext) -> bool | str:
        if not ctx.options.hosts:
            return "skipped (--no-hosts)"
        return hosts_status(ctx.settings).state in (HostsState.OURS_PRESENT, HostsState.USER_PROVIDES)

    def apply(self, ctx: LabContext) -> str:
        if needs_root(ctx.settings):
            outcome = hosts_as_root(ctx.settings, "add", force=ctx.options.force_hosts)
        else:
            outcome = add_hosts_entry(ctx.settings, force=ctx.options.force_hosts)
        if outcome.changed:
            ctx.ledger.record("hosts", {"run": ctx.run_id, "path": str(outcome.path)})
        return outcome.message

    def undo(self, ctx: LabContext) -> str:
        entry = ctx.ledger.entries.get("hosts")
        if not (ctx.in_scope(entry) or ctx.undo_all):
            return ""
        # Marked lines name this lab's directory, so removing them never touches a user's line.
        if needs_root(ctx.settings) and hosts_status(ctx.settings).state is HostsState.OURS_PRESENT:
            ctx.notice(f"removing the lab's line from {ctx.settings.hosts_file} needs root: through sudo")
            outcome = hosts_as_root(ctx.settings, "remove")
        else:
            outcome = remove_hosts_entry(ctx.settings)
        ctx.ledger.forget("hosts")
        return outcome.message


class VerifyStep:
    """The TLS matrix with real MQTT clients: what works must work, what must fail fails."""

    name = "verification"

    def check(self, ctx: LabContext) -> bool | str:
        return "" if ctx.options.verify else "skipped (--no-verify)"

    def apply(self, ctx: LabContext) -> str:
        from lab.checks import verify  # imported late: paho is only needed when verifying

        report = verify(ctx.settings, no_hosts=not ctx.options.hosts)
        failed = [row for row in report.rows if not row.passed]
        if failed:
            raise CheckError(
                f"verification failed: {'; '.join(f'{r.name}: {r.detail}' for r in failed)}",
                "`invoke doctor` explains the cause; `invoke verify` re-runs the matrix",
            )
        retried = sum(1 for row in report.rows if row.retried)
        again = f" ({retried} after one retry: the first attempt got no answer in time)" if retried else ""
        return f"{len(report.rows)}/{len(report.rows)} checks as expected{again}"

    def undo(self, ctx: LabContext) -> str:
        return ""

