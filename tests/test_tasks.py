"""The command line: every task has a one-line summary and help for every flag, as `invoke --list` promises."""

from __future__ import annotations

import subprocess

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
