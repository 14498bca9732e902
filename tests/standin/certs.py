"""Certificate and key checks with the openssl command line, as Amlen's ``certApply.sh`` does them.

Amlen validates an uploaded certificate with ``openssl x509``, its key with ``openssl rsa -check`` (so only
RSA keys pass; an EC key fails like an encrypted one, hence the misleading CWLNA6191), and matches the two by
RSA modulus. The stand-in runs the same commands so it accepts and refuses the same files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

OPENSSL = "openssl"
_PASS_ENV = "STANDIN_KEY_PASSWORD"  # passwords go through the environment, never on a command line


@dataclass(frozen=True)
class DataPaths:
    """Amlen's data layout under ``/var/lib/amlen-server`` (``IMA_SVR_DATA_PATH``)."""

    root: Path

    @property
    def userfiles(self) -> Path:
        """Staging directory of ``PUT /ima/v1/file/<name>``."""
        return self.root / "userfiles"

    @property
    def certificates(self) -> Path:
        """Key store, trust store and CRLs (``data/certificates``)."""
        return self.root / "data" / "certificates"

    @property
    def keystore(self) -> Path:
        """Certificate profiles' certificates and keys."""
        return self.root / "data" / "certificates" / "keystore"

    @property
    def truststore(self) -> Path:
        """Per security profile: ``<profile>/``, ``<profile>_capath/`` and ``<profile>_cafile.pem``."""
        return self.root / "data" / "certificates" / "truststore"

    @property
    def config(self) -> Path:
        """Server configuration and status files."""
        return self.root / "data" / "config"

    @property
    def server_cfg(self) -> Path:
        """The static configuration file in the data volume (``data/config/server.cfg``)."""
        return self.config / "server.cfg"

    @property
    def persist(self) -> Path:
        """The store's persistence files (``store/persist``)."""
        return self.root / "store" / "persist"

    @property
    def logs(self) -> Path:
        """Log files (``imaserver-default.log`` and friends)."""
        return self.root / "diag" / "logs"

    @property
    def broker(self) -> Path:
        """The backing mosquitto's generated configuration."""
        return self.root / "data" / "standin-broker"

    def create(self) -> None:
        """Create the directories, like ``initServer.sh`` on a first start (idempotent)."""
        for path in (self.userfiles, self.keystore, self.truststore, self.config, self.logs, self.broker):
            path.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class CertificateInfo:
    """What the checks need to know about a PEM certificate."""

    not_after: datetime
    is_ca: bool
    rsa_modulus: str | None  # None for a non-RSA public key


class KeyNeedsPassword(Exception):
    """``openssl rsa`` failed and no KeyFilePassword was given (also what a non-RSA key produces)."""


class KeyPasswordWrong(Exception):
    """``openssl rsa`` failed although a KeyFilePassword was given."""


