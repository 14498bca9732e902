"""The stand-in sizes itself like Amlen: connections from memory, the store from the disk (reference appendix,
"Observed later (2026-11-29)").

- Under 1 GiB (``--memory 512m`` or an ``IMATotalMemSizeMB`` below 1024) the server starts, accepts every POST and
  lists its endpoints, but closes each connection at once with CWLNA1119; ``BadConnections`` counts them.
- A fresh store sizes each of its four ``store/persist/ST_*`` files to filesystem size / 24 (512 MiB .. 16 GiB)
  unless ``Store.PersistFileSizeMB`` in ``data/config/server.cfg`` says otherwise (256 .. 65536); the stand-in
  creates them sparse. A value out of range, or a ``server.cfg`` the server cannot write, stops the start.
"""

from __future__ import annotations

import io
import socket
import tarfile
import uuid
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from tests.standin_helpers import (
    DATA_PATH,
    AdminApi,
    Pki,
    RunningStandin,
    assert_success,
    client_context,
    create_standin,
    endpoint,
    make_pki,
    poll,
    put_file,
    secure_profile,
    standin_with_api,
    start_created,
    stop_standin,
    tls_mqtt_probe,
    wait_exited,
)

pytestmark = pytest.mark.docker

TLS_PORT = 8889
ENDPOINT = "TLSTestPort"
SERVER_CFG = f"{DATA_PATH}/data/config/server.cfg"
PERSIST = f"{DATA_PATH}/store/persist"
ST_FILES = ("ST_0_0", "ST_0_1", "ST_1_0", "ST_1_1")
MIB = 1 << 20


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("standin-resources-pki"))


@pytest.fixture
def volume() -> Iterator[str]:
    """A fresh named Docker volume for the data path, removed afterwards."""
    client = docker.from_env()
    created = client.volumes.create(name=f"amlen-standin-test-{uuid.uuid4().hex[:8]}")
    yield str(created.name)
    created.remove(force=True)


def configure_tls_endpoint(api: AdminApi, pki: Pki) -> None:
    """The guide's TLS endpoint (certificate profile, security profile, endpoint on 8889)."""
    secure_profile(api, pki, "TestServerSecProfile", client_certificates=False)
    assert_success(api.post({"Endpoint": {ENDPOINT: endpoint(TLS_PORT, "TestServerSecProfile")}}))


