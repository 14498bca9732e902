"""lab.testing and the pytest plugin, against the Amlen stand-in on the real Docker engine, with real paho.

The session's `amlen_lab` (the plugin's fixture) runs the stand-in; `amlen_image` is overridden here, as any
project can, to hand it the stand-in image. Every success is paired with the failure it must not hide.
"""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import docker
import docker.errors
import paho.mqtt.client as paho
import pytest

from lab.amlen.admin import AmlenClient
from lab.clients.mqtt import try_connect
from lab.clients.tls import tls_context
from lab.errors import AmlenError, CheckError, ContainerError
from lab.pki.leaves import make_foreign_client
from lab.testing import AmlenLabContainer
from tests.engine_facts import engine_facts

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def amlen_image(standin_image: str) -> str:
    """The plugin's image fixture, overridden: this project's tests run the Amlen stand-in."""
    return standin_image


def _round_trip(client: paho.Client, topic: str) -> None:
    """Subscribe to `topic` on a connected, looping client, publish once, check the same bytes come back."""
    got: list[bytes] = []
    arrived, subscribed = threading.Event(), threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.on_message = lambda _c, _u, msg: (got.append(bytes(msg.payload)), arrived.set())
    client.subscribe(topic, qos=1)
    assert subscribed.wait(5), f"no SUBACK for {topic}"
    payload = secrets.token_bytes(8).hex().encode()
    client.publish(topic, payload, qos=1).wait_for_publish(5)
    assert arrived.wait(5), f"nothing came back on {topic}"
    assert got == [payload]


def _topic() -> str:
    return f"amlen-lab/test/{secrets.token_hex(4)}"


def test_tls_client_publishes_and_receives(
    amlen_tls_client: paho.Client, amlen_lab: AmlenLabContainer
) -> None:
    assert amlen_tls_client.is_connected()
    _round_trip(amlen_tls_client, _topic())
    assert amlen_lab.tls_port not in (amlen_lab.settings.tls_port, amlen_lab.mtls_port)


def test_mtls_client_publishes_and_receives(amlen_mtls_client: paho.Client) -> None:
    assert amlen_mtls_client.is_connected()
    _round_trip(amlen_mtls_client, _topic())


def test_mtls_port_rejects_client_without_certificate(amlen_lab: AmlenLabContainer) -> None:
    bare = try_connect(amlen_lab.host, amlen_lab.mtls_port, context=amlen_lab.ssl_context())
    # The TLS 1.3 alert arrives after paho's handshake, and paho sometimes reports only the reset: assert
    # "reached the server, got no CONNACK", not the alert's words.
    assert bare.reached and not bare.accepted, bare.reason
    context = amlen_lab.ssl_context(amlen_lab.client_name)
    with_cert = try_connect(amlen_lab.host, amlen_lab.mtls_port, context=context)
    assert with_cert.accepted, with_cert.reason


def test_mtls_port_rejects_certificate_from_another_ca(amlen_lab: AmlenLabContainer, tmp_path: Path) -> None:
    _ca, key, cert = make_foreign_client(tmp_path)
    name = amlen_lab.server_hostname
    context = tls_context(ca_file=amlen_lab.ca_file, cert=cert, key=key, server_name=name)
    outcome = try_connect(amlen_lab.host, amlen_lab.mtls_port, context=context)
    assert not outcome.accepted


def test_paho_by_address_verifies_the_lab_name_and_rejects_a_wrong_one(amlen_lab: AmlenLabContainer) -> None:
    assert amlen_lab.host != amlen_lab.server_hostname
    good = try_connect(amlen_lab.host, amlen_lab.tls_port, context=amlen_lab.ssl_context())
    assert good.accepted, good.reason
    wrong = amlen_lab.ssl_context(server_hostname="wrong.getting.started")
    outcome = try_connect(amlen_lab.host, amlen_lab.tls_port, context=wrong)
    assert not outcome.accepted
    assert outcome.hostname_mismatch, outcome.reason


