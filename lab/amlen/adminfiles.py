"""The admin plane's files in the lab directory (`<LAB_DIR>/admin/`, mode 0700).

- `admin-server.key` / `.crt`: the certificate Amlen's admin endpoint serves, from the lab CA, CN `localhost`,
  SAN `IP:127.0.0.1, DNS:localhost` (and the address a testcontainers host is reached by), so clients verify
  `https://127.0.0.1:9089` with the lab's `myCA.pem` and no verification switched off.
- `lab.admin.key` / `.crt`: the client certificate the lab presents; the admin endpoint's configuration policy
  accepts this common name only (key 0600; with LAB_PKI=intermediate, `.chain.pem` beside each).
- `netrc`: the generated `AdminUserID` and `AdminUserPassword` (0600), in curl's `--netrc-file` format, so the
  password never appears on a command line or in the output.

Everything is reused while valid: a warm `up` reads these files and makes nothing.
"""

from __future__ import annotations

import netrc
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import CertError
from lab.files import atomic_write, private_dir
from lab.pki.paths import chain_of, pki_paths
from lab.settings import Settings
from lab.values import RESERVED_CLIENT

if TYPE_CHECKING:  # the PKI code is loaded only to make or check files: `status` and every admin call skip it
    from cryptography import x509

    from lab.pki.disk import FileResult

__all__ = ["ADMIN_CLIENT", "LOOPBACK", "SERVER_NAME", "AdminFiles", "admin_files", "ensure_admin_files",
           "read_credentials"]

# The admin client's common name: the one CN the admin endpoint's ConfigurationPolicy lets in. Reserved: no
# lab client or workshop seat may carry it (lab.settings, lab.workshop.roster refuse it).
ADMIN_CLIENT = RESERVED_CLIENT
SERVER_NAME = "localhost"
LOOPBACK = ("127.0.0.1",)


@dataclass(frozen=True)
class AdminFiles:
    """Where the admin plane's certificates and credentials live (all absolute)."""

    dir: Path
    ca: Path  # the lab root: what the admin client verifies the server with, and what Amlen trusts
    server_key: Path
    server_cert: Path
    client_key: Path
    client_cert: Path
    netrc: Path
    two_tier: bool

    @property
    def served_cert(self) -> Path:
        """What the admin certificate profile names: the leaf, or leaf + intermediate."""
        return chain_of(self.server_cert) if self.two_tier else self.server_cert

    @property
    def presented_cert(self) -> Path:
        """What the admin client presents: its certificate, or its chain file in the two-tier PKI."""
        return chain_of(self.client_cert) if self.two_tier else self.client_cert


def admin_files(settings: Settings) -> AdminFiles:
    """The admin files' paths for this lab (nothing is read or made)."""
    pki, directory = pki_paths(settings), settings.admin_dir
    return AdminFiles(
        dir=directory, ca=pki.ca_cert,
        server_key=directory / "admin-server.key", server_cert=directory / "admin-server.crt",
        client_key=directory / f"{ADMIN_CLIENT}.key", client_cert=directory / f"{ADMIN_CLIENT}.crt",
        netrc=directory / "netrc", two_tier=pki.two_tier,
    )


def ensure_admin_files(settings: Settings, *, addresses: Sequence[str] = ()) -> list[FileResult]:
    """Make (or reuse) the admin server certificate, the lab.admin client certificate and the credentials.

    `addresses` are extra IP addresses the admin certificate must name (where a test container's port is
    reached). The CA key is decrypted only when a certificate must be issued.
    """
    from lab.pki.build import LabCa, ServerNames
    from lab.pki.disk import Action, FileResult
    from lab.pki.leaves import _ensure_leaves, _leaf_problem  # the lab's own leaf rules, shared

    files = admin_files(settings)
    private_dir(files.dir)
    results = _ensure_credentials(files)
    server = ServerNames(dns=(SERVER_NAME,), ips=tuple(dict.fromkeys((*LOOPBACK, *addresses))))
    wanted = [(SERVER_NAME, files.server_key, files.server_cert, server, settings.server_days),
              (ADMIN_CLIENT, files.client_key, files.client_cert, None, settings.client_days)]
    issuer = _issuer_cert(settings)
    if issuer is not None:
        # Checking needs the issuer's certificate only (LabCa's key is not used by _leaf_problem): a warm run
        # decrypts nothing.
        probe = LabCa(key=None, cert=issuer)  # type: ignore[arg-type]
        if all(_leaf_problem(probe, key, cert, name, server=names) is None for name, key, cert, names, _ in wanted):
            return results + [FileResult(path, Action.REUSED, "valid, from the lab CA")
                              for path in (files.server_cert, files.client_cert)]
    from lab.pki.ca import signing_ca

    ca = signing_ca(settings)
    for name, key, cert, names, days in wanted:
        results += _ensure_leaves(ca, [(name, key, cert)], days=days, server=names)
    return results


def read_credentials(path: Path) -> tuple[str, str]:
    """(AdminUserID, AdminUserPassword) from a netrc file (its `default` entry, else its first machine)."""
    try:
        parsed = netrc.netrc(str(path))
    except (OSError, netrc.NetrcParseError) as exc:
        raise CertError(
            f"cannot read the admin credentials {path}: {getattr(exc, 'strerror', None) or exc}",
            "it must be a readable netrc file (`default login USER password PASS`, mode 0600); for the lab's "
            "own container: `invoke down`, then `invoke up` makes a new one",
        ) from None
    entry = parsed.authenticators("default") or next(iter(parsed.hosts.values()), None)
    if entry is None or not entry[0] or not entry[2]:
        raise CertError(f"{path} holds no login and password", "write `default login USER password PASS`")
    return entry[0], entry[2]


def _ensure_credentials(files: AdminFiles) -> list[FileResult]:
    from lab.pki.disk import Action, FileResult

    if files.netrc.exists():
        read_credentials(files.netrc)  # unreadable or broken: one line now, before anything reaches Amlen
        return [FileResult(files.netrc, Action.REUSED, "the admin user and password")]
    # Letters and digits only: Amlen's AdminUserID rules are narrow, and a netrc token must not hold spaces.
    user = f"labadmin{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(24)
    atomic_write(files.netrc, f"default login {user} password {password}\n".encode(), mode=0o600)
    return [FileResult(files.netrc, Action.CREATED, "a generated admin user and password (never printed)")]


def _issuer_cert(settings: Settings) -> x509.Certificate | None:
    from lab.pki.disk import read_cert

    pki = pki_paths(settings)
    issuer = pki.intermediate_cert if pki.two_tier else pki.ca_cert
    return read_cert(issuer) if issuer.exists() else None
