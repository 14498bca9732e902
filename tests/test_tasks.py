"""The command line: every task has a one-line summary and help for every flag, as `invoke --list` promises."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from invoke import Collection

import tasks
from tests.conftest import INVOKE, ROOT

COLLECTION = Collection.from_module(tasks)


def test_every_task_has_a_one_line_summary() -> None:
    listing = subprocess.run([INVOKE, "-r", str(ROOT), "--list"], capture_output=True, text=True, check=True).stdout
    for name in COLLECTION.task_names:
        assert name in listing
        body = COLLECTION[name].__doc__ or ""
        assert body.strip() and body.strip().splitlines()[0].endswith("."), name


@pytest.mark.parametrize("name", sorted(Collection.from_module(tasks).task_names))
def test_every_flag_has_help(name: str) -> None:
    missing = [arg.name for arg in COLLECTION[name].get_arguments() if not arg.help]
    assert missing == [], f"{name}: no help for {missing}"
    result = subprocess.run([INVOKE, "-r", str(ROOT), "--help", name], capture_output=True, text=True, check=True)
    assert "Usage:" in result.stdout


@pytest.mark.parametrize(("args", "words"), [
    (["sub", "-P", "abc"], "-P/--port expects a whole number, not 'abc'"),
    (["sub", "-P", "70000"], "-P/--port must be between 1 and 65535"),
    (["pub", "-q", "7"], "-q/--qos must be between 0 and 2"),
    (["pub", "-N", "many"], "-N/--count expects a whole number"),
    (["pub", "-S", "soon"], "-S/--delay expects a number"),
    (["sub", "-k", "1"], "-k/--keepalive must be between 5"),
    (["sub", "--tls-version", "ssl3"], "--tls-version ssl3 is not one of"),
    (["pub", "--protocol", "4.0"], "unknown MQTT protocol"),
    (["sub", "-K", "some.key"], "some.key not found"),
    (["sub", "--bogus"], "No idea what '--bogus' is"),
])
def test_malformed_client_flags_are_a_usage_line_not_a_traceback(tmp_path: Path, args: list[str],
                                                                 words: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env["LAB_DIR"] = str(tmp_path / "lab")
    result = subprocess.run([INVOKE, "-r", str(ROOT), *args], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert words in result.stdout + result.stderr
