"""Securing the lab's own Amlen admin plane: the files before readiness, the lock right after it.

The order is the one a real server needed (reference, "Observed later (2026-12-04)"); another order locked the
lab out. Each POST answers over the transport it was sent on; the next rung is polled until it answers.

    1  AdminUserID + AdminUserPassword              (the default superuser is not left open)
    2  CertificateProfile LabAdminCert              (the admin certificate: CN localhost, IP:127.0.0.1)
    3  AdminDefaultSecProfile TLS + password        -> HTTPS + password
    4  TrustedCertificate for AdminDefaultSecProfile (the lab root; mtls only; over TLS + password)
    5  UseClientCertificate                         -> HTTPS + lab.admin + password          (mtls only)
    6  AdminDefaultConfigPolicy CommonNames lab.admin                                         (mtls only)
    7  UsePasswordAuthentication off                -> HTTPS + lab.admin                     (mtls only)

1, 2 and 3 go as one POST (Amlen applies a POST's object types in that order, whatever the JSON's), with every
file staged before it; 4, 5, 6 and 7 are a POST each, every one answered before the next is sent.

A re-run finds the rung the server is on (`lab.amlen.adminsec.find_rung`, done by readiness) and goes on from there;
on the target with the wanted properties it does nothing.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.amlen.admin import AmlenClient
from lab.amlen.adminfiles import ADMIN_CLIENT, admin_files, ensure_admin_files, read_credentials
from lab.amlen.adminsec import LOCKED_HINT, OPEN_WARNING, Rung, admin_curl, lab_owns_admin, target_rung, wait_for_rung
from lab.errors import AmlenError
from lab.pki.disk import Action
from lab.settings import Settings
from lab.steps.context import LabContext

__all__ = [
    "ADMIN_CERT_PROFILE",
    "ADMIN_POLICY",
    "ADMIN_PROFILE",
    "AdminCertificatesStep",
    "AdminPlaneStep",
    "SecureCall",
    "secure",
    "securing_calls",
    "unlock",
]

ADMIN_PROFILE = "AdminDefaultSecProfile"
ADMIN_POLICY = "AdminDefaultConfigPolicy"
ADMIN_CERT_PROFILE = "LabAdminCert"
_CERT_FILE, _KEY_FILE, _CA_FILE = "LabAdminCert.pem", "LabAdminKey.pem", "LabAdminCA.pem"
_RUNGS = (Rung.OPEN, Rung.PASSWORD, Rung.CERT_PASSWORD, Rung.CERT)


@dataclass(frozen=True)
class SecureCall:
    """One call of the securing sequence: what it sends, over which rung, and the rung that answers after it."""

    label: str
    body: dict[str, Any]
    over: Rung
    then: Rung
    uploads: dict[str, bytes] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)  # upload name -> the lab file it is read from


def securing_calls(settings: Settings, *, secrets: bool = True) -> list[SecureCall]:
    """The sequence from an open server to LAB_ADMIN_SECURITY's rung. Without `secrets`, the password and the
    files' bytes are placeholders (for `--explain` and the guide: the call is shown, the secret is not)."""
    target = target_rung(settings)
    if target is Rung.OPEN:
        return []
    files = admin_files(settings)
    user, password = read_credentials(files.netrc) if secrets else ("$ADMIN_USER", "$ADMIN_PASSWORD")

    def data(path: Any) -> bytes:
        return path.read_bytes() if secrets else b""

    calls = [
        SecureCall("AdminUserID and AdminUserPassword", {"AdminUserID": user, "AdminUserPassword": password},
                   Rung.OPEN, Rung.OPEN),
        SecureCall(f"CertificateProfile {ADMIN_CERT_PROFILE}",
                   {"CertificateProfile": {ADMIN_CERT_PROFILE: {"Certificate": _CERT_FILE, "Key": _KEY_FILE,
                                                                "Overwrite": True}}},
                   Rung.OPEN, Rung.OPEN, {_CERT_FILE: data(files.served_cert), _KEY_FILE: data(files.server_key)},
                   {_CERT_FILE: files.served_cert, _KEY_FILE: files.server_key}),
    ]
    calls.append(SecureCall(f"SecurityProfile {ADMIN_PROFILE}: TLS + password",
                            {"SecurityProfile": {ADMIN_PROFILE: {"CertificateProfile": ADMIN_CERT_PROFILE,
                                                                 "TLSEnabled": True,
                                                                 "UsePasswordAuthentication": True}}},
                            Rung.OPEN, Rung.PASSWORD))
    if target is Rung.CERT:
        calls += [
            # Sent over TLS + password, right before the client certificate is required, as the real server did.
            SecureCall(f"TrustedCertificate {ADMIN_PROFILE}/{_CA_FILE}",
                       {"TrustedCertificate": [{"SecurityProfileName": ADMIN_PROFILE, "TrustedCertificate": _CA_FILE,
                                                "Overwrite": True}]},
                       Rung.PASSWORD, Rung.PASSWORD, {_CA_FILE: data(files.ca)}, {_CA_FILE: files.ca}),
            SecureCall(f"SecurityProfile {ADMIN_PROFILE}: client certificate required",
                       {"SecurityProfile": {ADMIN_PROFILE: {"UseClientCertificate": True}}},
                       Rung.PASSWORD, Rung.CERT_PASSWORD),
            SecureCall(f"ConfigurationPolicy {ADMIN_POLICY}: CommonNames {ADMIN_CLIENT}",
                       {"ConfigurationPolicy": {ADMIN_POLICY: {"CommonNames": ADMIN_CLIENT}}},
                       Rung.CERT_PASSWORD, Rung.CERT_PASSWORD),
            SecureCall(f"SecurityProfile {ADMIN_PROFILE}: password off",
                       {"SecurityProfile": {ADMIN_PROFILE: {"UsePasswordAuthentication": False}}},
                       Rung.CERT_PASSWORD, Rung.CERT),
        ]
    return calls


