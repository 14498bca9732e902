"""The command line: every task has a one-line summary and help for every flag, as `invoke --list` promises."""

from __future__ import annotations

import os
import subprocess
import sys
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


# What `invoke status` must not load: the plan and its steps, the MQTT clients, the spinner (the status task is
# read-only and reports; these cost about a tenth of a second of imports it does not need).
NOT_FOR_STATUS = ("lab.plan", "lab.steps", "lab.clients.checks", "lab.clients.mqtt", "lab.amlen.configure",
                  "lab.workshop", "lab.doctor",
                  "paho", "rich.status")


def test_tasks_imports_only_the_error_family_and_status_neither_the_plan_nor_paho(tmp_path: Path) -> None:
    from tests.helpers import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(PYTHONPATH=str(ROOT), LAB_DIR=str(tmp_path / "lab"), LAB_ADMIN_PORT=str(free_port()),
               LAB_CONTAINER_NAME=f"amlen-lab-test-status-{tmp_path.name[-8:]}")
    code = ("import sys; import tasks; top = sorted(m for m in sys.modules if m.startswith('lab')); "
            "from invoke import Context; tasks.status(Context(), json=True); "
            f"print('TOP', top); print('LOADED', sorted(m for m in {NOT_FOR_STATUS!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(("TOP", "LOADED")))
    assert lines["TOP"] == "['lab', 'lab.errors']", "tasks.py imports what a task needs inside the task"
    assert lines["LOADED"] == "[]", f"`invoke status` loaded {lines['LOADED']}"
