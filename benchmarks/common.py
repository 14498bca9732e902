"""What the benchmark scripts share: where the repository is, the `invoke` beside this Python, a free port, and
the image to measure (LAB_IMAGE, else the Amlen stand-in, built or reused)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INVOKE = str(Path(sys.executable).with_name("invoke"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def image() -> str:
    """LAB_IMAGE or STANDIN_IMAGE when set, else the stand-in image (tests/standin/build-image.sh)."""
    found = os.environ.get("LAB_IMAGE") or os.environ.get("STANDIN_IMAGE")
    if found:
        return found
    built = subprocess.run(["bash", str(ROOT / "tests/standin/build-image.sh")], capture_output=True, text=True,
                           check=True)
    return built.stdout.strip().splitlines()[-1]
