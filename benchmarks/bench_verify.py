"""Benchmark (not a test): how long the verification matrix takes against a running broker.

Run from the repository root:
    .venv/bin/python benchmarks/bench_verify.py [--rounds 10]          # a mosquitto started here
    .venv/bin/python benchmarks/bench_verify.py --lab [--rounds 10]    # the lab from LAB_* / .env (after `invoke up`)

Without `--lab` it makes a certificate set with lab.pki in a temporary directory, starts Debian's mosquitto with
a TLS listener and a require_certificate listener on free ports (the lab's two endpoints), and checks by address
(`no_hosts`), so /etc/hosts is never touched. Prints, per mode: the whole matrix (rows run concurrently; both
protocols, 8 rows) as min / median / max over `--rounds`, the slowest row of the median run, and the same matrix
run row by row for comparison. Target: under 1.5 s for the whole matrix.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.clients.checks import ALL_PROTOCOLS, run_matrix, target_from_settings  # noqa: E402
from lab.pki.leaves import ensure_certificates  # noqa: E402
from lab.pki.paths import pki_paths  # noqa: E402
from lab.settings import Settings, load_settings  # noqa: E402

MOSQUITTO = "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_mosquitto(settings: Settings, workdir: Path) -> subprocess.Popen[bytes]:
    paths = pki_paths(settings)
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings true\nuser root\nlog_dest stderr\n"
        f"listener {settings.tls_port} 127.0.0.1\ncertfile {paths.server_cert}\nkeyfile {paths.server_key}\n"
        "allow_anonymous true\n"
        f"listener {settings.mtls_port} 127.0.0.1\ncertfile {paths.server_cert}\nkeyfile {paths.server_key}\n"
        f"cafile {paths.ca_cert}\nrequire_certificate true\nallow_anonymous true\n"
    )
    process = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    for port in (settings.tls_port, settings.mtls_port):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    process.kill()
                    raise SystemExit(f"mosquitto did not listen on {port}") from None
                time.sleep(0.01)
    return process


def _measure(settings: Settings, rounds: int, no_hosts: bool) -> None:
    target = target_from_settings(settings)
    run_matrix(target, no_hosts=no_hosts)  # warm-up: imports, first TLS contexts
    reports = [run_matrix(target, no_hosts=no_hosts) for _ in range(rounds)]
    times = sorted(report.seconds for report in reports)
    median = statistics.median(times)
    middle = min(reports, key=lambda report: abs(report.seconds - median))
    slowest = max(middle.rows, key=lambda row: row.seconds)
    passed = sum(report.passed for report in reports)
    print(f"matrix, concurrent ({len(middle.rows)} rows, MQTT 3.1.1 + 5, no_hosts={no_hosts}): "
          f"min {times[0] * 1000:.0f} ms, median {median * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms "
          f"({passed}/{rounds} runs all as expected; target < 1500 ms)")
    print(f"  slowest row in the median run: row {slowest.row} ({slowest.protocol}) {slowest.name}: "
          f"{slowest.seconds * 1000:.0f} ms")
    for row in middle.rows:
        print(f"  row {row.row} MQTT {row.protocol:5} {row.seconds * 1000:6.0f} ms  {row.detail}")
    sequential = []
    for _ in range(max(1, rounds // 3)):
        start = time.perf_counter()
        for protocol in ALL_PROTOCOLS:
            run_matrix(target, protocols=[protocol], no_hosts=no_hosts)
        sequential.append(time.perf_counter() - start)
    print(f"for comparison, one protocol at a time (two matrices back to back): "
          f"median {statistics.median(sequential) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--lab", action="store_true", help="measure the running lab from LAB_* settings")
    parser.add_argument("--no-hosts", action="store_true", help="with --lab: check by address")
    args = parser.parse_args()
    if args.lab:
        _measure(load_settings(), args.rounds, args.no_hosts)
        return
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        settings = load_settings(dir=Path(tmp) / "lab", tls_port=_free_port(), mtls_port=_free_port(),
                                 admin_port=_free_port(), ca_passphrase="bench-passphrase")
        ensure_certificates(settings)
        process = _start_mosquitto(settings, Path(tmp))
        try:
            print(f"broker: mosquitto on 127.0.0.1:{settings.tls_port} (TLS) and :{settings.mtls_port} (mutual)")
            _measure(settings, args.rounds, no_hosts=True)
        finally:
            process.terminate()
            process.wait(timeout=5)


if __name__ == "__main__":
    main()
