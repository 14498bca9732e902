"""The lab's one line in the hosts file: added and removed without changing a byte that is not the lab's.

The lab owns exactly one line, `<host_ip> <hostname>  # amlen-lab <lab_dir>`. The marker names the lab
directory, so two labs in two directories never remove each other's line, and it is parsed back strictly
(one space, two spaces, `# amlen-lab `, the directory to the end of the line): a line the user edited is
the user's.

python-hosts validates the lab's line and checks addresses, but its `write()` re-serialises every line, so
the file is edited here as bytes: BOM, LF/CRLF, tabs, comments, odd bytes and a missing final newline stay as
they are. Add-then-remove is byte-identical in every case: a line added to a file without a final newline is
written as `<eol><line>` with no terminator of its own, and removing an unterminated last line of ours takes
that `<eol>` back.

Writes go to a temporary file in the same directory (mode and owner copied, fsynced) renamed over the file.
Where rename cannot work (Docker bind-mounts /etc/hosts: EBUSY; EXDEV; EPERM) the full new content is written
in place. The file is re-read just before writing, so an edit made by someone else meanwhile is planned over,
not lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from lab.errors import HostsError
from lab.hostsfile import MARKER, Line, join_lines, line_ending, parse_line, parse_lines, real_path, replace_file
from lab.settings import Settings
from lab.values import default_hosts_file

__all__ = [
    "HostsOutcome",
    "HostsState",
    "add_hosts_entry",
    "hosts_status",
    "manual_instructions",
    "remove_hosts_entry",
]

_DENIED = frozenset({errno.EACCES, errno.EPERM})
# Someone else editing the file while we plan: re-plan on their content a few times, then give up.
_ATTEMPTS = 3


class HostsState(StrEnum):
    """Who makes the lab's host name resolve, as seen in the hosts file."""

    OURS_PRESENT = "ours_present"  # this lab's line is there and is the one resolvers use
    USER_PROVIDES = "user_provides"  # another line already maps the name to the lab's address
    ABSENT = "absent"  # nothing maps the name
    CONFLICT = "conflict"  # the first line for the name maps it to another address


@dataclass(frozen=True)
class HostsOutcome:
    """What an operation found or did; `message` says it in words for the report."""

    path: Path
    changed: bool
    state: HostsState
    message: str


def _wanted(settings: Settings) -> str:
    """The lab's line, validated by python-hosts."""
    lab_dir = str(settings.lab_dir)
    if "\n" in lab_dir or "\r" in lab_dir:
        raise HostsError(f"the lab directory {lab_dir!r} contains a line break", "use LAB_DIR without one")
    family = "ipv6" if _version(settings.host_ip) == 6 else "ipv4"
    comment = f"{MARKER} {lab_dir}"
    # Imported here: python-hosts pulls in urllib.request, and reading the file (`status`) needs none of it.
    from python_hosts import HostsEntry
    from python_hosts.exception import HostsEntryException

    try:
        HostsEntry(family, address=settings.host_ip, names=[settings.hostname], comment=comment)
    except HostsEntryException as exc:
        raise HostsError(f"'{settings.host_ip} {settings.hostname}' is not a valid hosts line: {exc!r}",
                         "check LAB_HOST_IP and LAB_HOSTNAME") from exc
    return f"{settings.host_ip} {settings.hostname}  # {comment}"


def _printable(text: str) -> str:
    """`text` with undecodable bytes (kept as surrogates) shown as U+FFFD, so printing it cannot fail."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _entry(settings: Settings) -> str:
    return f"{settings.host_ip} {settings.hostname}"


def _is_ours(line: Line, settings: Settings) -> bool:
    # settings.lab_dir resolves the path on every call: ask only for marked lines.
    return line.lab_dir is not None and line.lab_dir == str(settings.lab_dir)


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def _first_match(lines: list[Line], settings: Settings) -> int | None:
    """Index of the line resolvers use for the name: the first of the lab address's family that names it."""
    version = _version(settings.host_ip)
    for index, line in enumerate(lines):
        if settings.hostname in line.names and line.address and _version(line.address) == version:
            return index
    return None


def _without_ours(lines: list[Line], settings: Settings) -> list[Line]:
    kept = [line for line in lines if not _is_ours(line, settings)]
    if lines and _is_ours(lines[-1], settings) and not lines[-1].eol and kept:
        # An unterminated last line of ours follows the separator we gave a file without a final newline.
        last = kept[-1]
        kept[-1] = dataclasses.replace(last, raw=last.raw[: len(last.raw) - len(last.eol)], eol=b"")
    return kept


