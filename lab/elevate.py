"""One step as root: the hosts-file line, through `sudo`, when the user may not write the hosts file.

Everything else in the lab runs as the user. Like DDEV, `up` says why it needs root, lets `sudo` ask for the
password in the terminal, and runs exactly one small command as root: this module's `main`, which adds or
removes the lab's marked line with `lab.hosts` and prints the outcome as one JSON line. The root side gets
every value on its command line (no `.env`, no environment: sudo drops it anyway), runs Python with `-B` so
no root-owned bytecode lands in the user's tree, and writes nothing but the hosts file.

Without a terminal (CI, a pipe) or without sudo, nothing is escalated: the caller shows the manual command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

from lab.errors import HostsError, LabError
from lab.hosts import HostsOutcome, HostsState, add_hosts_entry, manual_instructions, remove_hosts_entry
from lab.settings import Settings

__all__ = ["hosts_as_root", "main", "needs_root", "prepare_sudo"]

Action = Literal["add", "remove"]


def needs_root(settings: Settings) -> bool:
    """True when this user may not write the hosts file but sudo can, from a terminal."""
    path = Path(os.path.realpath(settings.hosts_file))
    if not path.exists() or os.access(path, os.W_OK):
        return False
    return _can_sudo()


def _can_sudo() -> bool:
    interactive = sys.stdin is not None and sys.stdin.isatty()
    return os.name == "posix" and interactive and shutil.which("sudo") is not None


def prepare_sudo(settings: Settings, action: Action = "add") -> None:
    """Let sudo ask for the password now (before anything is created), so the hosts step does not stall.

    A refusal (wrong password, not in sudoers) is a HostsError with the manual way.
    """
    what = "add" if action == "add" else "remove"
    prompt = f"[sudo] password for %u (to {what} one line of {settings.hosts_file}): "
    try:
        result = subprocess.run(["sudo", "-v", "-p", prompt], check=False)
    except OSError as exc:
        raise HostsError(f"cannot run sudo: {exc.strerror or exc}",
                         manual_instructions(settings, remove=action == "remove")) from exc
    if result.returncode != 0:
        raise HostsError(f"sudo did not allow changing {settings.hosts_file}",
                         manual_instructions(settings, remove=action == "remove"))


def hosts_as_root(settings: Settings, action: Action, *, force: bool = False) -> HostsOutcome:
    """Add or remove the lab's line as root (`sudo python -B -m lab.elevate ...`); the outcome as data."""
    command = ["sudo", "--", sys.executable, "-B", "-m", "lab.elevate", action,
               "--hosts-file", str(settings.hosts_file), "--lab-dir", str(settings.lab_dir),
               "--hostname", settings.hostname, "--address", settings.host_ip]
    if force:
        command.append("--force")
    try:
        # stdout carries the JSON outcome; sudo's prompt goes to the terminal, errors to stderr.
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostsError(f"cannot run sudo: {exc}", manual_instructions(settings, remove=action == "remove")) \
            from exc
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise HostsError(f"sudo {action} of the hosts line failed (exit code {result.returncode})",
                         manual_instructions(settings, remove=action == "remove", force=force)) from None
    if "error" in answer:
        raise HostsError(answer["error"], answer.get("hint"))
    return HostsOutcome(settings.hosts_file, bool(answer["changed"]), HostsState(answer["state"]),
                        str(answer["message"]) + " (through sudo)")


def main(argv: list[str] | None = None) -> int:
    """The root side: `python -B -m lab.elevate add|remove --hosts-file F --lab-dir D --hostname H --address A`."""
    parser = argparse.ArgumentParser(prog="python -m lab.elevate", description=__doc__)
    parser.add_argument("action", choices=("add", "remove"))
    parser.add_argument("--hosts-file", required=True, type=Path)
    parser.add_argument("--lab-dir", required=True, type=Path)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        settings = Settings(dir=args.lab_dir, hosts_file=args.hosts_file, hostname=args.hostname,
                            host_ip=args.address)
        outcome = (add_hosts_entry(settings, force=args.force) if args.action == "add"
                   else remove_hosts_entry(settings))
    except LabError as exc:
        print(json.dumps({"error": exc.message, "hint": exc.hint}))
        return 1
    print(json.dumps({"changed": outcome.changed, "state": outcome.state.value, "message": outcome.message}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