def read_file(container: Container, path: str) -> tuple[bytes, tarfile.TarInfo]:
    """A file of a (created, running or stopped) container, with its owner and mode."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.getmembers()[0]
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read(), member


def start_with_server_cfg(
    image: str, volume: str | None, extra: bytes
) -> tuple[RunningStandin, bytes, tarfile.TarInfo]:
    """Create a stand-in, append ``extra`` to its ``server.cfg`` (owned 463) and start it.

    Also returns the ``server.cfg`` found in the created container and its archive entry (owner, mode).
    """
    container = create_standin(image, volume=volume)
    try:
        found, info = read_file(container, SERVER_CFG)
        put_file(container, SERVER_CFG, found + extra)
        return start_created(container), found, info
    except BaseException:
        container.remove(force=True)
        raise


def store_sizes(standin: RunningStandin) -> tuple[dict[str, int], int]:
    """Apparent size of each ST_* file, and the real disk usage of the persist directory, in bytes."""
    listing = standin.container.exec_run(["du", "-b", "--apparent-size", *ST_FILES], workdir=PERSIST)
    apparent = {line.split()[1]: int(line.split()[0]) for line in listing.output.decode().splitlines()}
    used = standin.container.exec_run(["du", "-s", "-B1", PERSIST]).output.decode().split()[0]
    return apparent, int(used)


# ---- memory ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mem_limit", "environment"),
    [("512m", {}), ("1g", {"IMATotalMemSizeMB": "1000"})],
    ids=["docker-memory-512m", "IMATotalMemSizeMB-1000"],
)
def test_under_one_gib_every_connection_is_closed_with_1119(
    standin_image: str, pki: Pki, mem_limit: str, environment: dict[str, str]
) -> None:
    ports = (9089, TLS_PORT)
    with standin_with_api(standin_image, ports=ports, environment=environment, mem_limit=mem_limit) as (standin, api):
        configure_tls_endpoint(api, pki)  # every POST is accepted
        (entry,) = api.monitor(ENDPOINT).json()["Endpoint"]
        assert (entry["Enabled"], entry["LastErrorCode"]) == (True, 0)
        assert standin.listening_inside(TLS_PORT), "the port accepts TCP"

        outcome = tls_mqtt_probe(standin.host_port(TLS_PORT), client_context(pki))
        assert outcome.handshake_error is not None, f"closed before any TLS byte: {outcome}"
        with socket.create_connection(("127.0.0.1", standin.host_port(TLS_PORT)), timeout=10) as raw:
            raw.settimeout(10)
            assert raw.recv(1) == b"", "the server closes a plain TCP connection at once"

        connection_log = f"{DATA_PATH}/diag/logs/imaserver-connection.log"
        line = (
            "CWLNA1119 Closing TCP connection because there are too many active connections. "
            f'Endpoint="{ENDPOINT}" From='
        )
        assert poll(lambda: line in standin.read_file(connection_log)), standin.read_file(connection_log)
        bad = poll(lambda: api.monitor(ENDPOINT).json()["Endpoint"][0]["BadConnections"] >= 2)
        assert bad, api.monitor(ENDPOINT).json()
        assert api.status().json()["Server"]["State"] == 1


# ---- store -------------------------------------------------------------------------------------------------


def test_fresh_store_files_are_sparse_and_sized_from_the_filesystem(standin_image: str, pki: Pki) -> None:
    with standin_with_api(standin_image, ports=(9089, TLS_PORT)) as (standin, api):
        statfs = standin.container.exec_run(["stat", "-f", "-c", "%b %s", PERSIST]).output.split()
        blocks, block_size = int(statfs[0]), int(statfs[1])
        expected = min(max(blocks * block_size // 24, 512 * MIB), 16 * 1024 * MIB)
        apparent, used = store_sizes(standin)
        assert apparent == dict.fromkeys(ST_FILES, expected)
        assert used < 4 * MIB, "sparse: no real disk behind the files"
        assert "filesystem size / 24" in standin.read_file(f"{DATA_PATH}/diag/logs/imaserver-default.log")

        # With 1 GiB the same endpoint that a 512 MiB server refuses carries MQTT (the contract tests go further).
        configure_tls_endpoint(api, pki)
        assert tls_mqtt_probe(standin.host_port(TLS_PORT), client_context(pki)).mqtt_accepted


def test_store_size_from_server_cfg_put_into_the_created_container(standin_image: str, volume: str) -> None:
    standin, shipped, info = start_with_server_cfg(standin_image, volume, b"Store.PersistFileSizeMB = 256\n")
    try:
        assert (info.uid, info.gid, info.mode & 0o777) == (463, 463, 0o644), "copied into the new volume"
        assert b"Store.PersistFileSizeMB" not in shipped
        assert b"HA.AllowSingleNIC = 1" in shipped
        apparent, used = store_sizes(standin)
        assert apparent == dict.fromkeys(ST_FILES, 256 * MIB)
        assert used < 4 * MIB
        assert "Store.PersistFileSizeMB" in standin.read_file(f"{DATA_PATH}/diag/logs/imaserver-default.log")
    finally:
        stop_standin(standin)


@pytest.mark.parametrize(
    ("server_cfg", "owner", "expected"),
    [
        (b"Store.PersistFileSizeMB = 100\n", 463, "Store.PersistFileSizeMB (100) is not valid"),
        (b"Store.PersistFileSizeMB = 65537\n", 463, "Store.PersistFileSizeMB (65537) is not valid"),
        (b"ProductMode = 0\n", 0, "is not writable by the server user"),
    ],
    ids=["size-100", "size-65537", "root-owned-server-cfg"],
)
def test_server_refuses_to_start_with_a_bad_store_size_or_a_foreign_server_cfg(
    standin_image: str, server_cfg: bytes, owner: int, expected: str
) -> None:
    container = create_standin(standin_image)
    try:
        put_file(container, SERVER_CFG, server_cfg, uid=owner, gid=owner)
        container.start()
        assert wait_exited(container) != 0
        console = container.logs().decode(errors="replace")
        assert expected in console, console
        start_log, _ = read_file(container, f"{DATA_PATH}/diag/logs/imaserver_start.log")
        assert expected in start_log.decode(), start_log
    finally:
        container.remove(force=True)


def test_store_files_of_an_existing_volume_are_kept(standin_image: str, volume: str) -> None:
    """Only a fresh store is sized: a later start with another setting leaves the existing files alone."""
    first = start_created(create_standin(standin_image, volume=volume))
    apparent, _ = store_sizes(first)
    stop_standin(first)
    second, _, _ = start_with_server_cfg(standin_image, volume, b"Store.PersistFileSizeMB = 300\n")
    try:
        assert store_sizes(second)[0] == apparent
        assert "existing files kept" in second.read_file(f"{DATA_PATH}/diag/logs/imaserver-default.log")
    finally:
        stop_standin(second)
