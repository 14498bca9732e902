"""Where each file of the lab's certificate set lives: the guide's names in `settings.pki_dir`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.settings import Settings

__all__ = ["PkiPaths", "pki_paths"]


@dataclass(frozen=True)
class PkiPaths:
    """Where each file of the certificate set lives (all absolute)."""

    dir: Path
    ca_key: Path
    ca_cert: Path
    server_key: Path
    server_cert: Path
    passphrase_file: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """The (key, certificate) paths of client `name`."""
        return self.dir / f"{name}.key", self.dir / f"{name}.crt"


def pki_paths(settings: Settings) -> PkiPaths:
    """The guide's file names in `settings.pki_dir`; a generated CA passphrase sits in the lab directory."""
    pki = settings.pki_dir
    return PkiPaths(
        dir=pki,
        ca_key=pki / "myCA.key",
        ca_cert=pki / "myCA.pem",
        server_key=pki / "test.server.key",
        server_cert=pki / "test.server.crt",
        passphrase_file=settings.lab_dir / "ca-passphrase",
    )
