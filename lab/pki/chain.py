"""Certificate chains as Amlen and its clients see them: ordered, verified to a root, and diagnosed in words.

One place for the chain rules that the lint (before an upload), `doctor` (what an endpoint presents),
`--explain` and `invoke guide` (what to upload, and why) all use:

- Amlen loads a certificate profile's file with `SSL_CTX_use_certificate_chain_file`: it serves the file whole,
  leaf first, then each certificate's issuer. A client that trusts only the root needs every intermediate from
  the server; the root itself it has (sending it too is harmless, and helps clients that trust on first use).
- Amlen verifies client chains with `SSL_CTX_load_verify_locations` and no `X509_V_FLAG_PARTIAL_CHAIN`: a chain
  counts only when it ends at a trusted self-signed root. So `verify_path` never stops at a trusted
  intermediate either, and the lab's own TLS contexts clear the partial-chain flag (Python >= 3.13 sets it in
  `ssl.create_default_context`).

Everything here is pure: certificates in, findings out. No file is read and nothing is printed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509

from lab.pki.info import common_name, is_ca, is_issued_by, path_length
from lab.pki.info import display_name as _name
from lab.pki.paths import PkiPaths

__all__ = [
    "TRUST_ROOT_ONLY",
    "Finding",
    "Ordered",
    "Severity",
    "after_leaf",
    "chain_words",
    "is_self_signed",
    "order_bundle",
    "presented_findings",
    "role",
    "verify_path",
]

# Why the mutual profiles trust the root alone (said by `--explain`, the guide and doctor).
TRUST_ROOT_ONLY = (
    "Only the root, myCA.pem, is a trusted certificate. Amlen verifies client chains without partial-chain mode: "
    "a chain counts only when it ends at a trusted self-signed root, so trusting the intermediate alone would "
    "admit nobody, and trusting it beside the root would only admit clients that send their leaf alone. The "
    "lab's clients send leaf + intermediate (their .chain.pem files), as clients of a real PKI do, and the "
    "broker trusts one root: a new intermediate under it needs no change on the broker."
)


def after_leaf(paths: PkiPaths, *, server: bool, serve_root: bool) -> list[Path]:
    """What a lab leaf's chain file carries after the leaf, in serving order: the intermediate (LAB_PKI=
    intermediate), then, for the server with LAB_SERVE_ROOT, the root. Empty: the leaf goes alone.

    The one rule for the files the lab writes (`lab.pki.leaves`) and the commands the guide prints."""
    files = [paths.intermediate_cert] if paths.two_tier else []
    return files + ([paths.ca_cert] if server and serve_root else [])


class Severity(StrEnum):
    """How bad a finding about a chain is (the doctor's OK / WARN / FAIL)."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    """One thing said about a chain, in words, with what to do about it."""

    severity: Severity
    words: str
    hint: str = ""


@dataclass(frozen=True)
class Ordered:
    """A bundle of certificates put in serving order: the leaf, then each one's issuer.

    `missing_issuer` names the issuer the last certificate needs when it is not self-signed and no
    certificate of the bundle signed it (a client must have it, or the chain breaks); `unused` are
    certificates of the bundle that are not on the leaf's path.
    """

    chain: tuple[x509.Certificate, ...]
    reordered: bool
    unused: tuple[x509.Certificate, ...]
    missing_issuer: x509.Name | None

    @property
    def has_root(self) -> bool:
        """Does the chain end at a self-signed root?"""
        return bool(self.chain) and is_self_signed(self.chain[-1])


def is_self_signed(cert: x509.Certificate) -> bool:
    """A root: its own issuer by name, and its own key made its signature."""
    return cert.issuer == cert.subject and is_issued_by(cert, cert)


def role(cert: x509.Certificate, position: int = 0) -> str:
    """"leaf", "intermediate" or "root", as a person names a certificate of a chain."""
    if is_self_signed(cert):
        return "root"
    return "leaf" if position == 0 else "intermediate"


def chain_words(chain: Sequence[x509.Certificate]) -> str:
    """The chain as `openssl s_client -showcerts` lists it, in a line: "leaf CN=a (issuer CN=b), then ..."."""
    parts = []
    for position, cert in enumerate(chain):
        name = common_name(cert) or cert.subject.rfc4514_string()
        issuer = _name(cert.issuer)
        parts.append(f"{role(cert, position)} {name!r} (issuer {issuer!r})")
    return ", then ".join(parts) if parts else "no certificate"


def order_bundle(certs: Sequence[x509.Certificate]) -> Ordered:
    """Put a PEM bundle in serving order: the leaf (the one certificate that issues none of the others; else
    the first), then its issuer, and so on while the bundle has it."""
    if not certs:
        return Ordered((), False, (), None)
    leaf = _find_leaf(certs)
    path = [leaf]
    pool = [c for c in certs if c is not leaf]
    while not is_self_signed(path[-1]):
        issuer = next((c for c in pool if is_issued_by(path[-1], c)), None)
        if issuer is None:
            break
        path.append(issuer)
        pool.remove(issuer)
    missing = None if is_self_signed(path[-1]) else path[-1].issuer
    reordered = list(certs[: len(path)]) != path
    return Ordered(tuple(path), reordered, tuple(pool), missing)


def verify_path(chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate],
                *, at: dt.datetime | None = None) -> str | None:
    """Why `chain` (leaf first) does not verify against the self-signed `anchors`, in words; None when it does.

    OpenSSL's rules as Amlen applies them, partial chains refused: each certificate is signed by the next (the
    last by an anchor, or it is the anchor), every issuer is a CA whose path length allows what hangs below
    it, every date is current.
    """
    if not chain:
        return "no certificate"
    now = at or dt.datetime.now(dt.UTC)
    roots = [a for a in anchors if is_self_signed(a)]
    path = list(chain)
    if not is_self_signed(path[-1]):
        root = next((r for r in roots if is_issued_by(path[-1], r)), None)
        if root is None:
            last = path[-1]
            trusted_intermediate = any(a.subject == last.issuer for a in anchors if a not in roots)
            if trusted_intermediate:
                return (f"the chain ends at {_name(last.issuer)!r}, which is trusted but not a root: without "
                        "partial-chain mode a chain must reach a trusted self-signed root")
            return f"nobody trusted signed {_name(last.subject)!r} (its issuer {_name(last.issuer)!r} is unknown)"
        path.append(root)
    elif path[-1] not in roots:
        return f"the chain ends at the root {_name(path[-1].subject)!r}, which is not trusted"
    for position, cert in enumerate(path):
        if cert.not_valid_after_utc <= now:
            return f"{_name(cert.subject)!r} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        if cert.not_valid_before_utc > now:
            return f"{_name(cert.subject)!r} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        if position + 1 < len(path):
            issuer = path[position + 1]
            if not is_issued_by(cert, issuer):
                return f"{_name(cert.subject)!r} is not signed by {_name(issuer.subject)!r}, the next in the chain"
            if not is_ca(issuer):
                return f"{_name(issuer.subject)!r} signed {_name(cert.subject)!r} but is not a CA (CA:FALSE)"
            limit = path_length(issuer)
            below = position  # CA certificates below this issuer, not counting the leaf
            if limit is not None and below > limit:
                return (f"{_name(issuer.subject)!r} allows {limit} CA below it (pathlen {limit}), "
                        f"and {below} hang below it")
    return None


