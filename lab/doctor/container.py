"""Doctor: the Docker engine, the lab container, its memory, ports and volume."""

from __future__ import annotations

from typing import Any

from lab.doctor.findings import Run, Status
from lab.errors import LabError

_LOOPBACK = {"127.0.0.1", "::1"}

# --- Docker and the container -----------------------------------------------------------------------------


def docker_engine(run: Run) -> None:
    """Which engine answers (name, version, rootless or not, socket), and whether it is on this machine."""
    from lab.container.engine import connect  # imported late: the docker SDK is slow to import

    try:
        run.engine = connect()
    except LabError as exc:
        run.add("engine", Status.FAIL, exc.message, exc.hint or "")
        return
    run.docker = run.engine.client
    run.add("engine", Status.OK, f"{run.engine.describe()} reachable", engine=run.engine.as_dict())


def container(run: Run) -> None:
    if run.docker is None:
        return run.skip("lab container", "Docker")
    from lab.container.runtime import find_lab_container

    container = find_lab_container(run.docker, run.settings)
    if container is None:
        return run.add("lab container", Status.FAIL, f"no container labelled for {run.settings.lab_dir}",
                       "`invoke up` creates it")
    state = container.attrs.get("State", {})
    if container.status != "running":
        return run.add(
            "lab container", Status.FAIL,
            f"{container.name} is {container.status} (exit code {state.get('ExitCode')})",
            "`invoke logs` shows why it stopped; `invoke up` starts it again", id=container.short_id,
        )
    run.container = container
    # docker-py gives no image when the container's record names none; say so rather than fail the doctor.
    image = container.image
    image_name = (", ".join(image.tags) or image.short_id) if image is not None else "unknown"
    run.add("lab container", Status.OK, f"{container.name} ({container.short_id}) running, image {image_name}",
            id=container.short_id)


def image(run: Run) -> None:
    """LAB_IMAGE in Docker's store, pinned to one exact image, and the one the container runs."""
    if run.docker is None:
        return run.skip("image", "Docker")
    from lab.container.image import check_image

    running = run.container.image if run.container is not None else None
    try:
        finding = check_image(run.docker, run.settings.image, running.id if running is not None else None)
    except LabError as exc:
        return run.add("image", Status.FAIL, exc.message, exc.hint or "")
    run.add("image", Status.OK if finding.ok else Status.FAIL, finding.detail, finding.hint, id=finding.id)


def published_ports(run: Run) -> None:
    if run.container is None:
        return run.skip("published ports", "the lab container running")
    from lab.container.runtime import published_ports

    ports = published_ports(run.container)
    shown = ", ".join(f"{ip or '0.0.0.0'}:{host_port}->{port}" for port, (ip, host_port) in sorted(ports.items()))
    # The workshop port may be published for the room on purpose (`invoke workshop --expose`); no other port.
    workshop = run.settings.workshop_port
    open_wide = [f"{host_port}" for port, (ip, host_port) in sorted(ports.items())
                 if ip not in _LOOPBACK and port != workshop]
    exposed = next((ip for port, (ip, _) in ports.items() if port == workshop and ip not in _LOOPBACK), None)
    if exposed and not open_wide:
        return run.add("published ports", Status.OK, f"loopback only, but the workshop port {workshop} on "
                       f"{exposed} for the room (`invoke workshop --expose`): {shown}", ports=ports)
    if open_wide:
        return run.add("published ports", Status.WARN,
                       f"published on all interfaces: {shown}; the admin API has no password",
                       "recreate the container with `invoke down --keep-certs && invoke up` (binds 127.0.0.1)",
                       ports=ports)
    run.add("published ports", Status.OK, f"loopback only: {shown}", ports=ports)


def memory(run: Run) -> None:
    """Amlen allows 2 x 4000 connections per whole GiB: a container under 1 GiB takes none (CWLNA1119)."""
    if run.container is None:
        return run.skip("container memory", "the lab container running")
    from lab.container.volume import format_bytes
    from lab.values import MIN_MEMORY

    limit = int((run.container.attrs.get("HostConfig") or {}).get("Memory") or 0)
    if not limit and run.engine is not None and not run.engine.memory_limits:
        host = format_bytes(run.engine.host_memory) if run.engine.host_memory else "memory"
        return run.add("container memory", Status.OK,
                       f"no limit: {run.engine.name} cannot limit memory for this user (no memory cgroup "
                       f"controller), so Amlen sizes itself from the host's {host}")
    if not limit:
        return run.add("container memory", Status.OK, "no limit: Amlen sizes itself from the machine's memory")

    shown = format_bytes(limit)
    if limit < MIN_MEMORY:
        return run.add("container memory", Status.FAIL,
                       f"{shown}: under 1 GiB Amlen accepts its configuration but refuses every connection "
                       "(CWLNA1119 'too many active connections')",
                       "set LAB_MEMORY=1g or more, then `invoke down` and `invoke up`", limit=limit)
    run.add("container memory", Status.OK, f"{shown} (Amlen allows {limit // MIN_MEMORY * 8000} connections)",
            limit=limit)


# Above this a lab volume is not light any more: Amlen's own sizing (fs/24 per store file) gets there.
VOLUME_WARN_BYTES = 4 << 30


def lab_volume(run: Run) -> None:
    """What the data volume holds (apparent size counts: Amlen fallocates its store files)."""
    if run.container is None:
        return run.skip("lab volume", "the lab container running")
    from lab.container.volume import format_bytes, volume_usage

    usage = volume_usage(run.container)
    if usage is None:
        return run.add("lab volume", Status.WARN, "could not measure the volume (`du` in the container failed)",
                       "`docker system df -v` shows volume sizes")
    store = (f"Store.PersistFileSizeMB = {usage.store_file_mb}" if usage.store_file_mb is not None
             else "Store.PersistFileSizeMB unset: Amlen sized its store from the disk (fs/24 per file)")
    words = f"holds {format_bytes(usage.apparent_bytes)} ({format_bytes(usage.disk_bytes)} on disk); {store}"
    data: dict[str, Any] = {"apparent_bytes": usage.apparent_bytes, "disk_bytes": usage.disk_bytes,
            "store_file_mb": usage.store_file_mb}
    if max(usage.apparent_bytes, usage.disk_bytes) > VOLUME_WARN_BYTES:
        return run.add("lab volume", Status.WARN, words,
                       "a volume made by this lab is bounded by LAB_STORE_FILE_MB (256: about 1.1 GiB); "
                       "`invoke down` then `invoke up` makes a new one (certificates stay)", **data)
    run.add("lab volume", Status.OK, words, **data)
