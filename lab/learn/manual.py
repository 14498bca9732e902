"""The guide's steps by hand, as data: a command, a section of commands, and the variables the reader sets.

`lab.learn.explain` lists the sections for this lab; `lab.learn.explain_pki` writes its certificate sections;
`lab.learn.guide`
renders them as Markdown, a bash script and `--explain` blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ADMIN_URL_VAR", "KEY_PASSWORD_VAR", "OPEN_URL_VAR", "PASSPHRASE_VAR", "Command", "ManualStep"]

PASSPHRASE_VAR = "LAB_CA_PASSPHRASE"
KEY_PASSWORD_VAR = "LAB_SERVER_KEY_PASSWORD"
ADMIN_URL_VAR = "AMLEN_ADMIN_URL"
# Amlen's admin API before the lab locks it (plain HTTP): readiness and the first securing calls.
OPEN_URL_VAR = "AMLEN_OPEN_URL"


@dataclass(frozen=True)
class Command:
    """One shell command (it may span lines), what it is for, and what it prints when all is well."""

    text: str
    comment: str = ""
    webui: str = ""  # the WebUI route that does the same, e.g. "Server > Security Settings > Certificate Profiles"
    expect: str = ""
    in_script: bool = True  # False: shown, never run by the script (it needs root or Docker)
    retry: bool = False  # a listener just created may take a moment: the script tries again
    must_fail: bool = False  # a proof by refusal: the script stops when this succeeds


@dataclass(frozen=True)
class ManualStep:
    """One section of the guide: the plan step that does it, a title, why, and the commands."""

    step: str  # the plan step's name, e.g. "amlen configuration"
    chapter: str  # the guide's section it belongs to, e.g. "Mutual TLS"
    title: str
    why: str
    commands: tuple[Command, ...]
    requires: str = ""  # a shell condition the script checks first; unmet, it skips the section, saying why
    requires_note: str = ""
