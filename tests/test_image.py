"""`invoke image --save/--load`: one file to hand out, checked blob by blob, and an `up` that needs no registry.

On the real Docker engine with a re-labelled copy of the stand-in image (its own image id, so removing it never
touches the image other tests use). There is no registry on these machines, so any pull would fail: an `up`
that succeeds after `docker rmi` and `--load` worked offline.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.container.image import METADATA
from lab.container.runtime import digest_alias, is_pinned
from tests.conftest import LabEnv

FAKE_DIGEST = "sha256:" + "ab" * 32
FAKE_REPO = "registry.example.invalid/amlen/amlen-server"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)


def image_present(reference: str) -> bool:
    return docker("image", "inspect", reference).returncode == 0


def test_digest_alias_and_pinning_rules() -> None:
    hex_digest = "0f" * 32
    assert digest_alias(f"quay.io/amlen/amlen-server@sha256:{hex_digest}") == \
        f"quay.io/amlen/amlen-server:sha256-{hex_digest}"
    assert digest_alias("localhost:5000/amlen@sha256:" + hex_digest) == f"localhost:5000/amlen:sha256-{hex_digest}"
    for not_a_digest in ("quay.io/amlen/amlen-server:main", "amlen@sha256:abc", "sha256:" + hex_digest):
        assert digest_alias(not_a_digest) is None
    assert is_pinned("sha256:" + hex_digest) and is_pinned(f"quay.io/a/b@sha256:{hex_digest}")
    assert not is_pinned("quay.io/amlen/amlen-server:main")


@pytest.fixture(scope="module")
def copy_image(standin_image: str) -> Iterator[tuple[str, str]]:
    """(tag, image id) of a copy of the stand-in with a label of its own: a distinct image id."""
    tag = f"amlen-lab-test/standin-copy:{uuid.uuid4().hex[:8]}"
    built = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], text=True, capture_output=True, timeout=300,
                           input=f"FROM {standin_image}\nLABEL amlen-lab.test.copy={tag}\n")
    assert built.returncode == 0, built.stderr
    image_id = docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
    yield tag, image_id
    docker("rmi", "-f", image_id)


@pytest.fixture(scope="module")
def saved(copy_image: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The copy saved with `invoke image --save` (once for the module: it is a quarter gigabyte)."""
    tag, _ = copy_image
    lab = LabEnv.new(tmp_path_factory.mktemp("image") / "lab", tag)
    target = lab.dir.parent / "amlen-image.tar"
    result = lab.invoke("image", "--save", str(target))
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert f"saved {tag}" in said and "file sha256:" in said
    return target


def remove(image_id: str) -> None:
    docker("rmi", "-f", image_id)
    assert not image_present(image_id)


def test_saved_image_loads_offline_and_up_works_pinned_by_id(
    saved: Path, copy_image: tuple[str, str], tmp_path: Path
) -> None:
    tag, image_id = copy_image
    remove(image_id)
    lab = LabEnv.new(tmp_path / "lab", image_id[:19])  # LAB_IMAGE pinned by (abbreviated) image id
    try:
        loaded = lab.invoke("image", "--load", str(saved))
        assert loaded.returncode == 0, loaded.stderr
        said = " ".join(loaded.stdout.split())
        assert "every blob matched its digest" in said and "is this image: `invoke up` needs no registry" in said
        assert image_present(tag)  # docker load restored the tag the file was saved under
        up = lab.invoke("up", "--no-hosts")
        assert up.returncode == 0, up.stdout + up.stderr
        doctor = json.loads(lab.invoke("doctor", "--json").stdout)
        image_check = next(c for c in doctor["checks"] if c["name"] == "image")
        assert image_check["status"] == "OK" and image_check["detail"].startswith("pinned:")
        assert "the container runs it" in image_check["detail"]
    finally:
        lab.invoke("down", "--purge")


