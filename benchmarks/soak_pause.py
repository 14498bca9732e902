"""Soak: N consecutive cold `up`s, each with Amlen frozen (`docker pause`, or SIGSTOP where the engine cannot
pause: `tests.freeze`) while the verification runs, on the engine DOCKER_HOST names.

The issue's bar: 12 of 12 succeed. A frozen Amlen is what a paused VM or a sleeping laptop looks like to the
lab's clients; the freeze lasts longer than a client's timeout, so the first attempts fail and only the
retries (and pause-aware deadlines) can save the run. Prints one line per round and a summary; asserts nothing.

    STANDIN_IMAGE=$(bash tests/standin/build-image.sh | tail -1) .venv/bin/python benchmarks/soak_pause.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from common import ROOT, free_port, image

from lab.clients.tls import DEFAULT_TIMEOUT
from lab.errors import LabError
from lab.plan import StepEvent, StepStatus, down, up
from lab.settings import load_settings
from lab.steps import Options

sys.path.insert(0, str(ROOT))  # the same freeze as the pause tests
from tests.freeze import freeze as freeze_container

PAUSE = DEFAULT_TIMEOUT + 2.0  # longer than one client's timeout






def _round(ref: str, scratch: Path) -> tuple[bool, float, str]:
    tag = uuid.uuid4().hex[:8]
    name = f"soak-{tag}"
    settings = load_settings(env_file=None, dir=scratch / tag, image=ref, container_name=name, memory="1g",
                             tls_port=free_port(), mtls_port=free_port(), admin_port=free_port(),
                             workshop_port=free_port())
    thawed = threading.Event()

    def freeze(event: StepEvent) -> None:
        if event.step == "verification" and event.status is StepStatus.RUNNING:
            thaw_container = freeze_container(name)

            def thaw() -> None:
                time.sleep(PAUSE)
                thaw_container()
                thawed.set()

            threading.Thread(target=thaw, daemon=True).start()

    started = time.perf_counter()
    try:
        report = up(settings, Options(hosts=False), on_event=freeze)
        detail = next(e.detail for e in report.events if e.step == "verification")
        ok = True
    except LabError as exc:
        ok, detail = False, exc.message
    finally:
        thawed.wait(60)
        elapsed = time.perf_counter() - started
        try:
            down(settings, Options(purge=True))
        except LabError as exc:
            detail += f" (down: {exc.message})"
    return ok, elapsed, detail


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    ref = image()
    print(f"image {ref}; Amlen frozen for {PAUSE:.0f} s during each verification")
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(1, rounds + 1):
            ok, elapsed, detail = _round(ref, Path(scratch))
            results.append(ok)
            print(f"{index:2d}. {'ok    ' if ok else 'FAILED'} {elapsed:5.1f} s  {detail}", flush=True)
    print(f"{sum(results)}/{rounds} cold ups succeeded with a pause during verification")


if __name__ == "__main__":
    main()
