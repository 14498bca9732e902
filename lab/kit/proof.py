"""Running a kit's programs as their user would (`<lang>/run.sh [mtls|tls]`), for the workshop rehearsal and tests.

A program is run from a private copy of the kit, so nothing it builds (a virtual environment, node_modules,
class files, a Go binary) lands in a directory that is handed out. The Python program runs on the lab's own
interpreter (KIT_PYTHON: it has paho-mqtt 2), the others build with their toolchain; a toolchain that is not
installed is reported with the package that provides it, never run: found absent on PATH first, or told by
`run.sh` itself exiting 127 (the shell's "command not found") with its install line.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.files import atomic_write
from lab.kit.programs import program_files

__all__ = ["TOOLCHAINS", "ProgramRun", "Toolchain", "missing_toolchain", "proving_copy", "run_program"]

# Generous: a first build may fetch and compile a library, and the VM can pause for ~35 s.
RUN_TIMEOUT = 600.0
# A run.sh that cannot find its compiler or runtime exits 127, as the shell does for a command not found.
_NOT_FOUND = 127


@dataclass(frozen=True)
class Toolchain:
    """The commands a language's run.sh needs on PATH, and how to install them (Debian package names)."""

    commands: tuple[str, ...]
    install: str


TOOLCHAINS: Mapping[str, Toolchain] = {
    "java": Toolchain(("javac", "java"), "apt-get install default-jdk-headless libmqtt-client-java"),
    "node": Toolchain(("node", "npm"), "apt-get install nodejs npm"),
    "go": Toolchain(("go",), "apt-get install golang-go golang-github-eclipse-paho.mqtt.golang-dev"),
    "c": Toolchain(("cc",), "apt-get install gcc libpaho-mqtt-dev"),
    "python": Toolchain(("python3",), "apt-get install python3 python3-venv"),
}


@dataclass(frozen=True)
class ProgramRun:
    """One run of a kit's program: its exit code and last line, or the toolchain it lacked."""

    language: str
    mode: str
    returncode: int | None
    line: str
    seconds: float = 0.0
    missing: str | None = None  # the install hint when the toolchain is absent (then it did not run)

    @property
    def ok(self) -> bool:
        """Exit 0 and the contract's `received <topic>: <payload>` line."""
        return self.returncode == 0 and self.line.startswith("received ")


def missing_toolchain(language: str) -> str | None:
    """None when `language`'s toolchain is on PATH, else what is missing and how to install it."""
    chain = TOOLCHAINS.get(language)
    if chain is None:
        return None
    absent = [command for command in chain.commands if shutil.which(command) is None]
    return f"{', '.join(absent)} not found: {chain.install}" if absent else None


def proving_copy(kit_dir: Path, destination: Path, languages: Sequence[str]) -> Path:
    """A copy of the kit in `destination` (no zip, no build output) with the programs of `languages` added."""
    shutil.copytree(kit_dir, destination, ignore=shutil.ignore_patterns("*.zip", ".venv", "node_modules", "build"),
                    dirs_exist_ok=True)
    for name, (data, mode) in program_files(languages).items():
        atomic_write(destination / name, data, mode=mode)
    return destination


def run_program(kit_dir: Path, language: str, mode: str = "mtls", *, env: Mapping[str, str] | None = None,
                timeout: float = RUN_TIMEOUT) -> ProgramRun:
    """Run `<kit_dir>/<language>/run.sh <mode>` with `env` over the environment (KIT_* overrides)."""
    environment = {**os.environ, "KIT_PYTHON": sys.executable, **(env or {})}
    missing = missing_toolchain(language) or _unresolved_name(kit_dir, language, environment)
    if missing is not None:
        return ProgramRun(language, mode, None, "", missing=missing)
    started = time.monotonic()
    try:
        done = subprocess.run([str(kit_dir / language / "run.sh"), mode], capture_output=True, text=True,
                              env=environment, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return ProgramRun(language, mode, None, f"error: no answer within {timeout:.0f} s",
                          time.monotonic() - started)
    except OSError as exc:
        return ProgramRun(language, mode, None, f"error: cannot run {language}/run.sh: {exc.strerror}",
                          time.monotonic() - started)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    last = (lines[-1] if lines else (done.stderr.strip().splitlines() or [""])[-1]).strip()
    seconds = time.monotonic() - started
    if done.returncode == _NOT_FOUND:  # run.sh's own "toolchain not found" (the shell's code for a missing command)
        return ProgramRun(language, mode, None, last, seconds, missing=last.removeprefix("error: "))
    return ProgramRun(language, mode, done.returncode, last, seconds)


# Paho C sends (SNI) and verifies the host of the URI it dials, and cannot dial one address while verifying another
# name: its program dials KIT_SERVER_NAME, so that name must resolve to KIT_ADDRESS (the lab's hosts entry).
_DIALS_THE_NAME = frozenset({"c"})


def _unresolved_name(kit_dir: Path, language: str, environment: Mapping[str, str]) -> str | None:
    """Why `language`'s program cannot run here (its server name does not resolve to the address), or None."""
    if language not in _DIALS_THE_NAME:
        return None
    try:
        lines = (kit_dir / "connection.env").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None  # the program itself reports the missing file
    values = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    values.update({key: value for key, value in environment.items() if key.startswith("KIT_")})
    name, address = values.get("KIT_SERVER_NAME", ""), values.get("KIT_ADDRESS", "")
    try:
        if _addresses(name) & _addresses(address):
            return None
    except (OSError, UnicodeError):
        pass
    return (f"{name} does not resolve to {address}: Paho C dials the name it verifies, so its program needs "
            "the lab's hosts entry (`invoke up` without --no-hosts)")


def _addresses(host: str) -> set[str]:
    return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
