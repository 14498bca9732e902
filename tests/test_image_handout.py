"""The workshop hand-out across engines: `invoke image --save` on one engine, `--load` and `up` on another.

A room mixes Docker and Podman: the instructor saves the image once, and each seat loads the file into whatever
engine it has, with no registry. The image is a re-labelled copy of the stand-in (an id of its own, absent from
the other engine), saved on the engine DOCKER_HOST names and loaded into the one AMLEN_LAB_OTHER_ENGINE names.
.ci/run starts rootful Podman beside Docker and sets AMLEN_LAB_OTHER_ENGINE for the Docker pass (Docker to
Podman) and the rootful Podman pass (Podman to Docker), so both directions run there; a machine with only one
engine has nothing to hand the file to, and skips this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LabEnv

OTHER = os.environ.get("AMLEN_LAB_OTHER_ENGINE", "")
pytestmark = pytest.mark.skipif(not OTHER, reason="needs a second engine: AMLEN_LAB_OTHER_ENGINE (.ci/run sets it)")


def engine(host: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI against `host` (None: DOCKER_HOST, the engine of this pass)."""
    env = {**os.environ, "DOCKER_HOST": host} if host else None
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def copy_image(standin_image: str) -> Iterator[tuple[str, str]]:
    """(tag, image id) of a copy of the stand-in on this pass's engine, with a label of its own."""
    tag = f"amlen-lab-test/handout:{uuid.uuid4().hex[:8]}"
    built = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], text=True, capture_output=True, timeout=300,
                           input=f"FROM {standin_image}\nLABEL amlen-lab.test.handout={tag}\n")
    assert built.returncode == 0, built.stderr
    image_id = engine(None, "image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
    assert engine(OTHER, "image", "inspect", image_id).returncode != 0, "the other engine has it already"
    yield tag, image_id
    for host in (None, OTHER):
        engine(host, "rmi", "-f", image_id)


def test_image_saved_on_one_engine_loads_and_runs_on_the_other(
    copy_image: tuple[str, str], tmp_path: Path
) -> None:
    tag, image_id = copy_image
    instructor = LabEnv.new(tmp_path / "instructor", tag)
    handout = tmp_path / "amlen.tar"
    saved = instructor.invoke("image", "--save", str(handout))
    assert saved.returncode == 0, saved.stderr

    seat = LabEnv.new(tmp_path / "seat", image_id)  # pinned by id, as the README's hand-out does
    seat.env["DOCKER_HOST"] = OTHER
    try:
        loaded = seat.invoke("image", "--load", str(handout))
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        assert "every blob matched its digest" in " ".join(loaded.stdout.split())
        assert engine(OTHER, "image", "inspect", image_id).returncode == 0
        # The tag it was saved under comes back, as each engine spells it (Podman adds localhost/).
        tags = json.loads(engine(OTHER, "image", "inspect", "-f", "{{json .RepoTags}}", image_id).stdout)
        assert any(t in (tag, f"localhost/{tag}") for t in tags), tags
        up = seat.invoke("up", "--no-hosts")
        assert up.returncode == 0, up.stdout + up.stderr
        status = json.loads(seat.invoke("status", "--json").stdout)
        assert status["engine"]["url"] == OTHER, status["engine"]
        running = engine(OTHER, "inspect", "-f", "{{.Image}}", seat.container_name).stdout.strip()
        assert running == image_id
    finally:
        seat.invoke("down", "--purge")
        engine(OTHER, "rm", "-f", seat.container_name)
        engine(OTHER, "volume", "rm", "-f", f"{seat.container_name}-data")