def _openssl(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env[_PASS_ENV] = password or ""
    # stdin closed: an encrypted key must fail, never prompt.
    return subprocess.run(
        [OPENSSL, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False
    )


def certificate_info(path: Path) -> CertificateInfo | None:
    """Parse a PEM certificate (the first one in the file); None when ``openssl x509`` cannot read it."""
    shown = _openssl("x509", "-in", str(path), "-noout", "-enddate", "-ext", "basicConstraints")
    if shown.returncode != 0:
        return None
    not_after = None
    for line in shown.stdout.splitlines():
        if line.startswith("notAfter="):
            # "notAfter=Nov  6 17:53:54 2027 GMT": split() absorbs the padding of one-digit days.
            month, day, clock, year, _zone = line.split("=", 1)[1].split()
            not_after = datetime.strptime(f"{month} {day} {clock} {year}", "%b %d %H:%M:%S %Y").replace(
                tzinfo=UTC
            )
    if not_after is None:
        return None
    modulus = _openssl("x509", "-in", str(path), "-noout", "-modulus")
    rsa_modulus = modulus.stdout.strip().partition("=")[2] if modulus.returncode == 0 else None
    return CertificateInfo(
        not_after=not_after, is_ca="CA:TRUE" in shown.stdout, rsa_modulus=rsa_modulus or None
    )


def rsa_key_modulus(path: Path, password: str | None) -> str:
    """The modulus of an RSA private key, after ``openssl rsa -check``.

    Raises KeyNeedsPassword when the check fails without a password (encrypted key, EC key, garbage: Amlen
    answers all of them with CWLNA6191) and KeyPasswordWrong when it fails with one (CWLNA6193).
    """
    checked = _openssl(
        "rsa", "-in", str(path), "-check", "-noout", "-passin", f"env:{_PASS_ENV}", password=password
    )
    if checked.returncode != 0:
        raise KeyPasswordWrong() if password else KeyNeedsPassword()
    modulus = _openssl(
        "rsa", "-in", str(path), "-noout", "-modulus", "-passin", f"env:{_PASS_ENV}", password=password
    )
    return modulus.stdout.strip().partition("=")[2]


def write_plain_key(source: Path, target: Path, password: str | None) -> None:
    """Store a key unencrypted, as Amlen does after a KeyFilePassword (the TLS listener needs no password)."""
    if not password:
        shutil.copyfile(source, target)
        return
    done = _openssl(
        "rsa", "-in", str(source), "-out", str(target), "-passin", f"env:{_PASS_ENV}", password=password
    )
    if done.returncode != 0:
        raise KeyPasswordWrong()


def expiration_date(info: CertificateInfo) -> str:
    """Amlen's ``ExpirationDate`` text: ``2027-11-26T17:53:54.000Z``."""
    return info.not_after.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def subject_hash(path: Path) -> str:
    """OpenSSL's subject hash, the file name stem in a hashed CA directory."""
    return _openssl("x509", "-in", str(path), "-noout", "-hash").stdout.strip()


def rebuild_truststore(paths: DataPaths, profile: str) -> None:
    """Regenerate ``<profile>_capath/`` (hashed links) and ``<profile>_cafile.pem`` from ``<profile>/``.

    This is the layout Amlen's ``cert_rehash.py`` maintains and its TLS listener reads: the cafile is loaded
    when an endpoint's TLS context is built, the hashed directory is searched on demand.
    """
    certs_dir = paths.truststore / profile
    capath = paths.truststore / f"{profile}_capath"
    cafile = paths.truststore / f"{profile}_cafile.pem"
    shutil.rmtree(capath, ignore_errors=True)
    certs = sorted(certs_dir.iterdir()) if certs_dir.is_dir() else []
    if not certs:
        cafile.unlink(missing_ok=True)
        if certs_dir.is_dir():
            certs_dir.rmdir()
        return
    capath.mkdir(parents=True)
    used: dict[str, int] = {}
    for cert in certs:
        stem = subject_hash(cert)
        index = used.get(stem, 0)
        used[stem] = index + 1
        (capath / f"{stem}.{index}").symlink_to(cert)
    cafile.write_text("".join(cert.read_text() for cert in certs))


def remove_truststore(paths: DataPaths, profile: str) -> None:
    """Delete every truststore file of a security profile (Amlen purges them with the profile)."""
    shutil.rmtree(paths.truststore / profile, ignore_errors=True)
    shutil.rmtree(paths.truststore / f"{profile}_capath", ignore_errors=True)
    (paths.truststore / f"{profile}_cafile.pem").unlink(missing_ok=True)


def trusted_certificates(paths: DataPaths, profile: str) -> list[str]:
    """File names in a profile's truststore, sorted."""
    directory = paths.truststore / profile
    return sorted(entry.name for entry in directory.iterdir()) if directory.is_dir() else []


def trust_profiles(paths: DataPaths) -> list[str]:
    """Security profiles that have a truststore directory."""
    if not paths.truststore.is_dir():
        return []
    return sorted(
        entry.name
        for entry in paths.truststore.iterdir()
        if entry.is_dir()
        and not entry.name.endswith("_capath")
        and not entry.name.endswith("_allowedClientCerts")
    )
