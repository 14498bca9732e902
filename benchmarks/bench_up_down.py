"""Benchmark: the floor (`docker run` to Amlen's State 1), cold and warm `up`, `down`, `status`, `--list`.

Targets (issue 13), as medians, `invoke` started as a subprocess like a user runs it:
  cold `up` (image present, certificates absent) <= floor + 1.0 s, verification included;
  warm `up` <= 0.6 s; `down` <= 1.5 s; `invoke status` <= 0.4 s; `invoke --list` <= 0.25 s.
Also prints a per-step breakdown of one cold and one warm `up` run in-process, and the slowest imports of the
`up` path (`python -X importtime`). Cold and warm `up` are measured in both PKI modes: the guide's one-tier CA
and LAB_PKI=intermediate (one RSA key more, chain files). Prints figures; asserts nothing. Against LAB_IMAGE,
or the Amlen stand-in:

    STANDIN_IMAGE=$(bash tests/standin/build-image.sh | tail -1) .venv/bin/python benchmarks/bench_up_down.py [ROUNDS]

`--engine podman` measures the same on Podman beside Docker (the engine DOCKER_HOST or the default socket
names): Podman's socket is `--podman-socket`, default rootful Podman's as root and rootless Podman's
(`$XDG_RUNTIME_DIR/podman/podman.sock`) otherwise; the image is copied into Podman (`docker save | podman
load`) when Podman lacks it. It uses temporary lab directories, free ports and no hosts entry (`--no-hosts`),
so it leaves your machine alone.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from common import INVOKE, ROOT, free_port, image

TARGETS = {"cold over floor": 1.0, "warm up": 0.6, "down": 1.5, "status": 0.4, "--list": 0.25}


def floor(ref: str) -> float:
    """Seconds from `docker run` (the lab's memory, ports published) to Amlen's State 1, for the image alone."""
    port = free_port()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "--name", name, "--memory", "1g", "-p", f"127.0.0.1:{port}:9089", ref],
                   check=True, capture_output=True)
    try:
        while True:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/ima/v1/service/status", timeout=2).json()
                if body.get("Server", {}).get("State") == 1:
                    return time.perf_counter() - started
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.01)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def lab_env(ref: str, scratch: Path, pki: str = "root", admin_security: str = "mtls") -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update({"LAB_DIR": str(scratch / tag), "LAB_IMAGE": ref, "LAB_CONTAINER_NAME": f"bench-{tag}",
                "LAB_PKI": pki, "LAB_ADMIN_SECURITY": admin_security,
                "LAB_TLS_PORT": str(free_port()), "LAB_MTLS_PORT": str(free_port()),
                "LAB_ADMIN_PORT": str(free_port()), "LAB_WORKSHOP_PORT": str(free_port()), "LAB_MEMORY": "1g"})
    return env


def timed(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([INVOKE, "-r", str(ROOT), *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"invoke {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def breakdown(env: dict[str, str]) -> str:
    """Per-step seconds of a cold then a warm `up`, in-process (so without Python's start and imports)."""
    script = (
        "import os, time; from lab.settings import load_settings; from lab.plan import up, down; "
        "from lab.steps import Options; s = load_settings(env_file=None)\n"
        "for label in ('cold', 'warm'):\n"
        "    t = time.perf_counter(); r = up(s, Options(hosts=False)); total = time.perf_counter() - t\n"
        "    print(label, f'{total:.3f}', ' '.join(f'{e.step.replace(chr(32), chr(95))}={e.seconds:.3f}' "
        "for e in r.events))\n"
        "down(s, Options(purge=True))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.exit(f"in-process up failed:\n{result.stderr}")
    lines = []
    for line in result.stdout.splitlines():
        label, total, *steps = line.split()
        parts = [f"{name.replace('_', ' ')} {float(value) * 1000:.0f}" for name, value in
                 (step.split("=") for step in steps)]
        lines.append(f"  {label} up in-process {float(total):.2f} s (ms per step: {', '.join(parts)})")
    return "\n".join(lines)


def slowest_imports(count: int = 8) -> str:
    """The modules that cost most to import on `up`'s path, by cumulative microseconds."""
    code = "import tasks, lab.plan, lab.report, lab.checks, lab.mqtt"
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match[3]) <= 2:  # top-level imports and their direct children
            rows.append((int(match[2]), match[4].strip()))
    total = sum(cumulative for cumulative, name in rows if not name.startswith(" "))
    top = sorted(rows, reverse=True)[:count]
    return f"  {total / 1e6:.2f} s in all; " + ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in top)


def median(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})"


def measure(ref: str, rounds: int) -> dict[str, list[float]]:
    """Every figure of one engine (the one DOCKER_HOST names in this process's environment)."""
    names = ("floor", "cold", "warm", "status", "--list", "down", "two-tier cold", "two-tier warm",
             "open cold", "open warm", "open status")
    figures: dict[str, list[float]] = {name: [] for name in names}
    figures["floor"] = [floor(ref) for _ in range(rounds)]
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(rounds):
            env = lab_env(ref, Path(scratch))
            figures["cold"].append(timed(env, "up", "--no-hosts"))  # a new lab directory: certificates absent
            figures["warm"].append(timed(env, "up", "--no-hosts"))
            figures["status"].append(timed(env, "status"))
            figures["--list"].append(timed(env, "--list"))
            figures["down"].append(timed(env, "down", "--purge"))
            env = lab_env(ref, Path(scratch), "intermediate")
            figures["two-tier cold"].append(timed(env, "up", "--no-hosts"))
            figures["two-tier warm"].append(timed(env, "up", "--no-hosts"))
            timed(env, "down", "--purge")
            # The admin plane left open (as before issue 22): what securing it costs is the difference.
            env = lab_env(ref, Path(scratch), admin_security="open")
            figures["open cold"].append(timed(env, "up", "--no-hosts"))
            figures["open warm"].append(timed(env, "up", "--no-hosts"))
            figures["open status"].append(timed(env, "status"))
            timed(env, "down", "--purge")
    return figures


