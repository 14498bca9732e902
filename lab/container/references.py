"""Image references across engines: tags, ids, registry digests and their local aliases, as each engine spells them.

Docker keeps a loaded `amlen-lab/x:1` as given; Podman names it `localhost/amlen-lab/x:1`, a pulled `debian:12`
`docker.io/library/debian:12`, and refuses an abbreviated `sha256:` id. `docker load` restores no registry
digest, so a LAB_IMAGE pinned by one resolves through a local alias tag (`repo:sha256-<hex>`).
"""

from __future__ import annotations

from collections.abc import Callable

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.images import Image
from docker.utils import parse_repository_tag

from lab.container.engine import docker_error_text
from lab.errors import ContainerError

__all__ = ["canonical_reference", "digest_alias", "ensure_image", "image_matches", "is_pinned", "resolve_image"]


def digest_alias(image: str) -> str | None:
    """The local tag standing in for a digest reference: `repo@sha256:<hex>` -> `repo:sha256-<hex>`.

    `docker load` does not restore an image's RepoDigests (they belong to a registry), so a LAB_IMAGE pinned by
    repo digest would not resolve offline; `invoke image --load` tags the loaded image with this alias, checked
    against the digest recorded when it was saved. None for a reference that is not a repo digest.
    """
    repository, _, digest = image.partition("@")
    algorithm, _, hex_digest = digest.partition(":")
    if not repository or algorithm != "sha256" or len(hex_digest) != 64:
        return None
    return f"{repository}:sha256-{hex_digest}"


def is_pinned(image: str) -> bool:
    """Does LAB_IMAGE name one exact image (an image id, or a registry digest), not a tag that can move?"""
    return image.startswith("sha256:") or "@sha256:" in image


def canonical_reference(reference: str) -> str:
    """`reference` as engines compare it: without Podman's `localhost/` or Docker Hub's implied parts, with a tag.

    Podman names a loaded `amlen-lab/x:1` `localhost/amlen-lab/x:1` and a pulled `debian:12`
    `docker.io/library/debian:12`; Docker names them as given. Both are the same image to the user.
    """
    name = reference
    for prefix in ("localhost/", "docker.io/library/", "index.docker.io/library/", "docker.io/",
                   "index.docker.io/"):
        if name.startswith(prefix):
            name = name.removeprefix(prefix)
            break
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1] and not name.startswith("sha256:"):
        name += ":latest"
    return name


def _references(image: str) -> list[str]:
    """How to ask an engine for `image`: as given, then its digest alias, then an abbreviated id without
    `sha256:` (Podman refuses `sha256:` with fewer than 64 hex digits; both engines take the bare prefix)."""
    found = [image]
    alias = digest_alias(image)
    if alias is not None:
        found.append(alias)
    if image.startswith("sha256:") and len(image) < 71:
        found.append(image.removeprefix("sha256:"))
    return found


def resolve_image(client: docker.DockerClient, image: str) -> Image | None:
    """The local image `image` names (a tag, an id, `repo@sha256:...` or its alias); None when absent."""
    refused: docker.errors.APIError | None = None
    for reference in _references(image):
        try:
            return client.images.get(reference)
        except docker.errors.ImageNotFound:
            continue
        except docker.errors.APIError as exc:  # Podman: "invalid format" for an abbreviated `sha256:` id
            refused = exc
    if refused is not None and not image.startswith("sha256:"):
        raise ContainerError(f"cannot inspect image {image}: {docker_error_text(refused)}") from refused
    return None


def _local_reference(client: docker.DockerClient, image: str) -> str:
    """What to create the container from: `image`, its digest alias when only that is local (the daemon knows
    `repo@sha256:` only from a pull), or the full id for a pinned id (Podman takes no abbreviated `sha256:`)."""
    if image.startswith("sha256:"):
        found = resolve_image(client, image)
        return str(found.id) if found is not None and found.id else image
    alias = digest_alias(image)
    if alias is None:
        return image
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return alias
    return image


def ensure_image(client: docker.DockerClient, image: str, *, progress: Callable[[str], None]) -> bool:
    """Make sure `image` is present; pull it when missing. True when it had to be pulled."""
    if resolve_image(client, image) is not None:
        return False
    repository, tag = parse_repository_tag(image)  # `repo@sha256:...` gives the digest as the "tag"
    tag = tag or "latest"
    try:
        layers: dict[str, str] = {}
        for event in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise docker.errors.APIError(event["error"])
            if "id" in event and "status" in event:
                layers[event["id"]] = event["status"]
                done = sum(1 for s in layers.values() if s in ("Pull complete", "Already exists"))
                progress(f"pulling {image}: {done}/{len(layers)} layers")
        client.images.get(image)
    except docker.errors.DockerException as exc:
        raise ContainerError(
            f"cannot pull image {image} ({docker_error_text(exc)})",
            "check the network or `docker login`; for offline use `docker load` an image and set LAB_IMAGE",
        ) from exc
    return True


def image_matches(container: Container, image: str) -> bool:
    """Does `container` run `image` (a tag, `name@sha256:...` or an image id), however the engine spells it?"""
    found = container.image
    if found is None:
        return False
    names = {canonical_reference(str(r)) for r in (*found.tags, *(found.attrs.get("RepoDigests") or []))}
    alias = digest_alias(image)
    if alias is not None and canonical_reference(alias) in names:
        return True
    if image.startswith("sha256:"):
        return str(found.id).startswith(image)
    return canonical_reference(image) in names
