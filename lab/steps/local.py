"""The user's side: the lab's certificates, the hosts-file line and the verification matrix."""

from __future__ import annotations

import contextlib
from pathlib import Path

from lab.amlen.configure import fingerprint
from lab.elevate import hosts_as_root, needs_root
from lab.errors import CheckError
from lab.hosts import HostsState, add_hosts_entry, hosts_status, remove_hosts_entry
from lab.kit.client import remove_kits
from lab.pki.disk import Action, FileResult
from lab.pki.leaves import ensure_certificates, foreign_client
from lab.pki.lint import check_certificates
from lab.pki.paths import pki_paths
from lab.steps.context import LabContext
from lab.steps.machine import exposed_address

__all__ = ["CertificatesStep", "HostsStep", "VerifyStep"]


class CertificatesStep:
    """The toy CA, server and client certificates (reused when valid), checked against Amlen's rules."""

    name = "certificates"

    def check(self, ctx: LabContext) -> bool:
        return False

    def apply(self, ctx: LabContext) -> str:
        # An exposed workshop port is reached by address too: the server certificate names it (IP SAN).
        exposed = exposed_address(ctx)
        results = ensure_certificates(ctx.settings, server_addresses=[exposed] if exposed else [])
        if ctx.options.verify:
            # Verification's client from another CA, made now, while Amlen boots, rather than in row 4.
            foreign_client(ctx.settings.verify_dir)
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
            from lab.pki.trust import uninstall_ca

            trusted = uninstall_ca(ctx.settings)
            pki = pki_paths(ctx.settings)
            for path in sorted(pki.dir.glob("*")) if pki.dir.exists() else []:
                path.unlink()
                removed += 1
            for path in (pki.passphrase_file, *sorted(ctx.settings.verify_dir.glob("*"))):
                if path.exists():
                    path.unlink()
                    removed += 1
            with contextlib.suppress(OSError):
                ctx.settings.verify_dir.rmdir()  # verification's throwaway foreign CA
            removed += remove_kits(ctx.settings)  # the kits hold copies of client keys
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
    # Upload name -> the file whose bytes go up under it (your own key goes up as test.server.key).
    uploads = ((pki.served_cert.name, pki.served_cert), (pki.server_key.name, pki.served_key),
               (pki.ca_cert.name, pki.ca_cert))
    return any(ctx.ledger.fingerprints.get(name) != fingerprint(path.read_bytes()) for name, path in uploads)


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
        from lab.clients.checks import verify  # imported late: paho is only needed when verifying

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
