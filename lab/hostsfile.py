"""The hosts file as bytes: lines parsed and joined byte-exactly (BOM, CRLF, no final newline), and the file
replaced atomically, in place where rename cannot work (a Docker bind mount). `lab.hosts` decides what to write.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BOM = b"\xef\xbb\xbf"
MARKER = "amlen-lab"
# Strict on purpose: a line that does not match exactly is not ours and is never removed.
_MARKED = re.compile(r"^(?P<address>\S+) (?P<name>[^\s#]+)  # amlen-lab (?P<lab_dir>\S.*)$")
_LINES = re.compile(rb"[^\n]*\n|[^\n]+\Z")
# Errors from rename/mkstemp/fchown that mean "this file cannot be replaced", not "you may not write it".
_NO_RENAME = frozenset({errno.EBUSY, errno.EXDEV, errno.EPERM, errno.EACCES, errno.EROFS})


@dataclass(frozen=True)
class Line:
    raw: bytes  # as stored, terminator included
    eol: bytes  # b"\n", b"\r\n" or b"" (last line without a final newline)
    text: str  # without terminator; undecodable bytes kept as surrogates
    fields: tuple[str, ...]  # before any comment, split on blanks
    lab_dir: str | None  # for a line carrying the amlen-lab marker

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name.lower() for name in self.fields[1:])

    @functools.cached_property
    def address(self) -> str | None:
        """The normalised address when the line maps names (worked out only for lines that matter: blocklists
        of 100 000 lines exist)."""
        if not self.fields:
            return None
        try:
            return str(ipaddress.ip_address(self.fields[0]))
        except ValueError:
            return None


def parse_line(raw: bytes) -> Line:
    eol = b"\r\n" if raw.endswith(b"\r\n") else b"\n" if raw.endswith(b"\n") else b""
    text = raw[: len(raw) - len(eol)].decode("utf-8", "surrogateescape")
    # Split ourselves rather than with HostsEntry.str_to_hostentry: python-hosts drops a whole line when one
    # alias is not a valid host name (`my_box`), but the resolver still uses the line's other names.
    fields = tuple(text.split("#", 1)[0].split())
    marked = _MARKED.match(text) if MARKER in text else None
    return Line(raw, eol, text, fields, marked["lab_dir"] if marked else None)


def parse_lines(data: bytes) -> tuple[bytes, list[Line]]:
    bom = BOM if data.startswith(BOM) else b""
    return bom, [parse_line(raw) for raw in _LINES.findall(data[len(bom) :])]


def join_lines(bom: bytes, lines: list[Line]) -> bytes:
    return bom + b"".join(line.raw for line in lines)


def line_ending(lines: list[Line]) -> bytes:
    """The file's own line ending; the platform's for a file without one."""
    crlf = sum(line.eol == b"\r\n" for line in lines)
    lf = sum(line.eol == b"\n" for line in lines)
    if crlf or lf:
        return b"\r\n" if crlf > lf else b"\n"
    return b"\r\n" if sys.platform == "win32" else b"\n"


def real_path(path: Path) -> Path:
    # Replace the file a symlink points to, never the symlink itself (some systems link /etc/hosts elsewhere).
    return Path(os.path.realpath(path))


def replace_file(target: Path, data: bytes) -> None:
    """Replace `target`'s content atomically, keeping mode and owner; in place where rename cannot work."""
    st = os.stat(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{MARKER}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        if exc.errno not in _NO_RENAME:
            raise
        write_in_place(target, data)  # the directory is not ours to write, the file may be
        return
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchown"):  # POSIX; on Windows the file's ACL is the directory's anyway
                os.fchmod(handle.fileno(), stat.S_IMODE(st.st_mode))
                if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
                    os.fchown(handle.fileno(), st.st_uid, st.st_gid)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if exc.errno not in _NO_RENAME:
            raise
        # Docker bind-mounts /etc/hosts (rename over it: EBUSY); other mounts give EXDEV; a sticky directory
        # or a file we may not chown gives EPERM. The in-place write keeps inode, owner and mode as they are.
        write_in_place(target, data)
        return
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename survives a crash once the directory is synced
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_in_place(target: Path, data: bytes) -> None:
    with open(target, "r+b") as handle:
        # Write, then truncate: a kill between the two leaves a stray tail, never an empty file (hostile #29).
        handle.write(data)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())