def secure(settings: Settings, rung: Rung, amlen: AmlenClient, *, progress: Callable[[str], None] = lambda _: None,
           reupload_cert: bool = False) -> AmlenClient:
    """Run the securing calls from `rung` (the server's, `amlen` reaches it) to the target; returns the client
    for the target. The calls of earlier rungs are skipped, except the certificate profile when `reupload_cert`.

    Every file is staged first, over the transport of the moment (a staged file waits in Amlen's userfiles
    until an apply consumes it; a transport switch leaves it there), and consecutive calls over one transport
    go as one POST where Amlen's fixed order of object types is the sequence's own (`_batches`)."""
    client, current = amlen, rung
    todo = []
    for call in securing_calls(settings):
        profile = call.label.startswith(f"CertificateProfile {ADMIN_CERT_PROFILE}")
        # Calls of rungs the server has passed are done; the certificate profile again when its file changed.
        passed = _RUNGS.index(call.then) < _RUNGS.index(current) or (call.then is current and call.over is not current)
        if not passed or (profile and reupload_cert):
            todo.append(call)
    for call in todo:
        for name, data in call.uploads.items():
            client.upload(name, data)
    for batch in _batches(todo):
        labels = " + ".join(call.label for call in batch)
        progress(f"admin plane: {labels}")
        body: dict[str, Any] = {}
        for call in batch:
            body |= call.body
        client.post(body, what=f"apply {labels}")
        then = batch[-1].then
        if then is not current and _RUNGS.index(then) > _RUNGS.index(current):
            client, current = _switch(settings, client, then, current), then
    return client


# The order in which Amlen applies the object types of one POST, whatever their order in the JSON
# (janssonProcessPost.c `configOrderList`, reference 2.3): only those the securing sequence sends.
_AMLEN_ORDER = ("AdminUserID", "AdminUserPassword", "CertificateProfile", "SecurityProfile", "TrustedCertificate",
                "ConfigurationPolicy", "AdminEndpoint")