def _with_line(lines: list[Line], text: str, eol: bytes, *, before: int | None = None) -> list[Line]:
    new = list(lines)
    data = text.encode("utf-8", "surrogateescape")
    if before is not None:
        new.insert(before, parse_line(data + eol))
    elif new and not new[-1].eol:
        # No final newline: add a separator and leave ours unterminated, so removal takes the separator back.
        new[-1] = parse_line(new[-1].raw + eol)
        new.append(parse_line(data))
    else:
        new.append(parse_line(data + eol))
    return new


def _describe(lines: list[Line], settings: Settings) -> tuple[HostsState, str]:
    path, name, want_ip = settings.hosts_file, settings.hostname, settings.host_ip
    first = _first_match(lines, settings)
    if first is None:
        return HostsState.ABSENT, f"{path} has no line for {name}"
    line, number = lines[first], first + 1
    if _is_ours(line, settings) and line.address != want_ip:
        return HostsState.ABSENT, (
            f"line {number} of {path} is a stale line of the lab mapping {name} to {line.address}; "
            "adding replaces it"
        )
    if line.address != settings.host_ip:
        return HostsState.CONFLICT, f"line {number} of {path} maps {name} to {line.address}, not {want_ip}"
    if _is_ours(line, settings):
        return HostsState.OURS_PRESENT, f"line {number} of {path} is the lab's: '{line.text}'"
    if any(_is_ours(other, settings) and other.text == _wanted(settings) for other in lines):
        return HostsState.OURS_PRESENT, f"the lab's line is in {path}; line {number} above it maps {name} too"
    owner = f"the lab in {line.lab_dir}" if line.lab_dir else "not the lab's"
    return HostsState.USER_PROVIDES, f"line {number} of {path} maps {name} to {line.address} ({owner})"


def _plan_add(data: bytes, settings: Settings, force: bool) -> tuple[bytes, HostsState, str]:
    bom, lines = parse_lines(data)
    path, want, entry = settings.hosts_file, _wanted(settings), _entry(settings)
    ours = [line for line in lines if _is_ours(line, settings)]
    first = _first_match(lines, settings)
    resolves = first is not None and lines[first].address == settings.host_ip
    if len(ours) == 1 and ours[0].text == want and resolves:
        return data, HostsState.OURS_PRESENT, f"'{entry}' is already in {path}"
    stale = "".join(f"; removed the lab's stale line '{line.text}'" for line in ours if line.text != want)
    base = _without_ours(lines, settings)
    first = _first_match(base, settings)
    if first is None:
        new, message = _with_line(base, want, line_ending(lines)), f"added '{entry}' to {path}"
    elif base[first].address == settings.host_ip and base[first].lab_dir is None:
        return join_lines(bom, base), HostsState.USER_PROVIDES, (
            f"line {first + 1} of {path} already maps {settings.hostname} to {settings.host_ip}: "
            f"nothing added, nothing to remove later{stale}"
        )
    elif base[first].address == settings.host_ip:
        # Another lab's line: add ours too, so that lab's `down` cannot take our name away.
        new, message = _with_line(base, want, line_ending(lines)), f"added '{entry}' to {path}"
    elif not force:
        raise HostsError(
            f"line {first + 1} of {path} maps {settings.hostname} to {base[first].address}, "
            f"not {settings.host_ip}: '{_printable(base[first].text)}'",
            "change or remove that line, or put the lab's line above it (yours stays): "
            "`invoke up --force-hosts` or `invoke hosts --add --force`",
        )
    else:
        new = _with_line(base, want, line_ending(lines), before=first)
        message = (
            f"added '{entry}' to {path} above line {first + 2} ('{base[first].text}'), which is left as it "
            "is; resolvers use the first line"
        )
    return join_lines(bom, new), HostsState.OURS_PRESENT, message + stale


def _plan_remove(data: bytes, settings: Settings) -> tuple[bytes, HostsState, str]:
    bom, lines = parse_lines(data)
    ours = [line.text for line in lines if _is_ours(line, settings)]
    if not ours:
        state, _ = _describe(lines, settings)
        return data, state, f"no line of the lab in {settings.hosts_file}; nothing to remove"
    base = _without_ours(lines, settings)
    state, _ = _describe(base, settings)
    removed = ", ".join(f"'{text.split('  #', 1)[0]}'" for text in ours)
    return join_lines(bom, base), state, f"removed {removed} from {settings.hosts_file}"


def hosts_status(settings: Settings) -> HostsOutcome:
    """Which line, if any, makes the lab's host name resolve; reads the file and changes nothing."""
    path = settings.hosts_file
    try:
        data = _read(real_path(path), settings, write=False)
    except FileNotFoundError:
        return HostsOutcome(path, False, HostsState.ABSENT, f"{path} does not exist")
    state, message = _describe(parse_lines(data)[1], settings)
    return HostsOutcome(path, False, state, _printable(message))


