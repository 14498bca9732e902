"""One exception family for the lab: every error carries a message and a hint.

    LabError                 anything the user can fix; tasks.py prints it as one line
    ├── SettingsError        a LAB_* setting is invalid
    ├── CertError            certificates cannot be made, read or fail the Amlen lint
    ├── HostsError           the hosts file cannot be read/written, or holds a conflicting line
    ├── ContainerError       Docker is unreachable, an image is missing, a port is taken...
    ├── AmlenError           the Amlen admin API refused a request (carries the CWLNA code)
    ├── CheckError           a verification or diagnostic could not run
    ├── GuideError           `invoke guide` cannot write its Markdown or script
    ├── KitError             a connection kit cannot be written (unknown language, no certificate, edited file)
    ├── LockError            another `up`/`down` holds the lab directory
    └── WorkshopError        a roster line, a seat name or a workshop command cannot be carried out

Anything that is not a LabError is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "AmlenError",
    "CertError",
    "CheckError",
    "ContainerError",
    "GuideError",
    "HostsError",
    "KitError",
    "LabError",
    "LockError",
    "SettingsError",
    "WorkshopError",
]


class LabError(Exception):
    """A failure the user can act on: `message` says what, `hint` says what to do next."""

    def __init__(self, message: str, hint: str | None = None, *, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Extra lines shown under the one-line message, e.g. the tail of the server's log.
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class SettingsError(LabError):
    """A LAB_* setting (environment or .env) has an invalid value."""


class CertError(LabError):
    """A certificate or key cannot be made or read, or breaks one of Amlen's rules."""


class HostsError(LabError):
    """The hosts file cannot be changed safely, or a user's line conflicts with the lab's."""


class ContainerError(LabError):
    """The container runtime failed: Docker unreachable, image missing, port taken, container exited."""


class AmlenError(LabError):
    """Amlen's admin API answered with an error (or not at all)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        details: str = "",
    ) -> None:
        super().__init__(message, hint, details=details)
        self.code = code
        self.status = status


class CheckError(LabError):
    """A verification or diagnostic could not be run at all (not: a check that ran and failed)."""


class GuideError(LabError):
    """`invoke guide` cannot write the file it was asked to (--output, --script)."""


class LockError(LabError):
    """Another lab command holds the lab directory's lock."""


class WorkshopError(LabError):
    """A roster or seat name is unusable, or a workshop command cannot run (no lab, unknown seat)."""


class KitError(LabError):
    """A connection kit cannot be written: an unknown language, a client without a certificate, an edited file."""
