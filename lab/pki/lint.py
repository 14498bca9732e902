"""The lab's certificate set against the rules Amlen enforces at upload time, in words.

Checked before any upload, because Amlen's own answers mislead (an EC key is reported as "key file has a
password", CWLNA6191): an RSA server key, unencrypted, matching its certificate, a CA:TRUE trust anchor, the
host name in the SAN, a chain that verifies, dates.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from lab.errors import CertError
from lab.pki.chain import Severity, presented_findings, verify_path
from lab.pki.info import (
    EKU_NAMES,
    covers_hostname,
    dns_names,
    extended_key_usage,
    is_ca,
    is_issued_by,
    key_kind,
    key_matches,
)
from lab.pki.paths import pki_paths
from lab.settings import Settings

__all__ = ["check_certificates", "lint_certificates"]


def lint_certificates(settings: Settings) -> list[str]:
    """Problems with the lab's certificate set under Amlen's rules, in words; empty when all is fine.

    Checked before any upload, because Amlen's own answers mislead (an EC key is reported as
    "key file has a password", CWLNA6191). Every problem starts with the file's name.
    """
    paths = pki_paths(settings)
    problems: list[str] = []
    ca = _load_cert(paths.ca_cert, problems)
    if ca is not None:
        if not is_ca(ca):
            problems.append(
                f"{paths.ca_cert.name}: not a CA certificate (needs basicConstraints CA:TRUE); "
                "Amlen refuses it as a trusted certificate (CWLNA6183)"
            )
        problems += _date_problems(paths.ca_cert.name, ca)
    issuer = ca
    if paths.two_tier:
        issuer = _load_cert(paths.intermediate_cert, problems)
        if issuer is not None and ca is not None:
            problem = verify_path([issuer], [ca])
            if problem is not None:
                problems.append(f"{paths.intermediate_cert.name}: {problem}")
    leaves = [] if settings.own_server else [(paths.server_key, paths.server_cert, True)]
    leaves += [(*paths.client(name), False) for name in dict.fromkeys(settings.client_names)]
    for key_path, cert_path, server in leaves:
        cert = _load_cert(cert_path, problems)
        key = _load_leaf_key(key_path, problems)
        if cert is None:
            continue
        label = cert_path.name
        if key is not None and not key_matches(key, cert):
            problems.append(f"{label}: does not match the key {key_path.name} (Amlen: CWLNA6189)")
        problems += _date_problems(label, cert)
        purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        ekus = extended_key_usage(cert)
        if ekus and EKU_NAMES[purpose] not in ekus:
            problems.append(f"{label}: extendedKeyUsage is {', '.join(ekus)}, without {EKU_NAMES[purpose]}")
        if server and not covers_hostname(dns_names(cert), settings.hostname):
            problems.append(
                f"{label}: its SAN ({', '.join(dns_names(cert)) or 'none'}) does not contain the host name "
                f"{settings.hostname}, so clients refuse the server"
            )
        if issuer is not None:
            problems += _chain_problems(label, cert, issuer)
    if ca is not None:
        problems += _served_chain_problems(settings, ca)
    return problems


def _served_chain_problems(settings: Settings, root: x509.Certificate) -> list[str]:
    """The chain files, as the server serves them and clients present them, verified the way Amlen does."""
    paths = pki_paths(settings)
    if settings.own_server:
        from lab.pki.own import load_own_server

        try:
            load_own_server(settings)
        except CertError as exc:
            return [f"{paths.served_cert.name}: {exc.message}"]
        return []
    files = [paths.served_cert] if paths.served_cert != paths.server_cert else []
    files += [paths.client_presented(name)[1] for name in dict.fromkeys(settings.client_names) if paths.two_tier]
    problems = []
    for path in files:
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError):
            problems.append(f"{path.name}: missing or not PEM (`invoke certs` writes it)")
            continue
        for finding in presented_findings(certs, [root], trust_name=paths.ca_cert.name):
            if finding.severity is not Severity.OK:
                problems.append(f"{path.name}: {finding.words}")
    return problems


def check_certificates(settings: Settings) -> None:
    """Raise CertError naming the first problems `lint_certificates` finds; return quietly if none."""
    problems = lint_certificates(settings)
    if not problems:
        return
    paths = pki_paths(settings)
    if settings.own_server and len(problems) == 1 and problems[0].startswith(paths.served_cert.name):
        # Your own certificate: its one-line error (and hint) says it best.
        from lab.pki.own import load_own_server

        load_own_server(settings)
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    ca_broken = any(p.startswith((paths.ca_cert.name, paths.intermediate_cert.name)) for p in problems)
    raise CertError(
        f"the certificates in {settings.pki_dir} break Amlen's rules: " + "; ".join(problems[:3]) + more,
        "run `invoke certs --new-ca` to replace the CA and everything it signed"
        if ca_broken
        else "run `invoke certs` to re-issue what is wrong; it keeps the CA",
        details="\n".join(f"  - {problem}" for problem in problems) if len(problems) > 3 else "",
    )


# --- helpers --------------------------------------------------------------------------------------------


def _load_cert(path: Path, problems: list[str]) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        problems.append(f"{path.name}: missing")
    except OSError as exc:
        problems.append(f"{path.name}: cannot be read ({exc.strerror})")
    except ValueError:
        problems.append(f"{path.name}: not a PEM certificate (Amlen: CWLNA6180)")
    return None


def _load_leaf_key(path: Path, problems: list[str]) -> rsa.RSAPrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        problems.append(f"{path.name}: missing")
        return None
    except OSError as exc:
        problems.append(f"{path.name}: cannot be read ({exc.strerror})")
        return None
    except TypeError:
        problems.append(f"{path.name}: encrypted; Amlen crashes on encrypted keys, it must be unencrypted")
        return None
    except ValueError:
        problems.append(f"{path.name}: not a PEM private key (Amlen: CWLNA6190)")
        return None
    if not isinstance(key, rsa.RSAPrivateKey):
        kind, _ = key_kind(key.public_key())
        problems.append(f"{path.name}: an {kind} key; Amlen accepts only RSA keys (it reports CWLNA6191)")
        return None
    return key


def _date_problems(label: str, cert: x509.Certificate) -> list[str]:
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        return [f"{label}: expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"]
    if cert.not_valid_before_utc > now:
        start = f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        return [f"{label}: not valid yet (from {start}; check the clock)"]
    return []


def _chain_problems(label: str, cert: x509.Certificate, ca: x509.Certificate) -> list[str]:
    if cert.issuer != ca.subject:
        issuer, lab_ca = cert.issuer.rfc4514_string(), ca.subject.rfc4514_string()
        return [f"{label}: issued by {issuer!r}, not by the lab CA {lab_ca!r}"]
    problems = []
    aki, ski = _authority_key_id(cert), _subject_key_id(ca)
    if aki is not None and ski is not None and aki != ski:
        problems.append(f"{label}: its authority key id is not the lab CA's subject key id (another CA's)")
    if not is_issued_by(cert, ca):
        problems.append(f"{label}: its signature does not verify with the lab CA's key")
    return problems


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None