def _batches(calls: list[SecureCall]) -> list[list[SecureCall]]:
    """The calls grouped into POSTs: a call joins the one before when it goes over the same transport, that one
    switches nothing, and Amlen applies all of its object types after the group's (so the server sees the
    sequence's order, as if sent one by one). In the sequence that is the admin user, the certificate profile
    and the switch to TLS + password (Amlen's own order: user, certificate profile, security profile); the
    trusted certificate must precede the client-certificate switch, which Amlen's order would not keep, and
    the steps after it were seen to need their order, one answer at a time."""
    batches: list[list[SecureCall]] = []
    for call in calls:
        group = batches[-1] if batches else None
        if group and group[-1].over is call.over and group[-1].then is group[-1].over and \
                min(map(_AMLEN_ORDER.index, call.body)) > max(_AMLEN_ORDER.index(t) for c in group for t in c.body):
            group.append(call)
        else:
            batches.append([call])
    return batches


def _done_already(settings: Settings, amlen: AmlenClient) -> bool:
    """On the target rung: do the profile and policy say exactly what LAB_ADMIN_SECURITY wants?"""
    profile = amlen.get("SecurityProfile", ADMIN_PROFILE) or {}
    want: dict[str, Any] = {"TLSEnabled": True, "CertificateProfile": ADMIN_CERT_PROFILE}
    if settings.admin_security == "mtls":
        want |= {"UseClientCertificate": True, "UsePasswordAuthentication": False}
        policy = amlen.get("ConfigurationPolicy", ADMIN_POLICY) or {}
        if policy.get("CommonNames") != ADMIN_CLIENT:
            return False
    else:
        want |= {"UsePasswordAuthentication": True}
    return all(profile.get(key) == value for key, value in want.items())


def _fingerprint(settings: Settings) -> str:
    return hashlib.sha256(admin_files(settings).served_cert.read_bytes()).hexdigest()[:16]


class AdminCertificatesStep:
    """The admin server certificate, the lab.admin client certificate and the admin credentials (while Amlen
    boots: none of it needs the admin API)."""

    name = "admin certificates"

    def check(self, ctx: LabContext) -> bool | str:
        if not lab_owns_admin(ctx.settings):
            return "someone else's Amlen (LAB_ADMIN_URL): its admin security is left as it is"
        if ctx.settings.admin_security == "open":
            return "none needed (LAB_ADMIN_SECURITY=open)"
        return False

    def apply(self, ctx: LabContext) -> str:
        # Not in the ledger: a server locked with them must stay reachable whatever a rollback removes.
        results = ensure_admin_files(ctx.settings)
        made = sum(1 for r in results if r.action in (Action.CREATED, Action.REISSUED))
        return f"{made} made, {len(results) - made} reused in {ctx.settings.admin_dir}"

    def undo(self, ctx: LabContext) -> str:
        return ""  # the files go with CertificatesStep's ledger entry (kept by `down`, removed by --purge)


