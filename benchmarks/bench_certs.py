"""Benchmark (not a test): the guide's certificate set made by `invoke certs` versus the guide's openssl commands.

Run from the repository root:  .venv/bin/python benchmarks/bench_certs.py [--rounds 3] [--clients 100]

Prints, in one run: the time for `invoke certs` in a fresh lab directory (a subprocess, so interpreter start
and imports count) and in process, for the guide's one-tier set and beside it the two-tier set
(LAB_PKI=intermediate: one RSA key more, the intermediate CA, and the chain files); the time for the guide's own
openssl command sequence run non-interactively; and the time for many client certificates through the API,
through `invoke client-cert --name a,b,...` and through openssl (one round: it is slow). Each figure is the
median of `--rounds` runs (RSA key generation varies a lot).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.pki.leaves import ensure_certificates, issue_client_certs  # noqa: E402
from lab.settings import load_settings  # noqa: E402

HOSTNAME = "testserver.getting.started"
PASSPHRASE = "bench-passphrase"

SERVER_EXT = f"""authorityKeyIdentifier=keyid,issuer
basicConstraints=CA:FALSE
keyUsage=digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment
extendedKeyUsage=serverAuth
subjectAltName=@alt_names

[alt_names]
DNS.1={HOSTNAME}
"""
CLIENT_EXT = """authorityKeyIdentifier=keyid,issuer
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
"""


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=cwd, env=env, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _env(lab_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env["LAB_DIR"] = str(lab_dir)
    return env


def _timed(work: Callable[[Path], None], rounds: int, *, setup: Callable[[Path], None] | None = None) -> list[float]:
    """Seconds of `work` in a fresh directory, `rounds` times; `setup` runs first and is not counted."""
    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            if setup is not None:
                setup(Path(tmp))
            start = time.perf_counter()
            work(Path(tmp))
            times.append(time.perf_counter() - start)
    return times


def invoke_certs(tmp: Path, pki: str = "root") -> None:
    _run(sys.executable, "-m", "invoke", "certs", cwd=REPO, env=_env(tmp / "lab") | {"LAB_PKI": pki})


def api_certs(tmp: Path, pki: str = "root") -> None:
    ensure_certificates(load_settings(dir=tmp / "lab", ca_passphrase=PASSPHRASE, pki=pki))


def invoke_two_tier(tmp: Path) -> None:
    invoke_certs(tmp, "intermediate")


def api_two_tier(tmp: Path) -> None:
    api_certs(tmp, "intermediate")


def openssl_leaf(tmp: Path, name: str, cn: str, ext: str) -> None:
    """The guide's leaf recipe: genrsa, req for a CSR, x509 -req signed by the CA with an ext file."""
    ext_file = tmp / f"{name}.ext"
    ext_file.write_text(ext)
    _run("openssl", "genrsa", "-out", f"{name}.key", "2048", cwd=tmp)
    _run("openssl", "req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=tmp)
    _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "myCA.pem", "-CAkey", "myCA.key",
         "-passin", f"pass:{PASSPHRASE}", "-CAcreateserial", "-out", f"{name}.crt", "-days", "825", "-sha256",
         "-extfile", ext_file, cwd=tmp)


def openssl_ca(tmp: Path) -> None:
    _run("openssl", "genrsa", "-des3", "-passout", f"pass:{PASSPHRASE}", "-out", "myCA.key", "2048", cwd=tmp)
    _run("openssl", "req", "-x509", "-new", "-key", "myCA.key", "-passin", f"pass:{PASSPHRASE}", "-sha256",
         "-days", "1825", "-out", "myCA.pem", "-subj", "/CN=amlen-lab toy CA/O=amlen-lab", cwd=tmp)


def openssl_guide(tmp: Path) -> None:
    openssl_ca(tmp)
    openssl_leaf(tmp, "test.server", HOSTNAME, SERVER_EXT)
    openssl_leaf(tmp, "test.client1", "test.client1", CLIENT_EXT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (the median is shown)")
    parser.add_argument("--clients", type=int, default=100, help="how many client certificates to make")
    args = parser.parse_args()
    names = [f"bench.client{i}" for i in range(args.clients)]

    def api_clients(tmp: Path) -> None:
        issue_client_certs(load_settings(dir=tmp / "lab", ca_passphrase=PASSPHRASE), names)

    def invoke_clients(tmp: Path) -> None:
        env = _env(tmp / "lab") | {"LAB_CA_PASSPHRASE": PASSPHRASE}
        _run(sys.executable, "-m", "invoke", "client-cert", "--name", ",".join(names), cwd=REPO, env=env)

    def openssl_clients(tmp: Path) -> None:
        for name in names:
            openssl_leaf(tmp, name, name, CLIENT_EXT)

    n = args.clients
    rows = [
        ("guide set: `invoke certs` (subprocess, fresh dir)", _timed(invoke_certs, args.rounds)),
        ("two-tier set: `invoke certs` (LAB_PKI=intermediate)", _timed(invoke_two_tier, args.rounds)),
        ("guide set: ensure_certificates() in process", _timed(api_certs, args.rounds)),
        ("two-tier set: ensure_certificates() in process", _timed(api_two_tier, args.rounds)),
        ("guide set: the guide's openssl commands (8 processes)", _timed(openssl_guide, args.rounds)),
        (f"{n} clients: issue_client_certs() in process", _timed(api_clients, args.rounds, setup=api_certs)),
        (f"{n} clients: `invoke client-cert --name a,b,...`", _timed(invoke_clients, args.rounds, setup=api_certs)),
        (f"{n} clients: openssl genrsa+req+x509 each", _timed(openssl_clients, 1, setup=openssl_ca)),
    ]
    print(f"amlen-lab certificate benchmark ({os.cpu_count()} CPUs, median of {args.rounds} unless noted)")
    width = max(len(label) for label, _ in rows)
    for label, times in rows:
        spread = f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)})"
        print(f"  {label:<{width}}  {statistics.median(times):7.2f} s  {spread}")


if __name__ == "__main__":
    main()
