"""The manual steps of `lab.learn.explain` as text: the guide in Markdown, one bash script, and `--explain` blocks.

All three show the same command text. The script adds only what running unattended needs: `set -euo
pipefail`, the two variables, a `retry` for listeners that take a moment, a check that what must fail does
fail, and a skip (with the reason) where a section needs something absent, such as the hosts entry. Commands
that need root or Docker stay comments in the script. Nothing here prints; `lab.report` does.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.errors import GuideError
from lab.files import atomic_write
from lab.learn.explain import guide_steps, teardown_steps
from lab.learn.manual import ADMIN_URL_VAR, OPEN_URL_VAR, PASSPHRASE_VAR, Command, ManualStep
from lab.settings import Settings

__all__ = ["Explanation", "GuideResult", "explanation", "guide_markdown", "guide_script", "write_guide"]


@dataclass(frozen=True)
class Explanation:
    """What `--explain` prints: a preamble once, then each plan step's manual block as the step starts."""

    preamble: str
    blocks: Mapping[str, str]  # plan step name -> text


@dataclass(frozen=True)
class GuideResult:
    """What `invoke guide` produced: the Markdown to print (None when it went to a file) and the files written."""

    markdown: str | None
    written: tuple[Path, ...]


def explanation(settings: Settings, *, down: bool = False) -> Explanation:
    """The manual equivalent of each step of `up`/`configure` (or, with `down`, of `down`), as text blocks."""
    grouped: dict[str, list[str]] = {}
    for step in teardown_steps(settings) if down else guide_steps(settings):
        grouped.setdefault(step.step, []).append(_block(step))
    blocks = {name: "\n\n".join(group) for name, group in grouped.items()}
    preamble = f"--explain: before each step, the same done by hand, with this lab's values and {ADMIN_URL_VAR}="
    preamble += settings.admin_base_url + "."
    if not down:
        preamble += (f" {PASSPHRASE_VAR} is a CA passphrase you choose (the lab's own is never printed); run the "
                     "commands in an empty directory. `invoke guide` writes them all as Markdown, "
                     "`invoke guide --script FILE` as one bash script.")
    return Explanation(preamble, blocks)


def guide_markdown(settings: Settings) -> str:
    """The whole walkthrough for this lab as Markdown: the guide's sections in order, with why and expect."""
    steps = guide_steps(settings)
    out = [
        "# The Amlen TLS guide, for this lab",
        "",
        f"What `invoke up` does, by hand, with this lab's values: host name `{settings.hostname}`, TLS endpoint "
        f"`{settings.tls_endpoint}` on port {settings.tls_port}, mutual-TLS endpoint `{settings.mtls_endpoint}` on "
        f"port {settings.mtls_port}, admin API `{settings.admin_base_url}`. Run the commands in an empty directory: "
        "they write their files there. Two values come from you:",
        "",
        "```sh",
        *_variables(settings),
        "```",
        "",
        "`invoke guide --script FILE` writes the same commands as one bash script; `invoke up --explain` prints "
        "them while the lab does each step. Each section names the `invoke up` step that does it for you and, "
        "for the admin API calls, the WebUI route that does the same.",
    ]
    chapter = ""
    number = 0
    for task, step in [*(("up", s) for s in steps), *(("down", s) for s in teardown_steps(settings))]:
        if step.chapter != chapter:
            chapter, number = step.chapter, number + 1
            out += ["", f"## {number}. {chapter}"]
        out += ["", f"### {step.title}", "", f"{step.why} *(`invoke {task}` step: {step.step})*"]
        if step.requires_note:
            out += ["", f"Needs: `{step.requires}`."]
        out += ["", "```sh", _commands(step.commands), "```"]
    return "\n".join(out) + "\n"


