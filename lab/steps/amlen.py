"""Amlen's side: the guide's objects through the admin API, and proof that each endpoint takes MQTT."""

from __future__ import annotations

from pathlib import Path

from lab.amlen.admin import AmlenObject
from lab.amlen.configure import (
    ObjectAction,
    ObjectResult,
    confirm_live,
    converge,
    desired_objects,
    endpoint_probes,
    teardown,
)
from lab.amlen.logs import connection_log_findings
from lab.clients.tls import handshake, tls_context
from lab.container import runtime
from lab.pki.paths import pki_paths
from lab.steps.context import LabContext

__all__ = ["AmlenConfigStep", "EndpointsLiveStep"]


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
            if seen.chain and seen.chain != _der_chain(pki.served_cert):
                # The endpoint presents another chain than the lab's (another leaf, or the leaf without its
                # intermediate): whatever the ledger remembers uploading is no longer what Amlen holds.
                ctx.ledger.fingerprints.pop(pki.served_cert.name, None)
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
            deleted = teardown(ctx.amlen, objects)
        entry["objects"] = [o for o in entry.get("objects", []) if o not in recorded]
        if not entry["objects"]:
            ctx.ledger.fingerprints.clear()  # Amlen holds none of the lab's files any more
            ctx.ledger.forget("amlen")
        ctx.ledger.save()
        how = "with the container" if container_goes else "through the admin API"
        return f"deleted {len(deleted)} Amlen objects {how}"


class EndpointsLiveStep:
    """Both endpoints are in Amlen's monitor and answer an MQTT CONNECT with a CONNACK (a 200 is not a bound port)."""

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
    return connection_log_findings(container, endpoint)


def _der_chain(path: Path) -> tuple[bytes, ...]:
    """A PEM file's certificates as DER, in order, to compare with what an endpoint presents."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return tuple(c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(path.read_bytes()))
