"""The public surface stays honest: every exported name exists, and `import lab` stays cheap."""

from __future__ import annotations

import subprocess
import sys

import lab


def test_every_exported_name_resolves() -> None:
    for name in lab.__all__:
        assert getattr(lab, name) is not None, name


def test_import_lab_does_not_import_docker_or_paho() -> None:
    code = "import sys, lab; print(sorted(m for m in ('docker', 'paho', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