def test_ssl_context_with_server_hostname_completes_a_plain_handshake(amlen_lab: AmlenLabContainer) -> None:
    context = amlen_lab.ssl_context()
    with (
        socket.create_connection((amlen_lab.host, amlen_lab.tls_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=amlen_lab.server_hostname) as tls,
    ):
        names = [value for kind, value in tls.getpeercert()["subjectAltName"] if kind == "DNS"]
    assert amlen_lab.server_hostname in names


def test_connection_params_name_existing_files_and_the_mutual_port(amlen_lab: AmlenLabContainer) -> None:
    tls, mutual = amlen_lab.connection_params(), amlen_lab.connection_params(mutual=True)
    assert (tls["port"], tls["certfile"]) == (amlen_lab.tls_port, None)
    assert mutual["port"] == amlen_lab.mtls_port
    assert Path(mutual["certfile"]).is_file() and Path(mutual["keyfile"]).is_file()
    assert Path(mutual["ca_certs"]).read_bytes() == amlen_lab.ca_file.read_bytes()
    context = ssl.create_default_context(cafile=mutual["ca_certs"])
    context.load_cert_chain(mutual["certfile"], mutual["keyfile"])
    with (
        socket.create_connection((mutual["host"], mutual["port"]), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=mutual["server_hostname"]) as tls_socket,
    ):
        assert tls_socket.version() in ("TLSv1.2", "TLSv1.3")


def test_issued_client_certificate_is_accepted_on_the_mutual_port(amlen_lab: AmlenLabContainer) -> None:
    key, cert = amlen_lab.issue_client_cert("team.b")
    assert key.is_file() and cert.is_file()
    with amlen_lab.connected_client(mutual=True, client_name="team.b") as client:
        _round_trip(client, _topic())
    with pytest.raises(CheckError, match="issue_client_cert"):
        amlen_lab.ssl_context("never.issued")


def test_two_labs_run_side_by_side_and_stop_removes_the_second(
    amlen_lab: AmlenLabContainer, standin_image: str
) -> None:
    second = AmlenLabContainer(standin_image)
    with second:
        container_id = second.get_container_id()
        lab_dir = second.settings.lab_dir
        first_ports = {amlen_lab.admin_port, amlen_lab.tls_port, amlen_lab.mtls_port}
        second_ports = {second.admin_port, second.tls_port, second.mtls_port}
        assert len(first_ports | second_ports) == 6
        with amlen_lab.connected_client(mutual=True) as one, second.connected_client(mutual=True) as two:
            _round_trip(one, _topic())
            _round_trip(two, _topic())
        # Separate CAs: the first lab's client is a stranger to the second lab's mutual-TLS port.
        assert second.ca_file.read_bytes() != amlen_lab.ca_file.read_bytes()
        key, cert = second.pki.client("from.first")
        key.write_bytes(amlen_lab.client_key.read_bytes())
        cert.write_bytes(amlen_lab.client_cert.read_bytes())
        with (
            pytest.raises(CheckError, match=r"before CONNACK|no CONNACK"),
            second.connected_client(mutual=True, client_name="from.first"),
        ):
            pass
        assert lab_dir.is_dir()
    engine = docker.from_env()
    try:
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(container_id)
    finally:
        engine.close()
    assert not lab_dir.exists()
    second.stop()  # a second stop is harmless


def test_missing_image_fails_with_a_hint_and_leaves_nothing(tmp_path: Path) -> None:
    image = f"amlen-lab/no-such-image:{secrets.token_hex(4)}"
    lab = AmlenLabContainer(image, lab_dir=tmp_path / "lab")
    with pytest.raises(ContainerError) as caught:
        lab.start()
    assert image in caught.value.message and caught.value.hint
    engine = docker.from_env()
    try:
        assert not engine.containers.list(all=True, filters={"ancestor": image})
    finally:
        engine.close()


def test_the_module_bounds_amlens_store_like_up_does(amlen_lab: AmlenLabContainer) -> None:
    found = amlen_lab.get_wrapped_container().exec_run(
        ["sh", "-c", "stat -c '%u:%g' /var/lib/amlen-server/data/config/server.cfg; "
                     "du -s -B1 --apparent-size /var/lib/amlen-server/store/persist"])
    owner, apparent = found.output.decode().split("\n")[:2]
    assert owner == "463:463"
    # Four store files of LAB_STORE_FILE_MB (256) each, not filesystem size / 24 each.
    assert int(apparent.split()[0]) <= 4 * amlen_lab.settings.store_file_mb * 2**20 + 2**20


def test_a_container_under_one_gib_fails_naming_amlens_reason(
    standin_image: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lab = AmlenLabContainer(standin_image, lab_dir=tmp_path / "lab", mem_limit="768m")
    if not engine_facts().memory_limits:  # rootless Podman on cgroup v1: no limit, said once, and Amlen runs
        with lab:
            assert lab.get_wrapped_container().attrs["HostConfig"]["Memory"] == 0
        warned = [r.getMessage() for r in caplog.records if "cannot limit" in r.getMessage()]
        assert len(warned) == 1 and "mem_limit=768m is not applied" in warned[0]
        return
    try:
        with pytest.raises(AmlenError) as caught:
            lab.start()
    finally:
        lab.stop()  # a start that wrongly succeeded must not leave its container
    assert "CWLNA1119" in caught.value.message and "1g" in caught.value.message
    engine = docker.from_env()
    try:
        assert not engine.containers.list(all=True, filters={"label": f"amlen-lab.dir={lab.settings.lab_dir}"})
    finally:
        engine.close()


# --- the plugin, as another project uses it -----------------------------------------------------------

README_EXAMPLE = '''
    import threading

    def test_publish_and_receive_over_mutual_tls(amlen_mtls_client):
        got = threading.Event()
        amlen_mtls_client.on_message = lambda client, userdata, msg: got.set()
        amlen_mtls_client.subscribe("demo/topic", qos=1)
        amlen_mtls_client.publish("demo/topic", b"hello", qos=1).wait_for_publish()
        assert got.wait(5)
'''


def _foreign_env(**extra: str) -> dict[str, str]:
    """The environment of a project that knows nothing of this repo's test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "TESTCONTAINERS_"))}
    env.update(extra)
    return env


def test_readme_example_runs_in_another_project(pytester: pytest.Pytester, standin_image: str) -> None:
    pytester.makepyfile(textwrap.dedent(README_EXAMPLE))
    # No TESTCONTAINERS_* variables: Ryuk's image cannot be pulled here, which the module must survive.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--amlen-image={standin_image}"],
        cwd=pytester.path, env=_foreign_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_plugin_leaves_sessions_without_docker_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_plain():
            assert True

        def test_needs_amlen(amlen_lab):
            pass
        """
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rE"],
        cwd=pytester.path, env=_foreign_env(DOCKER_HOST="unix:///nonexistent/docker.sock"),
        capture_output=True, text=True, timeout=120,
    )
    assert "1 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "amlen_lab: Docker is not reachable" in result.stdout
    assert "Traceback" not in result.stdout


def test_plugin_import_starts_nothing_and_imports_no_docker() -> None:
    code = (
        "import sys, pytest; before = set(sys.modules); import lab.testing.pytest_plugin; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['lab']"  # no docker, testcontainers or paho


def test_two_tier_pki_serves_the_chain_and_its_clients_present_theirs(standin_image: str) -> None:
    with AmlenLabContainer(standin_image, pki="intermediate") as amlen:
        assert amlen.settings.pki == "intermediate"
        assert amlen.client_cert.name == f"{amlen.client_name}.chain.pem"
        with amlen.connected_client(mutual=True) as client:
            _round_trip(client, _topic())
        params = amlen.connection_params(mutual=True)
        assert params["certfile"].endswith(".chain.pem")
        shake = subprocess.run(
            ["openssl", "s_client", "-connect", f"{amlen.host}:{amlen.tls_port}", "-servername",
             amlen.server_hostname, "-CAfile", str(amlen.ca_file), "-verify_return_error", "-showcerts"],
            input="", capture_output=True, text=True, timeout=30)
        assert shake.returncode == 0 and shake.stdout.count("BEGIN CERTIFICATE") == 2, shake.stdout[-2000:]
        # A leaf alone is refused: the broker trusts only the root, and a chain must reach it.
        key, leaf = amlen.pki.client(amlen.client_name)
        leaf_only = try_connect(amlen.host, amlen.mtls_port,
                                context=tls_context(ca_file=amlen.ca_file, cert=leaf, key=key,
                                                    server_name=amlen.server_hostname))
        assert leaf_only.reached and not leaf_only.accepted, leaf_only.reason


def test_the_admin_api_is_locked_and_reachable_with_what_the_container_hands_out(
    amlen_lab: AmlenLabContainer,
) -> None:
    import urllib.request

    import requests

    assert amlen_lab.admin_url == f"https://127.0.0.1:{amlen_lab.admin_port}"
    with amlen_lab.admin_client() as admin:
        assert admin.get("Endpoint", amlen_lab.settings.mtls_endpoint) is not None
    context = amlen_lab.admin_ssl_context()
    assert context is not None
    with urllib.request.urlopen(f"{amlen_lab.admin_url}/ima/v1/service/status", context=context, timeout=10) as seen:
        assert seen.status == 200
    cert, key = amlen_lab.admin_cert_files()
    reply = requests.get(f"{amlen_lab.admin_url}/ima/v1/service/status", cert=(str(cert), str(key)),
                         verify=str(amlen_lab.ca_file), timeout=10)
    assert reply.status_code == 200
    # Neither plain HTTP nor HTTPS without the lab.admin certificate gets in.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{amlen_lab.admin_port}/ima/v1/service/status", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{amlen_lab.admin_url}/ima/v1/service/status", verify=str(amlen_lab.ca_file), timeout=5)


def test_the_plugins_admin_fixture_reads_the_configuration(amlen_admin: AmlenClient,
                                                           amlen_lab: AmlenLabContainer) -> None:
    assert amlen_admin.base_url == amlen_lab.admin_url
    profile = amlen_admin.get("SecurityProfile", "AdminDefaultSecProfile") or {}
    assert profile["UseClientCertificate"] is True and profile["UsePasswordAuthentication"] is False
