"""Where each file of the lab's certificate set lives: the guide's names in `settings.pki_dir`.

`LAB_PKI=intermediate` adds an intermediate CA (`myIntermediateCA.key` / `.pem`) and, beside every leaf it
signs, a chain file (`<name>.chain.pem`: the leaf, then the intermediate) that clients present and the server
serves. What Amlen is given (`served_cert`) is the plain `test.server.crt` only when there is nothing to send
after it; otherwise the chain file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.settings import Settings

__all__ = ["PkiPaths", "chain_of", "pki_paths"]


def chain_of(cert: Path) -> Path:
    """The chain file beside a leaf certificate: `seat.07.crt` -> `seat.07.chain.pem`."""
    return cert.with_name(f"{cert.stem}.chain.pem")


@dataclass(frozen=True)
class PkiPaths:
    """Where each file of the certificate set lives (all absolute), and which ones are in use."""

    dir: Path
    ca_key: Path
    ca_cert: Path
    server_key: Path
    server_cert: Path
    passphrase_file: Path
    intermediate_key: Path
    intermediate_cert: Path
    two_tier: bool  # LAB_PKI=intermediate: leaves come from the intermediate, chains go with them
    served_cert: Path  # what the certificate profile names: the leaf, or the leaf's chain
    served_key: Path  # the server key Amlen is given (the user's own with LAB_SERVER_KEY)
    server_trust: Path | None  # what clients trust to verify the server; None: the system's trust store

    @property
    def server_chain(self) -> Path:
        """The server's chain file: leaf, then intermediate(s), then (LAB_SERVE_ROOT) the root."""
        return chain_of(self.server_cert)

    @property
    def server_ca(self) -> Path:
        """The root copied from LAB_SERVER_CERT, for the lab's clients (when the file carries one)."""
        return self.dir / "server-ca.pem"

    def client(self, name: str) -> tuple[Path, Path]:
        """The (key, certificate) paths of client `name`."""
        return self.dir / f"{name}.key", self.dir / f"{name}.crt"

    def client_presented(self, name: str) -> tuple[Path, Path]:
        """(key, what the client presents): its chain file in the two-tier PKI, else its certificate."""
        key, cert = self.client(name)
        return key, chain_of(cert) if self.two_tier else cert


def pki_paths(settings: Settings) -> PkiPaths:
    """The guide's file names in `settings.pki_dir`; a generated CA passphrase sits in the lab directory."""
    pki = settings.pki_dir
    server_cert = pki / "test.server.crt"
    two_tier = settings.pki == "intermediate"
    chained = two_tier or settings.serve_root or settings.own_server
    server_ca = pki / "server-ca.pem"
    trust: Path | None = pki / "myCA.pem"
    if settings.own_server:
        trust = settings.trust_ca or (server_ca if server_ca.is_file() else None)
    return PkiPaths(
        dir=pki,
        ca_key=pki / "myCA.key",
        ca_cert=pki / "myCA.pem",
        server_key=pki / "test.server.key",
        server_cert=server_cert,
        passphrase_file=settings.lab_dir / "ca-passphrase",
        intermediate_key=pki / "myIntermediateCA.key",
        intermediate_cert=pki / "myIntermediateCA.pem",
        two_tier=two_tier,
        served_cert=chain_of(server_cert) if chained else server_cert,
        served_key=settings.server_key or pki / "test.server.key",
        server_trust=trust,
    )