def engine_line() -> str:
    """How the lab names the engine this process would use."""
    from lab.engine import connect

    engine = connect()
    try:
        return engine.describe()
    finally:
        engine.client.close()


def podman_socket(given: str | None) -> str:
    """Podman's socket for `--engine podman`: rootful Podman's as root, rootless Podman's otherwise."""
    if given:
        return given
    if os.geteuid() == 0:
        return "/run/podman/podman.sock"
    return f"{os.environ.get('XDG_RUNTIME_DIR') or f'/run/user/{os.getuid()}'}/podman/podman.sock"


def ensure_in_podman(ref: str, socket_path: str) -> None:
    """Copy `ref` from Docker into Podman's store when Podman lacks it (no registry on these machines)."""
    podman_env = {**os.environ, "DOCKER_HOST": f"unix://{socket_path}"}
    if subprocess.run(["docker", "version"], env=podman_env, capture_output=True).returncode:
        sys.exit(f"Podman does not answer on {socket_path}: start it with "
                 f"`podman system service --time=0 unix://{socket_path} &`")
    if subprocess.run(["docker", "image", "inspect", ref], env=podman_env, capture_output=True).returncode == 0:
        return
    saved = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
    subprocess.run(["podman", "load", "-q"], stdin=saved.stdout, check=True, capture_output=True)
    saved.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("rounds", nargs="?", type=int, default=5)
    parser.add_argument("--engine", choices=("docker", "podman"), default="docker",
                        help="podman: measure Podman beside Docker")
    parser.add_argument("--podman-socket", help="Podman's socket (default: rootful as root, else rootless)")
    args = parser.parse_args()
    rounds = args.rounds
    ref = image()
    engines = [(engine_line(), measure(ref, rounds))]
    if args.engine == "podman":
        socket_path = podman_socket(args.podman_socket)
        ensure_in_podman(ref, socket_path)
        os.environ["DOCKER_HOST"] = f"unix://{socket_path}"
        engines.append((engine_line(), measure(ref, rounds)))
    print(f"image                     {ref}")
    for name, figures in engines:
        base = statistics.median(figures["floor"])
        over = statistics.median(figures["cold"]) - base
        print(f"engine                    {name}")
        print(f"  floor: docker run->State1 {median(figures['floor'])}")
        print(f"  cold up                   {median(figures['cold'])}  = floor + {over:.2f} s "
              f"(target on Docker: + {TARGETS['cold over floor']} s)")
        two_over = statistics.median(figures["two-tier cold"]) - base
        print(f"  cold up, two-tier PKI     {median(figures['two-tier cold'])}  = floor + {two_over:.2f} s "
              f"(target on Docker: + {TARGETS['cold over floor']} s)")
        print(f"  warm up                   {median(figures['warm'])}  (target on Docker: <= {TARGETS['warm up']} s)")
        print(f"  warm up, two-tier PKI     {median(figures['two-tier warm'])}  "
              f"(target on Docker: <= {TARGETS['warm up']} s)")
        print(f"  down                      {median(figures['down'])}  (target on Docker: <= {TARGETS['down']} s)")
        print(f"  invoke status             {median(figures['status'])}  (target on Docker: <= {TARGETS['status']} s)")
        print(f"  invoke --list             {median(figures['--list'])}  (target: <= {TARGETS['--list']} s)")
        added = {key: statistics.median(figures[key]) - statistics.median(figures[f"open {key}"])
                 for key in ("cold", "warm", "status")}
        print(f"  admin plane locked (mtls) vs open: cold up {added['cold']:+.3f} s (target <= +0.15), warm up "
              f"{added['warm']:+.3f} s, status {added['status']:+.3f} s (targets within 0.05); open: cold "
              f"{median(figures['open cold'])}, warm {median(figures['open warm'])}")
    if len(engines) == 2:
        docker_figures, podman_figures = engines[0][1], engines[1][1]
        print("side by side (medians, s):  " + ", ".join(
            f"{key} {statistics.median(docker_figures[key]):.2f} / {statistics.median(podman_figures[key]):.2f}"
            for key in ("floor", "cold", "warm", "down", "status")) + "  (first engine / Podman)")
    print("per step (one lab, in-process, on the last engine; then the two-tier PKI):")
    with tempfile.TemporaryDirectory() as scratch:
        print(breakdown(lab_env(ref, Path(scratch))))
        print(breakdown(lab_env(ref, Path(scratch), "intermediate")))
    print("slowest imports on up's path (python -X importtime):")
    print(slowest_imports())
    print(f"(each figure: {rounds} rounds; cold and warm with verification; --no-hosts)")


if __name__ == "__main__":
    main()
