"""Browser trust for the lab's toy CA: the user's NSS databases on Linux (certutil), instructions elsewhere.

Trusting a CA is a big grant, so this module only ever adds the lab's own CA, only when asked, under a
nickname that names the lab and its directory (our mark), and removes exactly that again. A copy of the
same CA that the user imported by hand (under another nickname) is reported and left alone: NSS keeps one
entry per certificate, so adding ours would silently change the user's entry instead.
"""

from __future__ import annotations

import enum
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from lab.errors import CertError
from lab.pki.paths import pki_paths
from lab.settings import Settings

__all__ = [
    "NssDb",
    "NssTrust",
    "TrustGuide",
    "TrustReport",
    "TrustState",
    "ca_nickname",
    "find_nss_dbs",
    "install_ca",
    "supports_automatic_trust",
    "trust_guide",
    "trust_report",
    "trust_status",
    "uninstall_ca",
]

# "C,," = a CA trusted to issue TLS server certificates, and nothing else (no e-mail, no code signing).
_TRUST_FLAGS = "C,,"
_NICKNAME_PREFIX = "amlen-lab CA"
# certutil answers in well under a second; a minute means it is stuck on a locked or broken database.
_CERTUTIL_TIMEOUT = 60.0
# More lab entries under one nickname than this means something else is wrong; stop and say so.
_MAX_ENTRIES = 20

MEANING = (
    "Trusting a CA means the browser accepts every certificate that CA signs, for any website name, as "
    "genuine. The lab's CA key lives on this machine, so anyone who can read it could impersonate any HTTPS "
    "site to a browser that trusts it. Trust it only while you use the lab, and remove it afterwards "
    "(`invoke trust --uninstall`, also done by `invoke down --purge`)."
)


class TrustState(enum.Enum):
    """How one NSS database relates to the lab CA."""

    TRUSTED = "trusted (added by the lab)"
    TRUSTED_BY_USER = "imported by you under another name (the lab leaves it alone)"
    STALE = "holds an older lab CA under the lab's name"
    ABSENT = "not trusted"


@dataclass(frozen=True)
class NssDb:
    """One NSS certificate database (`sql:` format, cert9.db) and the browser that reads it."""

    path: Path
    browser: str

    def __str__(self) -> str:
        return f"{self.browser}: {self.path}"


@dataclass(frozen=True)
class NssTrust:
    """The lab CA's standing in one NSS database; `nickname` is where it was found, if anywhere."""

    db: NssDb
    state: TrustState
    nickname: str | None = None


@dataclass(frozen=True)
class TrustGuide:
    """Everything `invoke trust` tells a user: what trust means, the CA file, and the steps per browser/OS."""

    ca_file: Path
    nickname: str
    meaning: str
    browser_steps: dict[str, list[str]]
    os_commands: dict[str, dict[str, list[str]]]


def ca_nickname(settings: Settings) -> str:
    """The NSS nickname the lab uses: it names the lab and its directory, so two labs never collide."""
    # NSS reads "token:name" in a nickname, so a colon must not reach it.
    return f"{_NICKNAME_PREFIX} ({str(settings.lab_dir).replace(':', '_')})"


def supports_automatic_trust(platform: str = sys.platform) -> bool:
    """True where `install_ca` changes trust itself (Linux NSS); elsewhere the lab only prints commands."""
    return platform.startswith("linux")


def find_nss_dbs(home: Path | None = None) -> list[NssDb]:
    """The NSS databases of the user's Chrome/Chromium and Firefox profiles under `home` (default: $HOME).

    Only `sql:` databases (cert9.db) count: browsers dropped the old cert8.db format years ago.
    """
    home = home if home is not None else Path.home()
    found: list[NssDb] = []
    for db_dir, browser in (
        (home / ".pki" / "nssdb", "Chrome/Chromium"),
        (home / "snap" / "chromium" / "current" / ".pki" / "nssdb", "Chromium (snap)"),
    ):
        if (db_dir / "cert9.db").is_file():
            found.append(NssDb(db_dir, browser))
    for profiles, label in (
        (home / ".mozilla" / "firefox", "Firefox"),
        (home / "snap" / "firefox" / "common" / ".mozilla" / "firefox", "Firefox (snap)"),
        (home / ".var" / "app" / "org.mozilla.firefox" / ".mozilla" / "firefox", "Firefox (flatpak)"),
    ):
        for cert_db in sorted(profiles.glob("*/cert9.db")):
            found.append(NssDb(cert_db.parent, f"{label} profile {cert_db.parent.name}"))
    return found


def trust_status(settings: Settings, *, nss_dbs: list[NssDb] | None = None) -> list[NssTrust]:
    """Where the lab CA is trusted: one row per NSS database found (or given)."""
    ca_der = _read_ca(settings)
    dbs = find_nss_dbs() if nss_dbs is None else nss_dbs
    if not dbs:
        return []
    certutil = _certutil()
    return [_standing(certutil, db, ca_der, ca_nickname(settings)) for db in dbs]


