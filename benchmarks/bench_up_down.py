"""Benchmark: the floor (`docker run` to Amlen's State 1), cold and warm `up`, `down`, `status`, `--list`.

Targets (issue 13), as medians, `invoke` started as a subprocess like a user runs it:
  cold `up` (image present, certificates absent) <= floor + 1.0 s, verification included;
  warm `up` <= 0.6 s; `down` <= 1.5 s; `invoke status` <= 0.25 s (issue 24); `invoke --list` <= 0.25 s.
Also prints each step's and each verification row's time of a cold and a warm `up` of two labs in one process
(as the pytest plugin and the testcontainers module run them), and the slowest imports of the `up` and `status`
paths (`python -X importtime`). Cold and warm `up` are measured in both PKI modes: the guide's one-tier CA
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
import json
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

from lab.durations import format_duration

TARGETS = {"cold over floor": 1.0, "warm up": 0.6, "down": 1.5, "status": 0.25, "--list": 0.25}


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


# Run in one Python process: for each lab (LAB_* values in a JSON list on stdin), a cold then a warm `up`, then
# every lab's `down`, as a test suite with several labs in one process (the pytest plugin, testcontainers) does.
# The verification step's matrix is kept as it returns (VerifyStep imports lab.clients.checks.verify when it runs), so
# each row's time can be printed; `up` runs exactly as `invoke up --no-hosts` does.
_IN_PROCESS = """
import json, os, sys, time
import lab.clients.checks
from lab.plan import down, up
from lab.settings import load_settings
from lab.steps import Options
matrices = []
def kept(*args, verify=lab.clients.checks.verify, **kwargs):
    matrices.append(verify(*args, **kwargs))
    return matrices[-1]
lab.clients.checks.verify = kept
labs = []
for values in json.load(sys.stdin):
    for key in [k for k in os.environ if k.startswith("LAB_")]:
        del os.environ[key]
    os.environ.update(values)
    labs.append(settings := load_settings(env_file=None))
    for label in ("cold", "warm"):
        t = time.perf_counter()
        report = up(settings, Options(hosts=False))
        total = time.perf_counter() - t
        matrix = matrices[-1]
        steps = [(e.step, e.seconds) for e in report.events]
        rows = [(f"{r.row}" + (f" MQTT {r.protocol}" if r.row in (1, 2) else ""), r.seconds, r.retried,
                 r.passed, r.detail) for r in matrix.rows]
        print(json.dumps({"lab": len(labs), "label": label, "total": total, "steps": steps,
                          "verification": matrix.seconds, "rows": rows}), flush=True)
for settings in labs:
    down(settings, Options(purge=True))
"""


def breakdown(envs: list[dict[str, str]]) -> str:
    """Per-step and per-row milliseconds of a cold then a warm `up` of each lab, all in one process (so without
    Python's start and imports): a row that waits (a timeout, a retry) shows, and so does a later lab that pays
    for an earlier one."""
    labs = [{k: v for k, v in env.items() if k.startswith("LAB_")} for env in envs]
    result = subprocess.run([sys.executable, "-c", _IN_PROCESS], env=envs[0], input=json.dumps(labs),
                            capture_output=True, text=True, cwd=ROOT)
    if result.returncode:
        sys.exit(f"in-process up failed:\n{result.stderr}")
    lines = []
    for line in result.stdout.splitlines():
        run = json.loads(line)
        steps = ", ".join(f"{name} {format_duration(seconds)}" for name, seconds in run["steps"])
        rows = ", ".join(f"{name} {format_duration(seconds)}{' (retried)' if retried else ''}"
                         for name, seconds, retried, _passed, _detail in run["rows"])
        lines.append(f"  lab {run['lab']} {run['label']} up in-process {format_duration(run['total'])}: {steps}")
        lines.append(f"    verification {format_duration(run['verification'])}, per row: {rows}")
        lines += [f"    row {name}: {'' if passed else 'FAILED '}{detail}" for name, seconds, retried, passed, detail
                  in run["rows"] if retried or not passed or seconds > 0.5]
    return "\n".join(lines)


UP_IMPORTS = "import tasks, lab.plan, lab.report, lab.clients.checks, lab.clients.mqtt"
# What `invoke status` loads (its four questions import theirs in threads, so they are named here).
STATUS_IMPORTS = ("import tasks, lab.status, lab.report, lab.container.runtime, lab.container.volume, lab.amlen.admin, "
                  "lab.hosts, lab.pki.info")


def slowest_imports(code: str = UP_IMPORTS, count: int = 8) -> str:
    """The modules that cost most to import for `code`, by cumulative microseconds."""
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
    from lab.container.engine import connect

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
    print("per step and per verification row, in one process (the last engine): two labs, then two two-tier labs:")
    with tempfile.TemporaryDirectory() as scratch:
        print(breakdown([lab_env(ref, Path(scratch)), lab_env(ref, Path(scratch))]))
        print(breakdown([lab_env(ref, Path(scratch), "intermediate"), lab_env(ref, Path(scratch), "intermediate")]))
    print("slowest imports on up's path (python -X importtime):")
    print(slowest_imports())
    print("slowest imports on status's path:")
    print(slowest_imports(STATUS_IMPORTS))
    print(f"(each figure: {rounds} rounds; cold and warm with verification; --no-hosts)")


if __name__ == "__main__":
    main()
