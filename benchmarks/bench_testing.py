"""Benchmark (not a test): what `AmlenLabContainer.start()` adds to the container's own start-up.

Run from the repository root:  .venv/bin/python benchmarks/bench_testing.py [--image IMAGE] [--rounds 5]

Baseline: `docker run` of the image with random host ports (docker SDK, like testcontainers) until Amlen's
status API says Running - the least any test fixture must wait. Full: `AmlenLabContainer(image).start()`,
which also makes the certificates, configures both endpoints and completes a TLS handshake on each. Rounds
alternate between the two; medians are printed with the difference (the goal: under 1 s) and the full
start's phases. The image defaults to the Amlen stand-in (tests/standin/build-image.sh, built if missing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import docker  # noqa: E402

from lab.amlen.admin import AmlenClient  # noqa: E402
from lab.amlen.waits import wait_until_ready  # noqa: E402
from lab.container.runtime import AMLEN_ADMIN_PORT  # noqa: E402
from lab.settings import load_settings  # noqa: E402
from lab.testing import AmlenLabContainer  # noqa: E402


def _standin_image() -> str:
    script = REPO / "tests/standin/build-image.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def plain_start(client: docker.DockerClient, image: str, timeout: float) -> float:
    """Seconds from `docker run` to a Running status answer; the container is removed afterwards."""
    settings = load_settings()
    ports = {f"{port}/tcp": None for port in (AMLEN_ADMIN_PORT, settings.tls_port, settings.mtls_port)}
    begin = time.perf_counter()
    container = client.containers.run(image, detach=True, ports=ports)
    try:
        container.reload()
        admin = container.attrs["NetworkSettings"]["Ports"][f"{AMLEN_ADMIN_PORT}/tcp"][0]["HostPort"]
        with AmlenClient(f"http://127.0.0.1:{admin}") as amlen:
            wait_until_ready(amlen, timeout=timeout, container=container)
        return time.perf_counter() - begin
    finally:
        container.remove(force=True, v=True)


def lab_start(image: str, timeout: float) -> tuple[float, dict[str, float], float]:
    """Seconds for a full `AmlenLabContainer.start()`, its phases, and the seconds `stop()` took."""
    lab = AmlenLabContainer(image, ready_timeout=timeout)
    begin = time.perf_counter()
    lab.start()
    elapsed = time.perf_counter() - begin
    stop_begin = time.perf_counter()
    lab.stop()
    return elapsed, dict(lab.startup), time.perf_counter() - stop_begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=os.environ.get("STANDIN_IMAGE"), help="default: the stand-in")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each kind (median reported)")
    parser.add_argument("--timeout", type=float, default=120.0, help="readiness timeout per start, seconds")
    args = parser.parse_args()
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    image = args.image or _standin_image()
    client = docker.from_env()
    plain: list[float] = []
    full: list[float] = []
    stops: list[float] = []
    phases: dict[str, list[float]] = {}
    try:
        plain_start(client, image, args.timeout)  # warm-up: page cache, image layers
        for _ in range(args.rounds):
            plain.append(plain_start(client, image, args.timeout))
            elapsed, startup, stopped = lab_start(image, args.timeout)
            full.append(elapsed)
            stops.append(stopped)
            for name, seconds in startup.items():
                phases.setdefault(name, []).append(seconds)
    finally:
        client.close()
    base, whole = statistics.median(plain), statistics.median(full)
    print(f"image: {image}   rounds: {args.rounds} (medians; min-max in brackets)")
    print(f"docker run + readiness:      {base:6.3f} s  [{min(plain):.3f}-{max(plain):.3f}]")
    print(f"AmlenLabContainer.start():   {whole:6.3f} s  [{min(full):.3f}-{max(full):.3f}]")
    print(f"added by the module:         {whole - base:6.3f} s  (goal: < 1 s)")
    print(f"AmlenLabContainer.stop():    {statistics.median(stops):6.3f} s")
    print("phases of start() (median):  " + ", ".join(
        f"{name} {statistics.median(values):.3f} s" for name, values in phases.items()
    ))


if __name__ == "__main__":
    main()