def install_ca(settings: Settings, *, nss_dbs: list[NssDb] | None = None) -> list[str]:
    """Trust the lab CA in each NSS database that does not yet; returns the databases changed.

    Idempotent: a database that already trusts this CA (ours or the user's own import) is left as it is, and
    an older lab CA under our nickname (the CA was regenerated) is replaced.
    """
    if not supports_automatic_trust():
        system = "Windows" if sys.platform == "win32" else "macOS"
        commands = _os_commands(pki_paths(settings).ca_cert)[system]["install"]
        raise CertError(
            f"the lab changes browser trust automatically on Linux only, not on {sys.platform}",
            "run it yourself: " + " ; ".join(commands),
        )
    ca_der = _read_ca(settings)
    dbs = find_nss_dbs() if nss_dbs is None else nss_dbs
    if not dbs:
        raise CertError(
            f"no Chrome/Chromium or Firefox certificate database (cert9.db) under {Path.home()}",
            "start the browser once so it creates one, then run `invoke trust --install` again",
        )
    certutil = _certutil()
    nickname = ca_nickname(settings)
    ca_file = pki_paths(settings).ca_cert
    changed: list[str] = []
    for db in dbs:
        standing = _standing(certutil, db, ca_der, nickname)
        if standing.state in (TrustState.TRUSTED, TrustState.TRUSTED_BY_USER):
            continue
        if standing.state is TrustState.STALE:
            _delete_all(certutil, db, nickname)
        _run(certutil, "-A", "-d", f"sql:{db.path}", "-n", nickname, "-t", _TRUST_FLAGS, "-i", str(ca_file))
        changed.append(str(db))
    return changed


def uninstall_ca(settings: Settings, *, nss_dbs: list[NssDb] | None = None) -> list[str]:
    """Remove the lab CA from every NSS database where the lab added it; returns the databases changed.

    Only entries under the lab's nickname go (whatever CA they hold: an older lab CA is ours too); a copy
    the user imported under another name stays. Nothing to remove is a success, so `down --purge` can
    always call this, even after the lab directory is gone.
    """
    if not supports_automatic_trust():
        return []  # the lab never changes trust there; the user ran the printed commands themselves
    dbs = find_nss_dbs() if nss_dbs is None else nss_dbs
    if not dbs:
        return []
    certutil = _certutil()
    nickname = ca_nickname(settings)
    changed: list[str] = []
    for db in dbs:
        if nickname in _nicknames(certutil, db):
            _delete_all(certutil, db, nickname)
            changed.append(str(db))
    return changed


def trust_guide(settings: Settings) -> TrustGuide:
    """The printed instructions: what trust means, which file to import, and how, per browser and OS."""
    ca_file = pki_paths(settings).ca_cert
    return TrustGuide(
        ca_file=ca_file,
        nickname=ca_nickname(settings),
        meaning=MEANING,
        browser_steps={
            "Firefox": [
                "Settings → Privacy & Security → Certificates → View Certificates…",
                f"Authorities → Import… → choose {ca_file}",
                'Tick "Trust this CA to identify websites" → OK',
                "To undo: select the CA under Authorities → Delete or Distrust…",
            ],
            "Chrome/Chromium": [
                "Settings → Privacy and security → Security → Manage certificates",
                "Authorities → Import (newer versions: Local certificates → Installed by you → "
                f"Trusted certificates → Import) → choose {ca_file}",
                'Tick "Trust this certificate for identifying websites" → OK, then restart the browser',
                "To undo: remove the CA from the same list",
            ],
        },
        os_commands=_os_commands(ca_file),
    )


@dataclass(frozen=True)
class TrustReport:
    """What one `invoke trust` run did and found: the guide, one row per NSS database, what changed."""

    guide: TrustGuide
    rows: list[tuple[str, Path, str]]  # browser, database, the lab CA's standing there
    installed: list[str] | None = None  # the databases --install changed (None: not asked)
    removed: list[str] | None = None  # the databases --uninstall changed (None: not asked)
    platform_only: str | None = None  # "macOS"/"Windows": --install there only prints that system's commands


def trust_report(settings: Settings, *, install: bool = False, uninstall: bool = False) -> TrustReport:
    """`invoke trust`: the guide (default), or trust the lab CA (`install`) or remove it (`uninstall`) first."""
    guide = trust_guide(settings)
    if install and not supports_automatic_trust():
        return TrustReport(guide, [], platform_only="Windows" if sys.platform == "win32" else "macOS")
    removed = uninstall_ca(settings) if uninstall else None
    installed = install_ca(settings) if install else None
    rows = [(t.db.browser, t.db.path, t.state.value) for t in trust_status(settings)]
    return TrustReport(guide, rows, installed=installed, removed=removed)