def add_hosts_entry(settings: Settings, *, force: bool = False) -> HostsOutcome:
    """Make the lab's host name resolve to its address, adding the lab's marked line only when needed.

    A user's line that already maps the name to the address is used as it is (USER_PROVIDES: nothing to
    remove later). A user's line mapping it elsewhere is a HostsError, unless `force`, which adds the lab's
    line above theirs and leaves theirs alone. A stale line of this lab (crash, changed settings) is replaced.
    """
    try:
        return _edit(settings, lambda data: _plan_add(data, settings, force), "add", force=force)
    except FileNotFoundError:
        raise HostsError(f"{settings.hosts_file} does not exist",
                         "point LAB_HOSTS_FILE at an existing hosts file") from None


def remove_hosts_entry(settings: Settings) -> HostsOutcome:
    """Remove this lab directory's marked lines, and only those; succeeds when there is nothing to remove."""
    try:
        return _edit(settings, lambda data: _plan_remove(data, settings), "remove")
    except FileNotFoundError:
        path = settings.hosts_file
        return HostsOutcome(path, False, HostsState.ABSENT, f"{path} does not exist; nothing to remove")


def manual_instructions(settings: Settings, *, remove: bool = False, force: bool = False) -> str:
    """One line: the exact privileged command that does this step, and the line to add or delete by hand.

    The command is the `invoke` this process runs as (e.g. `.venv/bin/invoke`, which `sudo`'s PATH would not
    find), with the settings that locate the lab passed through `env`, because `sudo` drops the environment.
    """
    action = "--remove" if remove else "--add --force" if force else "--add"
    command = f"{_invoke_path()} hosts {action}"
    line = _wanted(settings)
    path = settings.hosts_file
    by_hand = f"delete this line from {path}" if remove else f"add this line to {path}"
    if sys.platform == "win32":
        return f"from an Administrator terminal run `{command}`, or {by_hand} by hand: {line}"
    env = {"LAB_DIR": str(settings.lab_dir)}
    defaults = Settings()
    if settings.hostname != defaults.hostname:
        env["LAB_HOSTNAME"] = settings.hostname
    if settings.host_ip != defaults.host_ip:
        env["LAB_HOST_IP"] = settings.host_ip
    if settings.hosts_file != default_hosts_file():
        env["LAB_HOSTS_FILE"] = str(settings.hosts_file)
    assignments = " ".join(shlex.quote(f"{key}={value}") for key, value in env.items())
    return f"run `sudo env {assignments} {command}`, or {by_hand} by hand: {line}"


def _invoke_path() -> str:
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    candidate = argv0 if argv0 and argv0.name in {"invoke", "inv"} else Path(sys.executable).parent / "invoke"
    if not candidate.exists():
        return "invoke"
    with contextlib.suppress(ValueError):
        candidate = candidate.absolute().relative_to(Path.cwd())
    return shlex.quote(str(candidate))


def _read(
    target: Path, settings: Settings, *, write: bool, remove: bool = False, force: bool = False
) -> bytes:
    try:
        data = target.read_bytes()
    except PermissionError as exc:
        raise HostsError(f"cannot read {settings.hosts_file}: permission denied",
                         manual_instructions(settings, remove=remove, force=force)) from exc
    except IsADirectoryError as exc:
        raise HostsError(f"{settings.hosts_file} is a directory, not a hosts file",
                         "point LAB_HOSTS_FILE at a file") from exc
    except FileNotFoundError:
        raise  # the callers decide: an error for add, nothing to do for remove and status
    except OSError as exc:
        raise HostsError(f"cannot read {settings.hosts_file}: {exc.strerror or exc}",
                         "check the file and LAB_HOSTS_FILE") from exc
    # os.access asks the kernel with the real uid: root may write a 0444 file, a user may not write their own.
    if write and not os.access(target, os.W_OK):
        raise HostsError(f"cannot change {settings.hosts_file}: permission denied",
                         manual_instructions(settings, remove=remove, force=force))
    return data


def _edit(settings: Settings, plan: Callable[[bytes], tuple[bytes, HostsState, str]], action: str,
          *, force: bool = False) -> HostsOutcome:
    path, target, remove = settings.hosts_file, real_path(settings.hosts_file), action == "remove"
    for _ in range(_ATTEMPTS):
        before = _read(target, settings, write=False)
        after, state, message = plan(before)
        message = _printable(message)
        if after == before:
            return HostsOutcome(path, False, state, message)
        # Read-modify-write at the last moment: an edit someone made since we read is planned over, not lost.
        if _read(target, settings, write=True, remove=remove, force=force) != before:
            continue
        try:
            replace_file(target, after)
        except OSError as exc:
            reason = "permission denied" if exc.errno in _DENIED else (exc.strerror or str(exc)).lower()
            raise HostsError(f"cannot change {path}: {reason}",
                             manual_instructions(settings, remove=remove, force=force)) from exc
        return HostsOutcome(path, True, state, message)
    raise HostsError(f"{path} kept changing while the lab was editing it", "run the command again")