def test_damaged_or_foreign_file_is_refused_before_docker_sees_it(
    saved: Path, copy_image: tuple[str, str], tmp_path: Path
) -> None:
    _, image_id = copy_image
    remove(image_id)
    damaged = tmp_path / "damaged.tar"
    data = bytearray(saved.read_bytes())
    with tarfile.open(saved) as archive:
        # Docker names layers <id>/layer.tar, Podman <diff id>.tar (and links <id>/layer.tar to it).
        layer = next(m for m in archive.getmembers() if m.isfile() and m.name.endswith(".tar") and m.size > 4096)
    data[layer.offset_data + 2048] ^= 0xFF
    damaged.write_bytes(bytes(data))
    lab = LabEnv.new(tmp_path / "lab", image_id)
    result = lab.invoke("image", "--load", str(damaged))
    assert result.returncode == 1 and "does not match its digest" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not image_present(image_id)

    plain = tmp_path / "plain.tar"
    plain.write_bytes(_without_metadata(saved))
    foreign = lab.invoke("image", "--load", str(plain))
    assert foreign.returncode == 1 and "not made by `invoke image --save`" in foreign.stderr


def test_repo_digest_pin_resolves_offline_after_load(saved: Path, copy_image: tuple[str, str], tmp_path: Path) -> None:
    # As if saved on a machine that pulled the image from a registry: the file records its repo digest.
    _, image_id = copy_image
    pulled = tmp_path / "pulled.tar"
    pulled.write_bytes(_with_repo_digest(saved, f"{FAKE_REPO}@{FAKE_DIGEST}"))
    remove(image_id)
    wrong = LabEnv.new(tmp_path / "wrong", f"{FAKE_REPO}@sha256:{'cd' * 32}")
    refused = wrong.invoke("image", "--load", str(pulled))
    assert refused.returncode == 1 and "but LAB_IMAGE pins" in refused.stderr
    assert not image_present(image_id)

    lab = LabEnv.new(tmp_path / "lab", f"{FAKE_REPO}@{FAKE_DIGEST}")
    try:
        loaded = lab.invoke("image", "--load", str(pulled))
        assert loaded.returncode == 0, loaded.stderr
        alias = f"{FAKE_REPO}:sha256-{'ab' * 32}"
        assert f"tagged {alias}" in " ".join(loaded.stdout.split()) and image_present(alias)
        up = lab.invoke("up", "--no-hosts", "--no-verify")  # a pull from example.invalid would fail
        assert up.returncode == 0, up.stdout + up.stderr
        again = lab.invoke("up", "--no-hosts", "--no-verify")
        assert again.returncode == 0 and "container: already done" in " ".join(again.stdout.split())
        doctor = json.loads(lab.invoke("doctor", "--json").stdout)
        image_check = next(c for c in doctor["checks"] if c["name"] == "image")
        assert image_check["status"] == "OK" and image_check["detail"].startswith(f"pinned: {FAKE_REPO}@")
    finally:
        lab.invoke("down", "--purge")


def _rewrite(source: Path, metadata: bytes | None) -> bytes:
    """`source` with its metadata member replaced (or dropped when None)."""
    out = io.BytesIO()
    with tarfile.open(source) as original, tarfile.open(fileobj=out, mode="w") as copy:
        for member in original.getmembers():
            if member.name == METADATA:
                continue
            copy.addfile(member, original.extractfile(member) if member.isfile() else None)
        if metadata is not None:
            info = tarfile.TarInfo(METADATA)
            info.size = len(metadata)
            copy.addfile(info, io.BytesIO(metadata))
    return out.getvalue()


def _without_metadata(source: Path) -> bytes:
    return _rewrite(source, None)


def _with_repo_digest(source: Path, repo_digest: str) -> bytes:
    with tarfile.open(source) as archive:
        handle = archive.extractfile(METADATA)
        assert handle is not None
        record = json.loads(handle.read())
    record["repo_digests"] = [repo_digest]
    return _rewrite(source, json.dumps(record).encode())
