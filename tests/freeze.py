"""Freeze a container the way a paused machine looks to its clients: `docker pause` where the engine can.

Rootless Podman on cgroup v1 has no freezer for its containers (`can not pause containers on rootless containers
with cgroup V1`). There every process of the container is stopped with SIGSTOP from the host instead, and
continued with SIGCONT: the user owns the container's user namespace, so may signal its processes. To a client
both look the same: the server takes no packet until it is thawed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


def freeze(name: str) -> Callable[[], None]:
    """Freeze container `name` now; returns the function that thaws it."""
    paused = _docker("pause", name)
    if paused.returncode == 0:
        return lambda: _check(_docker("unpause", name))
    if "rootless" not in paused.stderr:
        _check(paused)
    pids = _processes(int(_check(_docker("inspect", "-f", "{{.State.Pid}}", name)).stdout))
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)

    def thaw() -> None:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)

    return thaw


def _processes(root: int) -> list[int]:
    """`root` and every process below it (its children, theirs, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{' '.join(map(str, result.args))}: {result.stderr.strip()}"
    return result