def guide_script(settings: Settings) -> str:
    """The guide's commands as one bash script (`set -euo pipefail`) that makes its files in the current directory."""
    lines = [
        "#!/usr/bin/env bash",
        f"# The Amlen TLS guide for the lab in {settings.lab_dir}: what `invoke up` does, by hand, as one script.",
        "# Written by `invoke guide --script` with the lab's settings as they were then:",
        f"# host name {settings.hostname}, TLS endpoint {settings.tls_endpoint} on {settings.tls_port}, "
        f"mutual-TLS endpoint {settings.mtls_endpoint} on {settings.mtls_port}.",
        "#",
        "# Run it in an empty directory (it writes its files there), against an Amlen that runs:",
        f"#   {PASSPHRASE_VAR}   the passphrase for the new CA key (required; never written into this file)",
        f"#   {ADMIN_URL_VAR}     Amlen's admin API once locked (default {settings.admin_base_url})",
        f"#   {OPEN_URL_VAR}      the same before it is locked (default {_open_url(settings)})",
        "# Commands that need root or Docker are comments: do them by hand, or let `invoke up` do them.",
        "set -euo pipefail",
        f': "${{{PASSPHRASE_VAR}:?set {PASSPHRASE_VAR} to a passphrase for the CA key}}"',
        f"export {PASSPHRASE_VAR}",
        f'{ADMIN_URL_VAR}="${{{ADMIN_URL_VAR}:-{settings.admin_base_url}}}"',
        f'{OPEN_URL_VAR}="${{{OPEN_URL_VAR}:-{_open_url(settings)}}}"',
        "",
        "# Run a command until it succeeds, at most 10 times, a second apart (a new listener can take a moment).",
        "retry() {",
        '  for _ in 1 2 3 4 5 6 7 8 9 10; do "$@" && return 0; sleep 1; done',
        "  return 1",
        "}",
    ]
    for step in guide_steps(settings):
        lines += ["", f"# --- {step.chapter}: {step.title} ({step.step})",
                  f"echo; echo {shlex.quote(f'== {step.chapter}: {step.title}')}"]
        body = [_script_command(command) for command in step.commands]
        if step.requires:
            skipped = f"skipped: {step.requires_note}"
            body = [f"if {step.requires}; then", *body, "else", f"  echo {shlex.quote(skipped)}", "fi"]
        lines += body
    lines += ["", "echo; echo 'done: every step of the guide ran as expected'"]
    return "\n".join(lines) + "\n"


def write_guide(settings: Settings, *, output: Path | None = None, script: Path | None = None) -> GuideResult:
    """`invoke guide`: the Markdown (to `output`, else returned for printing) and, with `script`, the script.

    Raises GuideError when a file cannot be written.
    """
    written: list[Path] = []
    markdown = guide_markdown(settings)
    if output is not None:
        _write(output, markdown, mode=0o644, flag="--output")
        written.append(output)
    if script is not None:
        _write(script, guide_script(settings), mode=0o755, flag="--script")
        written.append(script)
    return GuideResult(None if written else markdown, tuple(written))


# --- rendering ------------------------------------------------------------------------------------------


def _variables(settings: Settings) -> list[str]:
    return [
        f"export {PASSPHRASE_VAR}='choose a passphrase'   # for the CA key; never written down here",
        f"export {ADMIN_URL_VAR}={settings.admin_base_url}",
        f"export {OPEN_URL_VAR}={_open_url(settings)}   # the same, before the lab locks it",
    ]


def _open_url(settings: Settings) -> str:
    """The admin API as Amlen starts it: plain HTTP (the lab's own; an Amlen elsewhere: its URL)."""
    return settings.admin_url or f"http://127.0.0.1:{settings.admin_port}"


def _commands(commands: Iterable[Command]) -> str:
    """The commands as a person copies them: each with its WebUI route and expected output as comments."""
    parts = []
    route = ""
    for command in commands:
        lines = [f"# {command.comment}"] if command.comment else []
        if command.webui and command.webui != route:  # uploads and their POST share one dialog: named once
            lines.append(f"# WebUI: {command.webui}")
        route = command.webui
        lines.append(command.text)
        if command.expect:
            lines.append(f"# expect: {command.expect}")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def _block(step: ManualStep) -> str:
    """One manual step for the terminal, as shell text that still runs when pasted (a heredoc's end must stay
    at the start of its line, so nothing is indented): title and why as comments, then the commands."""
    return f"# -- by hand: {step.chapter} / {step.title}\n# {step.why}\n{_commands(step.commands)}"


def _script_command(command: Command) -> str:
    """One command as the script runs it (or as a comment, when it needs root or Docker)."""
    if not command.in_script:
        return "\n".join(f"# {line}" for line in command.text.splitlines())
    comments = [f"# WebUI: {command.webui}"] if command.webui else []
    text = f"retry {command.text}" if command.retry else command.text
    if command.must_fail:
        failed = f"expected to fail, but it worked: {command.text.splitlines()[0]}"
        text = f"if {text}; then\n  echo {shlex.quote(failed)} >&2; exit 1\nfi\necho 'refused, as expected'"
    return "\n".join([*comments, text])


def _write(path: Path, text: str, *, mode: int, flag: str) -> None:
    try:
        atomic_write(path, text.encode(), mode=mode)
    except OSError as exc:
        raise GuideError(
            f"cannot write {path}: {exc.strerror or exc}",
            f"choose a {flag} path in a directory you can write to",
        ) from exc