# -- internals ----------------------------------------------------------------------------------------------


def _os_commands(ca_file: Path) -> dict[str, dict[str, list[str]]]:
    """The exact macOS and Windows commands that install and remove the CA for the current user only."""
    thumbprint = "<SHA-1 fingerprint of myCA.pem>"
    if ca_file.is_file():
        # Both OS tools name a certificate by its SHA-1 thumbprint; it identifies, it does not secure.
        thumbprint = hashlib.sha1(_read_der(ca_file)).hexdigest().upper()
    # The login keychain: the user's own trust, no admin rights; macOS asks for the password.
    keychain = "~/Library/Keychains/login.keychain-db"
    return {
        "macOS": {
            "install": [f"security add-trusted-cert -r trustRoot -k {keychain} {ca_file}"],
            "uninstall": [
                f"security remove-trusted-cert {ca_file}",
                f"security delete-certificate -Z {thumbprint} {keychain}",
            ],
        },
        "Windows": {
            # -user: the current user's Root store, no administrator rights (Windows still asks to confirm).
            "install": [f"certutil -addstore -user Root {ca_file}"],
            "uninstall": [f"certutil -delstore -user Root {thumbprint}"],
        },
    }


def _read_der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def _read_ca(settings: Settings) -> bytes:
    ca_file = pki_paths(settings).ca_cert
    try:
        return _read_der(ca_file)
    except FileNotFoundError:
        raise CertError(f"no lab CA at {ca_file}", "run `invoke up` first: it creates the toy CA") from None
    except (OSError, ValueError) as exc:
        raise CertError(f"cannot read the lab CA {ca_file}: {exc}", "run `invoke up` to recreate it") from exc


def _certutil() -> str:
    found = shutil.which("certutil")
    if found is None:
        raise CertError(
            "certutil (NSS tools) is not installed",
            "install it: `apt-get install libnss3-tools` (Debian/Ubuntu) or `dnf install nss-tools` (Fedora)",
        )
    return found


def _run(certutil: str, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            [certutil, *args], capture_output=True, text=True, timeout=_CERTUTIL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise CertError(
            f"certutil {' '.join(args[:3])} did not answer within {_CERTUTIL_TIMEOUT:.0f} s",
            "close the browser that uses this database and try again",
        ) from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise CertError(
            f"certutil {' '.join(args[:3])} failed: {detail[-1] if detail else result.returncode}",
            "check that the database is readable and not damaged (`certutil -L -d sql:<dir>`)",
        )
    return result


def _nicknames(certutil: str, db: NssDb) -> list[str]:
    """Nicknames listed by `certutil -L`; the listing is two header lines, then `<nickname>  <flags>`."""
    out = _run(certutil, "-L", "-d", f"sql:{db.path}").stdout
    names = []
    for line in out.splitlines()[3:]:
        if line.strip():
            names.append(line.rstrip().rsplit(None, 1)[0].rstrip())
    return names


def _cert_of(certutil: str, db: NssDb, nickname: str) -> bytes:
    """The DER of the certificate stored under `nickname`.

    NSS groups certificates by subject, and every lab CA has the same subject, so `certutil -L -n` prints the
    nickname's own certificate first and then any others with that subject; only the first is this entry's.
    (tests/test_trust.py installs two labs' CAs side by side to hold NSS to this.)
    """
    pem = _run(certutil, "-L", "-d", f"sql:{db.path}", "-n", nickname, "-a").stdout.encode()
    return x509.load_pem_x509_certificates(pem)[0].public_bytes(Encoding.DER)


def _standing(certutil: str, db: NssDb, ca_der: bytes, nickname: str) -> NssTrust:
    names = _nicknames(certutil, db)
    for name in names:
        if _cert_of(certutil, db, name) == ca_der:
            state = TrustState.TRUSTED if name == nickname else TrustState.TRUSTED_BY_USER
            return NssTrust(db, state, name)
    return NssTrust(db, TrustState.STALE, nickname) if nickname in names else NssTrust(db, TrustState.ABSENT)


def _delete_all(certutil: str, db: NssDb, nickname: str) -> None:
    # `certutil -D -n` removes exactly the entry labelled `nickname`, one per call; a regenerated CA may have
    # left several. The bound only stops a database that refuses deletions from looping forever.
    for _ in range(_MAX_ENTRIES):
        if nickname not in _nicknames(certutil, db):
            return
        _run(certutil, "-D", "-d", f"sql:{db.path}", "-n", nickname)
    raise CertError(
        f"{nickname!r} is still in {db.path} after {_MAX_ENTRIES} deletions",
        f"remove it by hand: certutil -D -d sql:{db.path} -n '{nickname}'",
    )
