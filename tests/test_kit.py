"""Kit programs against a real lab: the Amlen stand-in on the real Docker engine, no hosts entry.

The programs run as a user runs them (`<kit>/<lang>/run.sh [mtls|tls]`, from another directory), dial the lab's
address and verify its host name. Each success is paired with the failure that proves the check is on: the
wrong name, no client certificate on the mutual-TLS port, a revoked seat. The tests run in file order; the ones
that change the lab (a rotation, a revocation) come last.

This file proves the Python program; the other languages' programs are proven by their own tests and by the
rehearsal test here, which runs every language whose toolchain is installed (all of them in CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.kit.programs import available_languages
from lab.kit.proof import missing_toolchain
from tests.conftest import LabEnv
from tests.workshop_helpers import running_room

CLIENT = "test.client1"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Iterator[LabEnv]:
    """A lab that is up (no hosts entry) with two workshop seats whose bundles carry the Python program."""
    with running_room(LabEnv.new(tmp_path_factory.mktemp("kit") / "lab", standin_image), 2) as running:
        made = running.invoke("kit")
        assert made.returncode == 0, made.stdout + made.stderr
        kits = running.invoke("workshop", "--seats", "2", "--kits", "python")
        assert kits.returncode == 0, kits.stdout + kits.stderr
        yield running


def kit_dir(lab: LabEnv) -> Path:
    return lab.dir / "kits" / CLIENT


def program(directory: Path, mode: str | None = None, *, python: bool = True,
            **env: str) -> subprocess.CompletedProcess[str]:
    """`<directory>/python/run.sh [mode]` from elsewhere; on the lab's interpreter unless `python` is False."""
    extra = {"KIT_PYTHON": sys.executable} if python else {}
    return subprocess.run([str(directory / "python" / "run.sh"), *([mode] if mode else [])], capture_output=True,
                          text=True, timeout=600, cwd="/", env={**os.environ, **extra, **env})


def test_python_program_receives_its_message_on_both_endpoints(lab: LabEnv) -> None:
    kit = kit_dir(lab)
    # The first run as a user's: run.sh makes its virtual environment beside itself from requirements.txt.
    mutual = program(kit, python=False)
    assert mutual.returncode == 0, mutual.stdout + mutual.stderr
    assert mutual.stdout.startswith(f"received amlen-lab/kit/{CLIENT}: hello from python ")
    assert (kit / "python" / ".venv" / "bin" / "python").exists()
    server_only = program(kit, "tls")
    assert server_only.returncode == 0, server_only.stdout + server_only.stderr
    assert server_only.stdout.startswith(f"received amlen-lab/kit/{CLIENT}: ")
    # The virtual environment is build output: the kit is still up to date and its zip does not carry it.
    again = lab.invoke("kit")
    assert again.returncode == 0 and "up to date, no file changed" in again.stdout, again.stdout + again.stderr


def test_python_program_verifies_the_host_name(lab: LabEnv) -> None:
    wrong = program(kit_dir(lab), KIT_SERVER_NAME="127.0.0.1")
    assert wrong.returncode != 0
    assert wrong.stdout == "" and wrong.stderr.count("\n") == 1, wrong.stdout + wrong.stderr
    assert wrong.stderr.startswith("error: SSLCertVerificationError")
    assert "IP address mismatch, certificate is not valid for '127.0.0.1'" in wrong.stderr
    other = program(kit_dir(lab), "tls", KIT_SERVER_NAME="other.getting.started")
    assert other.returncode != 0 and "Hostname mismatch" in other.stderr, other.stderr


def test_python_program_without_a_client_certificate_is_refused_on_the_mutual_port(lab: LabEnv) -> None:
    refused = program(kit_dir(lab), "tls", KIT_TLS_PORT=str(lab.mtls_port))
    assert refused.returncode != 0 and refused.stderr.startswith("error: ")
    assert "certificate required" in refused.stderr or "handshake failure" in refused.stderr, refused.stderr


def test_seat_kit_program_receives_on_the_workshop_endpoint(lab: LabEnv) -> None:
    seat = lab.dir / "workshop" / "01"
    env = (seat / "connection.env").read_text()
    assert f"KIT_MTLS_PORT={lab.workshop_port}\n" in env and "KIT_TLS_PORT" not in env
    done = program(seat)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("received workshop/seat.01/kit: hello from python ")
    wrong = program(seat, KIT_SERVER_NAME="127.0.0.1")
    assert wrong.returncode != 0 and "IP address mismatch" in wrong.stderr, wrong.stderr


def test_rehearsal_runs_each_languages_program_as_a_seat(lab: LabEnv) -> None:
    rehearsal = lab.invoke("workshop", "--rehearse", timeout=900)
    assert rehearsal.returncode == 0, rehearsal.stdout + rehearsal.stderr
    out = " ".join(rehearsal.stdout.split())
    assert "the room is ready" in out and "kit programs" in out and "python" in out
    languages = available_languages()
    absent = [lang for lang in languages if missing_toolchain(lang)]
    # This lab has no hosts entry, and Paho C dials the name it verifies: the rehearsal says it did not run it
    # and why (tests/test_kit_languages.py runs it, with the hosts entry).
    not_run = absent if "c" in absent else [*absent, "c"]
    ran = len(languages) - len(not_run)
    assert f"{ran} of {len(languages)} received their message" in out, out
    for lang in not_run:
        assert f"not run: the {lang} kit program" in out
    assert "Paho C dials the name it verifies" in out, out
    if os.environ.get("CI"):  # .ci/run installs every toolchain: none may be skipped there
        assert not absent, f"toolchains missing in CI: {absent}"


def test_after_rotation_the_kit_still_connects(lab: LabEnv) -> None:
    before = {p: p.read_bytes() for p in kit_dir(lab).rglob("*") if p.is_file() and ".venv" not in p.parts}
    rotated = lab.invoke("certs", "--rotate", timeout=600)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    # The kit trusts the lab CA, not the server certificate: a rotation changes none of its bytes.
    assert {p: p.read_bytes() for p in before} == before
    for mode in ("mtls", "tls"):
        done = program(kit_dir(lab), mode)
        assert done.returncode == 0, done.stdout + done.stderr


def test_revoked_seats_kit_is_refused_at_the_handshake(lab: LabEnv) -> None:
    seat = lab.dir / "workshop" / "02"
    assert program(seat).returncode == 0
    revoked = lab.invoke("workshop", "--revoke", "02")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    refused = program(seat)
    assert refused.returncode != 0 and refused.stderr.startswith("error: "), refused.stdout + refused.stderr
    assert "revoked" in refused.stderr or "alert" in refused.stderr or "reset" in refused.stderr, refused.stderr
    other = program(lab.dir / "workshop" / "01")
    assert other.returncode == 0, other.stdout + other.stderr
