"""Benchmark (not a test): a workshop room of 30 seats from nothing, one more seat, and the same room again.

Run from the repository root, against LAB_IMAGE or the Amlen stand-in:

    STANDIN_IMAGE=$(bash tests/standin/build-image.sh | tail -1) .venv/bin/python benchmarks/bench_workshop.py

Each round brings up a fresh lab (temporary directory, free ports, no hosts entry, not timed), then times, as a
user runs them (`invoke` subprocesses, interpreter start included): `workshop --seats 30` from nothing,
`workshop --seats 31` (one seat added) and `workshop --seats 31` again (nothing to do). RSA key generation
dominates the first; it is also timed alone, on every core and serially, to show by how much.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
INVOKE = str(Path(sys.executable).with_name("invoke"))

from common import image  # noqa: E402

from lab.pki.build import new_key, new_keys  # noqa: E402
from tests.helpers import free_port  # noqa: E402

SEATS = 30




def lab_env(directory: Path, ref: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update({
        "LAB_DIR": str(directory), "LAB_IMAGE": ref, "LAB_CONTAINER_NAME": f"bench-ws-{uuid.uuid4().hex[:8]}",
        "LAB_HOSTNAME": f"bench-{uuid.uuid4().hex[:8]}.getting.started", "LAB_TLS_PORT": str(free_port()),
        "LAB_MTLS_PORT": str(free_port()), "LAB_ADMIN_PORT": str(free_port()),
        "LAB_WORKSHOP_PORT": str(free_port()), "LAB_MEMORY": "1g",
    })
    return env


def invoke(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([INVOKE, "-r", str(ROOT), *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"invoke {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def keygen(count: int, *, parallel: bool) -> float:
    started = time.perf_counter()
    if parallel:
        new_keys(count)
    else:
        for _ in range(count):
            new_key()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    ref = image()
    figures: dict[str, list[float]] = {"from nothing": [], "one more seat": [], "same room again": [],
                                       "keys, every core": [], "keys, serially": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            env = lab_env(Path(tmp) / "lab", ref)
            invoke(env, "up", "--no-hosts", "--no-verify")
            try:
                figures["from nothing"].append(invoke(env, "workshop", "--seats", str(SEATS)))
                figures["one more seat"].append(invoke(env, "workshop", "--seats", str(SEATS + 1)))
                figures["same room again"].append(invoke(env, "workshop", "--seats", str(SEATS + 1)))
            finally:
                invoke(env, "down", "--purge")
        figures["keys, every core"].append(keygen(SEATS, parallel=True))
        figures["keys, serially"].append(keygen(SEATS, parallel=False))
    print(f"workshop benchmark: {rounds} rounds, {os.cpu_count()} cores, image {ref}")
    labels = {
        "from nothing": f"`workshop --seats {SEATS}` from nothing",
        "one more seat": f"`workshop --seats {SEATS + 1}` (one seat added)",
        "same room again": f"`workshop --seats {SEATS + 1}` again (no change)",
        "keys, every core": f"{SEATS} RSA-2048 keys alone, on every core",
        "keys, serially": f"{SEATS} RSA-2048 keys alone, one after another",
    }
    for key, values in figures.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {labels[key]:<48} median {statistics.median(values):5.2f} s  (runs: {runs})")


if __name__ == "__main__":
    main()
