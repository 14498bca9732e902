"""Benchmark (not a test): workshop rooms of 30 and 200 seats, as an instructor runs them.

Run from the repository root, against LAB_IMAGE or the Amlen stand-in:

    STANDIN_IMAGE=$(bash tests/standin/build-image.sh | tail -1) .venv/bin/python benchmarks/bench_workshop.py

Each round and room size brings up a fresh lab (temporary directory, free ports, no hosts entry, not timed), then
times, as a user runs them (`invoke` subprocesses, interpreter start included): `workshop --seats N` from nothing
(keys, certificates, bundles, zips, Amlen objects), `--seats N+1` (one seat added), `--seats N+1` again (nothing
to do) and `workshop --rehearse` (every seat from its bundle). For the large room it then connects one MQTT client
per seat (subscribed to its own and the room's topics, as a participant's mosquitto_sub is), times `--status` and
`--status --json` with them all connected, and prints the Amlen container's memory and its processes' resident
sets. RSA key generation dominates the first figure; it is also timed alone, on every core, to show by how much,
and so are the bundles' PKCS#12 pairs (lab.kit: PBKDF2 at OpenSSL 3's 2048 iterations). The rehearsal includes
one seat's run of each kit program whose toolchain is installed.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
INVOKE = str(Path(sys.executable).with_name("invoke"))

from common import free_port, image  # noqa: E402

from lab.kit import pkcs12  # noqa: E402
from lab.pki.build import build_ca_cert, new_key, new_keys  # noqa: E402
from lab.workshop.handout import read_handout  # noqa: E402
from lab.workshop.netloop import NetworkLoop  # noqa: E402
from lab.workshop.seatclient import SeatClient  # noqa: E402

SIZES = (30, 200)
STATUS_RUNS = 5
# The stand-in's processes and their resident memory, read from /proc inside the container (it has no ps).
_RSS = ("import glob\n"
        "for p in glob.glob('/proc/[0-9]*/status'):\n"
        "    f = dict(l.split(':', 1) for l in open(p) if ':' in l)\n"
        "    print(f['Name'].strip(), f.get('VmRSS', '0 kB').strip(), f['Threads'].strip())\n")


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


def keygen(count: int) -> float:
    started = time.perf_counter()
    new_keys(count)
    return time.perf_counter() - started


def p12_pairs(count: int) -> float:
    """The PKCS#12 pair of `count` seats alone (lab.kit.pkcs12), made by as many threads as bundles are written by."""
    key = new_key()
    ca = build_ca_cert(key, days=30)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: (pkcs12.keystore("seat", key, [ca], "password"), pkcs12.truststore(ca, "password")),
                      range(count)))
    return time.perf_counter() - started


def connect_room(env: dict[str, str], seats: int, loop: NetworkLoop) -> list[SeatClient]:
    """One client per seat from its bundle, subscribed like the README's mosquitto_sub (own tree and the room).

    The rehearsal's clients and network loop: paho's own loop thread cannot watch descriptors past 1024, which a
    process holding a few hundred clients (and the previous round's, until the collector runs) passes.
    """
    width = max(2, len(str(seats)))

    def join(number: int) -> SeatClient:
        handout = read_handout(Path(env["LAB_DIR"]) / "workshop" / f"{number:0{width}d}")
        client = SeatClient(handout, f"{handout.cn}-sub", loop)
        outcome = client.connect()
        if outcome != "accepted" or client.subscribe(handout.own_filter, handout.room_filter) is None:
            raise SystemExit(f"{handout.cn} could not connect and subscribe: {outcome}")
        return client

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(join, range(1, seats + 1)))


def memory(env: dict[str, str]) -> str:
    """The container's memory use (docker stats) and the resident set of each of its processes."""
    name = env["LAB_CONTAINER_NAME"]
    used = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
                          capture_output=True, text=True).stdout.strip()
    processes = subprocess.run(["docker", "exec", name, "python3", "-c", _RSS], capture_output=True,
                               text=True).stdout.split("\n")
    shown = ", ".join(f"{p.split()[0]} {p.split()[1]} kB ({p.split()[3]} threads)" for p in processes if p.strip())
    return f"{used}; {shown}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    options = parser.parse_args()
    ref = image()
    figures: dict[str, list[float]] = {}
    memories: list[str] = []

    def record(key: str, seconds: float) -> None:
        figures.setdefault(key, []).append(seconds)

    for _ in range(options.rounds):
        for seats in options.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                env = lab_env(Path(tmp) / "lab", ref)
                invoke(env, "up", "--no-hosts", "--no-verify")
                try:
                    record(f"{seats} seats from nothing", invoke(env, "workshop", "--seats", str(seats)))
                    record(f"{seats} one seat more", invoke(env, "workshop", "--seats", str(seats + 1)))
                    record(f"{seats} same room again", invoke(env, "workshop", "--seats", str(seats + 1)))
                    record(f"{seats} rehearse", invoke(env, "workshop", "--rehearse"))
                    if seats == max(options.sizes):
                        with NetworkLoop() as loop:
                            clients = connect_room(env, seats, loop)
                            try:
                                for _run in range(STATUS_RUNS):
                                    record(f"{seats} status", invoke(env, "workshop", "--status"))
                                    record(f"{seats} status json", invoke(env, "workshop", "--status", "--json"))
                                memories.append(memory(env))
                            finally:
                                for client in clients:
                                    client.close()
                finally:
                    invoke(env, "down", "--purge")
            record(f"{seats} keys alone", keygen(seats))
            record(f"{seats} p12 alone", p12_pairs(seats))
    print(f"workshop benchmark: {options.rounds} rounds, {os.cpu_count()} cores, image {ref}")
    for key, values in figures.items():
        seats, what = key.split(" ", 1)
        label = {
            "seats from nothing": f"`workshop --seats {seats}` from nothing",
            "one seat more": f"`workshop --seats {int(seats) + 1}` (one seat added)",
            "same room again": f"`workshop --seats {int(seats) + 1}` again (no change)",
            "rehearse": f"`workshop --rehearse` of {int(seats) + 1} seats",
            "status": f"`workshop --status`, {seats} seats connected",
            "status json": f"`workshop --status --json`, {seats} seats connected",
            "keys alone": f"{seats} RSA-2048 keys alone, on every core",
            "p12 alone": f"{seats} seats' PKCS#12 pairs alone (8 threads)",
        }[what]
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {label:<52} median {statistics.median(values):5.2f} s  (runs: {runs})")
    for reading in memories:
        print(f"  Amlen container with {max(options.sizes)} seats connected: {reading}")


if __name__ == "__main__":
    main()
