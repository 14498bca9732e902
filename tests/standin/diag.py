"""Log files, as Amlen writes them: under ``diag/logs`` in the data path, with little on the console.

Amlen's ``docker logs`` shows next to nothing; the server logs to ``imaserver-default.log`` (plus ``-admin``,
``-connection``, ``-security``) and its start script appends to ``imaserver_start.log``. The stand-in does the
same, and echoes a few lines (start, ready, endpoint started or failed) to stdout so that a test failure's
container log is not empty.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

_CATEGORY_FILES = {
    "Admin": "imaserver-admin.log",
    "Connection": "imaserver-connection.log",
    "Security": "imaserver-security.log",
    # Amlen's transport messages (CWLNA11xx, e.g. CWLNA1119) land in the connection log, as observed.
    "Transport": "imaserver-connection.log",
}


class ServerLog:
    """Thread-safe writer of Amlen-style log lines: ``time severity category msgid text``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    @property
    def default_log(self) -> Path:
        return self.directory / "imaserver-default.log"

    @property
    def start_log(self) -> Path:
        return self.directory / "imaserver_start.log"

    def _append(self, path: Path, line: str) -> None:
        try:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as exc:  # an unwritable volume must not take the server down with it
            print(f"stand-in: cannot write {path}: {exc}", file=sys.stderr, flush=True)

    def log(self, msg_id: str, severity: str, category: str, text: str, *, console: bool = False) -> None:
        """Append to the default log (and the category's own log); echo to stdout when ``console``."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = f"{stamp} {severity:<7} {category:<10} {msg_id} {text}\n"
        with self._lock:
            self._append(self.default_log, line)
            if category in _CATEGORY_FILES:
                self._append(self.directory / _CATEGORY_FILES[category], line)
        if console:
            print(f"{msg_id} {text}", flush=True)

    def start_message(self, text: str) -> None:
        """A line of the start script's log (``imaserver_start.log``), also shown on stdout."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            self._append(self.start_log, f"{stamp} {text}\n")
        print(text, flush=True)
