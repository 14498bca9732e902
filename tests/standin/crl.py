"""CRL profiles: an uploaded CRL that the security profiles naming the profile check client certificates against.

The rules are those of ``server_admin/src/validate_CRLProfile.c`` and the ``staging REVOCATION`` branch of
``server_main/scripts/certApply.sh``:

- create: the CRL must have been uploaded (``PUT /ima/v1/file/<name>``), else 400 CWLNA6184 naming the file; it
  must parse (``openssl crl``), else 400 CWLNA6180; it moves to ``data/certificates/CRL/<profile>/<file>`` and
  the upload is consumed.
- update with ``Overwrite: true``: a fresh upload replaces the stored CRL; without an upload the stored one stays
  (a no-op, 200), or 400 CWLNA6184 when there is none.
- update without ``Overwrite``: a different ``CRLSource`` is 400 CWLNA6186; the same source changes only the
  other properties and leaves any upload staged.
- a URL source (Amlen downloads it with curl) is 501 CWLNA0102 here: the stand-in has no network to fetch from.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from messages import AmlenError

_URL_PREFIXES = ("http://", "https://")


def crl_dir(certificates: Path, profile: str) -> Path:
    """Where a profile's CRL lives (Amlen's ``CRLDir``)."""
    return certificates / "CRL" / profile


def crl_file(certificates: Path, profile: str, source: str) -> Path:
    return crl_dir(certificates, profile) / source


def _parses(path: Path) -> bool:
    shown = subprocess.run(
        ["openssl", "crl", "-in", str(path), "-noout"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return shown.returncode == 0


def apply_crl_profile(
    certificates: Path,
    userfiles: Path,
    name: str,
    props: dict[str, Any],
    current: dict[str, Any] | None,
    overwrite: bool | None,
) -> None:
    """Stage the CRL of a created or updated CRL profile, or raise the AmlenError Amlen answers."""
    source = props["CRLSource"]
    if source.startswith(_URL_PREFIXES):
        raise AmlenError(501, 102)
    if "/" in source or source in (".", "..") or source != source.strip(" "):
        raise AmlenError(400, 134, "CRLSource", source)
    staged, stored = userfiles / source, crl_file(certificates, name, source)
    if current is not None and not overwrite:
        if current["CRLSource"] != source:
            raise AmlenError(400, 6186)
        return  # same source, no Overwrite: nothing is re-applied (validate_CRLProfile.c)
    if not staged.is_file():
        if overwrite and stored.is_file():
            return  # certApply.sh: Overwrite without a new upload keeps the stored CRL
        raise AmlenError(400, 6184, source)
    if not _parses(staged):
        raise AmlenError(400, 6180)
    directory = crl_dir(certificates, name)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    shutil.move(staged, stored)


def remove_crl_profile(certificates: Path, name: str) -> None:
    """Delete a profile's CRL directory (``imafileutils.sh deleteProfileDir``)."""
    shutil.rmtree(crl_dir(certificates, name), ignore_errors=True)
