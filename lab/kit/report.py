"""Printing a kit's outcome for people (lab.report's console; nothing else in lab.kit prints)."""

from __future__ import annotations

from collections.abc import Iterable

from lab.errors import KitError
from lab.kit.writer import KitResult
from lab.report import console

__all__ = ["print_kit", "print_refreshed"]


def print_kit(result: KitResult) -> None:
    """Where the kit is, what changed, and the command that proves it."""
    state = f"{len(result.changed)} file(s) written" if result.changed else "up to date, no file changed"
    form = ", legacy PKCS#12" if result.legacy_p12 else ""
    console.print(f"kit for {result.name}: {result.dir} ({state}{form})", markup=False, soft_wrap=True)
    console.print(f"zip: {result.zip}", markup=False, soft_wrap=True)
    if result.languages:
        first = result.languages[0]
        console.print(f"prove it: {result.dir / first / 'run.sh'}   (each language: <lang>/run.sh [mtls|tls]; "
                      "README.md says more)", markup=False, soft_wrap=True)


def print_refreshed(results: Iterable[KitResult | KitError]) -> None:
    """One line per existing kit brought up to date after certificates changed (nothing when none changed)."""
    for result in results:
        if isinstance(result, KitError):
            console.print(f"kit not refreshed: {result}", markup=False, soft_wrap=True)
        elif result.changed:
            console.print(f"kit for {result.name} refreshed: {', '.join(result.changed)}", markup=False,
                          soft_wrap=True)
