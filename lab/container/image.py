"""`invoke image --save FILE` / `--load FILE`: the lab's Amlen image as one file to hand out, checked on load.

The file is `docker save` output (so plain `docker load` reads it too) with one more member,
`amlen-lab-image.json`: the image id, its tags and the registry digests it had when saved. On load every blob
is checked against its digest before Docker sees the file: the config against the image id, each layer
against the config's diff_ids (or, in the OCI layout, each blob against its name). A wrong or damaged file
changes nothing.

A LAB_IMAGE pinned by registry digest (`repo@sha256:...`) cannot resolve offline after `docker load`, which
does not restore RepoDigests; the loader tags the image with `runtime.digest_alias` instead, which the lab
resolves in place of the digest (the saved file says which image that digest named).
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from docker import DockerClient
from docker.models.images import Image

from lab.container import runtime
from lab.container.engine import docker_error_text
from lab.errors import ContainerError
from lab.settings import Settings

__all__ = [
    "METADATA",
    "ImageFinding",
    "ImageRecord",
    "LoadedImage",
    "SavedImage",
    "check_image",
    "load_image",
    "save_image",
    "verify_image_file",
]

METADATA = "amlen-lab-image.json"
_CHUNK = 1 << 20
_HINT_SAVE = "`invoke image --save FILE` on the machine that has the image makes such a file"


@dataclass(frozen=True)
class ImageRecord:
    """What the file holds: the reference it was saved as, the image id, its tags and registry digests."""

    reference: str
    id: str
    tags: tuple[str, ...]
    repo_digests: tuple[str, ...]

    def pins(self) -> tuple[str, ...]:
        """The LAB_IMAGE values that pin exactly this image: its id and each registry digest."""
        return (self.id, *self.repo_digests)


@dataclass(frozen=True)
class SavedImage:
    """A written image file: where, what it holds, its size and its own sha256 (to publish with it)."""

    path: Path
    record: ImageRecord
    size: int
    sha256: str


@dataclass(frozen=True)
class LoadedImage:
    """A loaded image file: what it held, the digest aliases tagged, and whether LAB_IMAGE now resolves to it."""

    path: Path
    record: ImageRecord
    aliases: tuple[str, ...]
    lab_image: str
    lab_image_resolves: bool


def save_image(settings: Settings, path: Path) -> SavedImage:
    """Write LAB_IMAGE (which must be in Docker's store) to `path` as one checked file."""
    client = runtime.docker_client()
    image = runtime.resolve_image(client, settings.image)
    if image is None or image.id is None:
        raise ContainerError(f"LAB_IMAGE {settings.image} is not in Docker's image store",
                             "`invoke up` pulls it (or `docker pull` it), then save it")
    # Podman gives a local image a digest under `localhost/`: no registry knows it, so it pins nothing elsewhere.
    digests = tuple(d for d in image.attrs.get("RepoDigests") or () if not d.startswith("localhost/"))
    record = ImageRecord(settings.image, image.id, tuple(image.tags), digests)
    # A name makes `docker load` restore it as a tag; by id alone the image would load untagged.
    wanted = runtime.canonical_reference(settings.image)
    named: str | bool = next((t for t in image.tags if runtime.canonical_reference(t) == wanted), bool(image.tags))
    path = path.expanduser().resolve()
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as handle:
            for chunk in image.save(chunk_size=_CHUNK, named=named):
                handle.write(chunk)
        with tarfile.open(partial, "a") as archive:
            data = json.dumps(record.__dict__, indent=2).encode()
            info = tarfile.TarInfo(METADATA)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        verify_image_file(partial)  # never hand out a file that would not load
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ContainerError(f"cannot write {path}: {exc.strerror or exc}", "check the path and free space") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return SavedImage(path, record, path.stat().st_size, _file_sha256(path))


def load_image(settings: Settings, path: Path) -> LoadedImage:
    """Check `path` blob by blob, load it into Docker, and tag digest aliases so a pinned LAB_IMAGE resolves.

    When LAB_IMAGE is pinned (an image id or a registry digest) the file must hold that image; a tag is
    accepted as it comes (the file's tags are restored by `docker load`).
    """
    path = path.expanduser().resolve()
    record = verify_image_file(path)
    if runtime.is_pinned(settings.image) and not any(_same(settings.image, pin) for pin in record.pins()):
        raise ContainerError(
            f"{path.name} holds {record.id[:19]} ({', '.join(record.tags) or 'untagged'}), "
            f"but LAB_IMAGE pins {settings.image}",
            "use the file made from the pinned image, or change LAB_IMAGE",
        )
    client = runtime.docker_client()
    try:
        with path.open("rb") as handle:
            loaded = client.images.load(handle)
    except Exception as exc:  # the docker SDK raises its own family and requests' errors; report any as one line
        raise ContainerError(f"docker could not load {path}: {docker_error_text(exc)}",
                             "check `docker info`; the file itself passed its digest checks") from exc
    image = next((i for i in loaded if i.id == record.id), None) or runtime.resolve_image(client, record.id)
    if image is None:
        raise ContainerError(f"after loading {path.name}, Docker has no image {record.id}", _HINT_SAVE)
    _restore_plain_names(client, image, record)
    aliases = []
    for digest in record.repo_digests:
        alias = runtime.digest_alias(digest)
        if alias is not None:
            repository, _, tag = alias.rpartition(":")
            image.tag(repository, tag)
            aliases.append(alias)
    resolved = runtime.resolve_image(client, settings.image)
    return LoadedImage(path, record, tuple(aliases), settings.image,
                       resolved is not None and resolved.id == record.id)


def _restore_plain_names(client: DockerClient, image: Image, record: ImageRecord) -> None:
    """A file saved on Podman names its tags `localhost/...`; Docker loads them so, and then `amlen-lab/x:1`
    would not resolve. Tag the plain name where it does not (Podman finds the plain name by itself)."""
    for tag in record.tags:
        plain = runtime.canonical_reference(tag)
        if plain != tag and tag.startswith("localhost/") and runtime.resolve_image(client, plain) is None:
            repository, _, name = plain.rpartition(":")
            image.tag(repository, name)


@dataclass(frozen=True)
class ImageFinding:
    """`doctor`'s verdict on LAB_IMAGE: present, pinned, and what the container runs."""

    ok: bool
    detail: str
    hint: str = ""
    id: str | None = None


def check_image(client: DockerClient, image: str, running_id: str | None) -> ImageFinding:
    """Is LAB_IMAGE in Docker's store, one exact image (pinned), and the one the container runs (`running_id`)?"""
    found = runtime.resolve_image(client, image)
    if found is None:
        return ImageFinding(False, f"LAB_IMAGE {image} is not in Docker's image store",
                            "`invoke image --load FILE` (no registry needed), or `invoke up` pulls it")
    if running_id is not None and running_id != found.id:
        return ImageFinding(False, f"the container runs {running_id[:19]}, but LAB_IMAGE {image} is {found.short_id}",
                            "`invoke down` then `invoke up` switches the container to LAB_IMAGE", found.id)
    runs = "; the container runs it" if running_id is not None else ""
    if not runtime.is_pinned(image):
        return ImageFinding(True, f"{image} is {found.short_id}{runs} (a tag, which can move: for identical seats "
                            f"pin LAB_IMAGE={found.id})", id=found.id)
    return ImageFinding(True, f"pinned: {image} is {found.short_id}{runs}", id=found.id)


def verify_image_file(path: Path) -> ImageRecord:
    """The file's record, after checking every blob against its digest; ContainerError naming the first bad one."""
    try:
        with tarfile.open(path, "r:") as archive:
            members = {m.name: m for m in archive.getmembers()}
            record = _record(archive, members, path)
            verified = _verify_blobs(archive, members, path)
    except FileNotFoundError:
        raise ContainerError(f"{path} does not exist", _HINT_SAVE) from None
    except (KeyError, TypeError, ValueError) as exc:  # a manifest naming a member that is not there, or damaged
        raise ContainerError(f"{path.name} is incomplete or damaged ({exc!r})", "copy it again, or make it again") \
            from exc
    except (OSError, tarfile.TarError) as exc:
        raise ContainerError(f"{path} is not a readable image file ({exc})", _HINT_SAVE) from exc
    if record.id.removeprefix("sha256:") not in verified:
        raise ContainerError(f"{path.name}: no blob in it has the recorded image id {record.id}",
                             "the file was changed after it was saved; make it again")
    return record


def _record(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], path: Path) -> ImageRecord:
    if METADATA not in members:
        raise ContainerError(f"{path.name} has no {METADATA}: not made by `invoke image --save`",
                             "`docker load` it yourself and pin LAB_IMAGE to its id, or " + _HINT_SAVE)
    try:
        data = json.loads(_read(archive, members, METADATA))
        return ImageRecord(str(data["reference"]), str(data["id"]), tuple(data.get("tags") or ()),
                           tuple(data.get("repo_digests") or ()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ContainerError(f"{path.name}: {METADATA} is damaged", "make the file again") from exc


def _verify_blobs(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], path: Path) -> set[str]:
    """Check the config and layers of each manifest entry and every OCI blob; the hex digests verified."""
    try:
        manifest = json.loads(_read(archive, members, "manifest.json"))
    except KeyError:
        raise ContainerError(f"{path.name} has no manifest.json: not `docker save` output", _HINT_SAVE) from None
    verified: set[str] = set()
    for name, member in members.items():
        if name.startswith("blobs/sha256/") and member.isfile():
            verified.add(_check(archive, members, name, name.rsplit("/", 1)[1], path))
    for entry in manifest:
        config_name = entry["Config"]
        config_digest = _sha256(archive, members, config_name)
        if config_name.startswith("blobs/sha256/"):
            config_digest = _check(archive, members, config_name, config_name.rsplit("/", 1)[1], path)
        verified.add(config_digest)
        diff_ids = json.loads(_read(archive, members, config_name)).get("rootfs", {}).get("diff_ids", [])
        for layer, diff_id in zip(entry["Layers"], diff_ids, strict=False):
            _check(archive, members, layer, str(diff_id).removeprefix("sha256:"), path)
    return verified


def _check(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str, want: str, path: Path) -> str:
    got = _sha256(archive, members, name)
    if got != want:
        raise ContainerError(f"{path.name}: {name} does not match its digest (sha256 {got[:12]}, expected "
                             f"{want[:12]}): the file is damaged", "copy it again, or make it again")
    return got


def _sha256(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> str:
    with _open(archive, members, name) as handle:
        return _digest(handle)


def _read(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes:
    with _open(archive, members, name) as handle:
        return handle.read()


def _open(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> IO[bytes]:
    member = members[name]
    for _ in range(8):  # `docker save` links a layer shared by two images; follow a few links, never a loop
        if not member.issym():
            break
        member = members[posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))]
    handle = archive.extractfile(member)
    if handle is None:
        raise KeyError(name)
    return handle


def _same(pinned: str, candidate: str) -> bool:
    """Does LAB_IMAGE `pinned` name `candidate` (an id may be abbreviated: `sha256:9f67f0fc`)?"""
    return candidate == pinned or (pinned.startswith("sha256:") and candidate.startswith(pinned))


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return _digest(handle)


def _digest(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()