def presented_findings(presented: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate],
                       *, trust_name: str = "myCA.pem") -> list[Finding]:
    """What is wrong (or worth saying) about a chain a server presents, for clients that trust only `anchors`.

    The broken cases a real CA's certificate runs into, each in words with a hint: the leaf alone while its
    issuer is not a trusted root; intermediates out of order; a leaf its chain does not sign. The root sent
    too is fine, and said, with who needs it. Then the whole chain is verified as a client would.
    """
    if not presented:
        return [Finding(Severity.FAIL, "the server presented no certificate", "is this a TLS endpoint?")]
    leaf, rest = presented[0], list(presented[1:])
    findings: list[Finding] = []
    roots = [a for a in anchors if is_self_signed(a)]
    signed_by_anchor = any(is_issued_by(leaf, r) for r in roots)
    if not rest and not signed_by_anchor and not is_self_signed(leaf):
        findings.append(Finding(
            Severity.FAIL,
            f"the leaf is sent alone, and its issuer {_name(leaf.issuer)!r} is not the trusted root: clients that "
            f"trust only {trust_name} will fail (they cannot build the chain, and the error names neither)",
            "upload leaf + intermediate (a file with the server certificate followed by the intermediate "
            "certificate(s)); `invoke up` uploads the lab's test.server.chain.pem",
        ))
    elif rest and not is_issued_by(leaf, rest[0]):
        if any(is_issued_by(leaf, c) for c in rest):
            order = order_bundle(presented)
            findings.append(Finding(
                Severity.WARN,
                f"the intermediates are in the wrong order ({chain_words(presented)}): TLS 1.2 wants each "
                "certificate followed by its issuer; OpenSSL clients re-order, stricter ones fail",
                f"upload them in issuer order: {chain_words(order.chain)}",
            ))
        elif not signed_by_anchor:
            findings.append(Finding(
                Severity.FAIL,
                f"the leaf {_name(leaf.subject)!r} is not signed by the certificate sent after it "
                f"({_name(rest[0].subject)!r}), nor by any other sent: the chain file belongs to another certificate",
                "rebuild the file: the leaf, then its issuer's certificate; `invoke up` uploads the lab's own",
            ))
    if len(presented) > 1 and is_self_signed(presented[-1]):
        findings.append(Finding(
            Severity.OK,
            f"the root {_name(presented[-1].subject)!r} is sent too: only clients that trust on first use (they "
            "pin what they see) need it; the others have it already and ignore it",
        ))
    order = order_bundle(presented)
    problem = verify_path(order.chain, anchors)
    if problem is not None and not any(f.severity is Severity.FAIL for f in findings):
        findings.append(Finding(Severity.FAIL, f"a client trusting only {trust_name} refuses it: {problem}",
                                "`invoke certs` and `invoke up` bring the certificates back in line"))
    return findings


# --- helpers --------------------------------------------------------------------------------------------


def _find_leaf(certs: Sequence[x509.Certificate]) -> x509.Certificate:
    """The certificate that signed none of the others (a non-CA first); the first when that is ambiguous."""
    issuers = {id(c) for c in certs for other in certs if other is not c and is_issued_by(other, c)}
    candidates = [c for c in certs if id(c) not in issuers]
    non_ca = [c for c in candidates if not is_ca(c)]
    return (non_ca or candidates or list(certs))[0]