class AdminPlaneStep:
    """The lab's Amlen admin API locked as LAB_ADMIN_SECURITY says, before any other object is applied."""

    name = "admin plane"

    def check(self, ctx: LabContext) -> bool | str:
        settings = ctx.settings
        if not lab_owns_admin(settings):
            return "someone else's Amlen (LAB_ADMIN_URL): reached as it is, its admin security unchanged"
        target, rung = target_rung(settings), ctx.admin_rung or Rung.OPEN
        if target is Rung.OPEN:
            if rung is not Rung.OPEN:
                raise AmlenError(f"LAB_ADMIN_SECURITY=open, but this container's admin API is locked ({rung})",
                                 f"to open it again: {LOCKED_HINT}")
            ctx.notice(OPEN_WARNING)
            return "left open (LAB_ADMIN_SECURITY=open)"
        if rung is target and _done_already(settings, ctx.amlen) and \
                (ctx.ledger.entries.get("admin") or {}).get("cert") == _fingerprint(settings):
            return f"already locked: {target}"
        return False

    def apply(self, ctx: LabContext) -> str:
        settings, rung = ctx.settings, ctx.admin_rung or Rung.OPEN
        target = target_rung(settings)
        if _RUNGS.index(rung) > _RUNGS.index(target):
            raise AmlenError(f"LAB_ADMIN_SECURITY={settings.admin_security}, but this container's admin API is "
                             f"locked further ({rung})", f"to lock it less: {LOCKED_HINT}")
        entry = ctx.ledger.entries.get("admin") or {}
        reupload = rung is not Rung.OPEN and entry.get("cert") != _fingerprint(settings)
        client = secure(settings, rung, ctx.amlen, progress=ctx.progress, reupload_cert=reupload)
        ctx.use_amlen(client, target)
        ctx.ledger.record("admin", {"run": entry.get("run", ctx.run_id), "security": settings.admin_security,
                                    "cert": _fingerprint(settings)})
        return f"locked: {target}" + ("" if rung is Rung.OPEN else f" (was {rung})")

    def undo(self, ctx: LabContext) -> str:
        entry = ctx.ledger.entries.get("admin")
        container_goes = ctx.in_scope(ctx.ledger.entries.get("container")) and not ctx.options.keep_container
        said = ""
        if entry and ctx.in_scope(entry):
            ctx.ledger.forget("admin")
            if container_goes:
                said = "the admin lock goes with the container"
            elif not ctx.undo_all and ctx.admin_rung is not None:
                # A failed run on a server that stays (compose's, `configure`): put it back as it was found.
                unlock(ctx.settings, ctx.admin_rung, ctx.amlen)
                ctx.admin_rung, ctx._amlen = None, None
                said = "the admin API is open again, as this run found it"
            else:
                # `down --keep-container`, or compose's Amlen: it stays locked (opening it would hand it to every
                # web page), and the files that open it stay in the lab directory.
                said = f"kept the admin API locked ({target_rung(ctx.settings)}): {admin_curl(ctx.settings)}"
        if ctx.undo_all and ctx.options.purge and ctx.settings.admin_dir.exists():
            if said.startswith("kept"):
                return said + f" (--purge keeps {ctx.settings.admin_dir}: without it nothing opens that container)"
            shutil.rmtree(ctx.settings.admin_dir)
            said = "; ".join(filter(None, [said, f"removed {ctx.settings.admin_dir}"]))
        return said


def unlock(settings: Settings, rung: Rung, amlen: AmlenClient) -> None:
    """The securing sequence backwards, from `rung` to Amlen's open defaults (a rollback's undo)."""
    client, current = amlen, rung
    if current is Rung.CERT:
        client.post({"SecurityProfile": {ADMIN_PROFILE: {"UsePasswordAuthentication": True}}},
                    what=f"turn password authentication on again in {ADMIN_PROFILE}")
        client, current = _switch(settings, client, Rung.CERT_PASSWORD, current), Rung.CERT_PASSWORD
    if current is Rung.CERT_PASSWORD:
        client.post({"ConfigurationPolicy": {ADMIN_POLICY: {"CommonNames": ""}}},
                    what=f"remove CommonNames from {ADMIN_POLICY}")
        client.post({"SecurityProfile": {ADMIN_PROFILE: {"UseClientCertificate": False}}},
                    what=f"stop requiring client certificates in {ADMIN_PROFILE}")
        client, current = _switch(settings, client, Rung.PASSWORD, current), Rung.PASSWORD
    if current is Rung.PASSWORD:
        client.post({"SecurityProfile": {ADMIN_PROFILE: {"TLSEnabled": False, "UsePasswordAuthentication": False,
                                                         "CertificateProfile": "AdminDefaultCertProf"}}},
                    what=f"put {ADMIN_PROFILE} back to Amlen's defaults")
        client = _switch(settings, client, Rung.OPEN, current)
    with client:
        client.delete("TrustedCertificate", f"{ADMIN_PROFILE}/{_CA_FILE}")
        client.delete("CertificateProfile", ADMIN_CERT_PROFILE)


def _switch(settings: Settings, old: AmlenClient, rung: Rung, before: Rung) -> AmlenClient:
    new = wait_for_rung(settings, rung, before=before)
    old.close()
    return new
