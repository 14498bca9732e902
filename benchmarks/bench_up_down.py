"""Benchmark: `docker run` + readiness of the image alone, then cold `up`, warm `up` and `down` of the lab.

Targets (issue 5): cold `up` within readiness + 2 s, warm `up` under 1 s, `down` under 3 s.
Prints figures; asserts nothing. Run against the image in LAB_IMAGE, or the Amlen stand-in:

    STANDIN_IMAGE=$(bash tests/standin/build-image.sh | tail -1) .venv/bin/python benchmarks/bench_up_down.py

It uses a temporary lab directory, free ports and a scratch hosts file, so it leaves your machine alone.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
INVOKE = str(Path(sys.executable).with_name("invoke"))
ROUNDS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def image() -> str:
    found = os.environ.get("LAB_IMAGE") or os.environ.get("STANDIN_IMAGE")
    if found:
        return found
    built = subprocess.run(["bash", str(ROOT / "tests/standin/build-image.sh")], capture_output=True, text=True,
                           check=True)
    return built.stdout.strip().splitlines()[-1]


def run_and_wait(ref: str) -> float:
    """Seconds from `docker run` to Amlen's status State 1, for the image alone."""
    port = free_port()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9089", ref],
                   check=True, capture_output=True)
    try:
        while True:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/ima/v1/service/status", timeout=2).json()
                if body.get("Server", {}).get("State") == 1:
                    return time.perf_counter() - started
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.02)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def timed(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([INVOKE, "-r", str(ROOT), *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"invoke {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    ref = image()
    readiness = [run_and_wait(ref) for _ in range(ROUNDS)]
    cold, warm, down = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        hosts = Path(scratch) / "hosts"
        hosts.write_text("127.0.0.1 localhost\n")
        for _ in range(ROUNDS):
            tag = uuid.uuid4().hex[:8]
            env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
            env.update({"LAB_DIR": str(Path(scratch) / tag), "LAB_IMAGE": ref, "LAB_HOSTS_FILE": str(hosts),
                        "LAB_CONTAINER_NAME": f"bench-{tag}", "LAB_TLS_PORT": str(free_port()),
                        "LAB_MTLS_PORT": str(free_port()), "LAB_ADMIN_PORT": str(free_port()),
                        "LAB_WORKSHOP_PORT": str(free_port()),
                        "LAB_MEMORY": "1g"})
            # --no-hosts: verification then checks the handshakes by address (the scratch hosts file is not
            # what the resolver reads), so the figures include the TLS matrix.
            timed(env, "certs")  # certificates are made once per lab, not per `up`
            cold.append(timed(env, "up", "--no-hosts"))
            warm.append(timed(env, "up", "--no-hosts"))
            down.append(timed(env, "down"))
    ready = statistics.median(readiness)
    print(f"image                       {ref}")
    print(f"docker run + readiness      median {ready:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in readiness)})")
    print(f"cold up (--no-hosts)        median {statistics.median(cold):.2f} s  "
          f"= readiness + {statistics.median(cold) - ready:.2f} s  (target: + 2 s)")
    print(f"warm up (--no-hosts)        median {statistics.median(warm):.2f} s  (target: < 1 s)")
    print(f"down                        median {statistics.median(down):.2f} s  (target: < 3 s)")
    print(f"(each figure: {ROUNDS} rounds, invoke started as a subprocess like a user runs it)")


if __name__ == "__main__":
    main()
