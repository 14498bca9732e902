"""`--explain` and `invoke guide`: the lab's steps as commands a person can type, and proof that they are true.

The script test runs the generated bash script with real openssl, curl and mosquitto clients (no lab Python)
in an empty directory against a fresh Amlen stand-in, then checks the result with the lab's own TLS matrix.
Like the other end-to-end tests it runs as root (CI does): the script gets a private /etc/hosts.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from lab.amlen.admin import payload
from lab.amlen.configure import desired_objects
from lab.clients.checks import run_matrix
from lab.clients.rows import Target
from lab.learn.explain import guide_steps, teardown_steps
from lab.learn.guide import explanation, guide_markdown, guide_script
from lab.pki.disk import Action
from lab.pki.info import describe_certificate
from lab.pki.leaves import ensure_certificates
from lab.pki.lint import lint_certificates
from lab.pki.paths import pki_paths
from lab.plan import configure_steps, up_steps
from lab.settings import Settings, load_settings
from lab.steps.admin import securing_calls
from tests.conftest import INVOKE, ROOT, LabEnv
from tests.helpers import free_port

PASSPHRASE = "explain-" + secrets.token_hex(8)
_HEREDOC = re.compile(r"<<'JSON'\n(.*?)\nJSON", re.DOTALL)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A lab with its own ports and host name in a temp directory (nothing made yet)."""
    return load_settings(dir=tmp_path / "lab", hostname=f"explain-{secrets.token_hex(3)}.getting.started",
                         tls_port=free_port(), mtls_port=free_port(), admin_port=free_port(),
                         workshop_port=free_port(), ca_passphrase=PASSPHRASE)


def _run_commands(settings: Settings, step: str, cwd: Path) -> None:
    """Run the guide's commands of one plan step with bash in `cwd`, as a reader would paste them."""
    text = "\n".join(c.text for s in guide_steps(settings) if s.step == step for c in s.commands if c.in_script)
    env = {"PATH": os.environ["PATH"], "LAB_CA_PASSPHRASE": PASSPHRASE}
    subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.mark.parametrize("pki", ["root", "intermediate"])
def test_openssl_commands_make_the_certificates_the_lab_makes(settings: Settings, tmp_path: Path, pki: str) -> None:
    settings = settings.replace(pki=pki)
    by_hand = settings.replace(dir=tmp_path / "by-hand")
    by_hand.pki_dir.mkdir(parents=True)
    _run_commands(by_hand, "certificates", by_hand.pki_dir)
    ensure_certificates(settings)

    assert lint_certificates(by_hand) == []
    # The lab adopts the hand-made set as it is: same rules, same names, the CA key opens with the passphrase.
    assert {r.action for r in ensure_certificates(by_hand)} == {Action.REUSED}
    mine, theirs = pki_paths(settings), pki_paths(by_hand)
    pairs = [(mine.ca_cert, theirs.ca_cert), (mine.server_cert, theirs.server_cert),
             *((mine.client(n)[1], theirs.client(n)[1]) for n in settings.client_names)]
    if pki == "intermediate":
        pairs += [(mine.intermediate_cert, theirs.intermediate_cert)]
        # The chain files are the same bytes in the same order: leaf, then the intermediate.
        assert theirs.served_cert.read_bytes() == theirs.server_cert.read_bytes() + \
            theirs.intermediate_cert.read_bytes()
        client = settings.client_names[0]
        assert theirs.client_presented(client)[1].read_bytes() == theirs.client(client)[1].read_bytes() + \
            theirs.intermediate_cert.read_bytes()
    for lab_file, openssl_file in pairs:
        lab, manual = describe_certificate(lab_file), describe_certificate(openssl_file)
        for field in ("subject", "issuer", "san", "key_usage", "extended_key_usage", "is_ca", "key_type", "key_bits"):
            assert getattr(manual, field) == getattr(lab, field), (openssl_file.name, field)
        assert abs(manual.days_left - lab.days_left) <= 1, openssl_file.name
    assert b"ENCRYPTED PRIVATE KEY" in theirs.ca_key.read_bytes()
    assert b"ENCRYPTED" not in theirs.server_key.read_bytes()


def test_guide_posts_exactly_what_the_lab_posts_with_the_webui_route_beside_each(settings: Settings) -> None:
    ensure_certificates(settings)
    markdown = guide_markdown(settings)
    bodies = [json.loads(body) for body in _HEREDOC.findall(markdown)]
    # The admin plane's calls first (the user and password go in an unquoted heredoc: the shell fills them in),
    # then the guide's objects.
    locking = [call.body for call in securing_calls(settings, secrets=False) if "AdminUserID" not in call.body]
    assert bodies == [*locking, *(payload(obj) for obj in desired_objects(settings, pki_paths(settings)))]
    for step in guide_steps(settings):
        for command in step.commands:
            if "/ima/v1/configuration" in command.text or "/ima/v1/file/" in command.text:
                assert command.webui, command.text
                assert "--fail-with-body" in command.text
            if "/ima/v1/file/" in command.text:
                assert "-X PUT --data-binary @" in command.text
    assert "# WebUI: Server > Security Settings > Certificate Profiles" in markdown
    assert f"# WebUI: Messaging > Message Hubs > {settings.message_hub} > Endpoints" in markdown


def test_guide_follows_the_guides_sections_in_order(settings: Settings) -> None:
    headings = re.findall(r"^## \d+\. (.+)$", guide_markdown(settings), re.MULTILINE)
    assert headings == ["Before you start: Amlen in a container", "The toy CA", "Lock the admin API",
                        "The server certificate",
                        "Certificate profile", "Security profile", "Endpoint", "Hosts entry", "Clients",
                        "Debugging", "Mutual TLS", "Your application", "Clean up"]


def test_explain_has_a_block_for_every_plan_step(settings: Settings) -> None:
    up = explanation(settings)
    assert {step.name for step in [*up_steps(), *configure_steps()]} <= set(up.blocks)
    down = explanation(settings, down=True)
    assert list(down.blocks) == ["hosts entry", "amlen configuration", "container", "certificates"]
    assert {s.step for s in teardown_steps(settings)} == set(down.blocks)


def test_script_is_strict_bash_that_needs_no_root_no_docker_and_holds_no_secret(settings: Settings) -> None:
    ensure_certificates(settings)
    script = guide_script(settings)
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert PASSPHRASE not in script and "PRIVATE KEY" not in script
    assert 'AMLEN_ADMIN_URL="${AMLEN_ADMIN_URL:-' + settings.admin_base_url + '}"' in script
    run_lines = [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert not [line for line in run_lines if re.match(r"^(sudo|docker)\b", line)]
    assert f"getent hosts {settings.hostname}" in script


def test_guide_prints_markdown_or_writes_files_and_a_bad_path_is_one_line(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LAB_")}, "LAB_DIR": str(tmp_path / "lab")}

    def guide(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([INVOKE, "-r", str(ROOT), "guide", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=60)

    printed = guide()
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("# The Amlen TLS guide, for this lab\n")
    written = guide("--output", "guide.md", "--script", "guide.sh")
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "guide.md").read_text() == printed.stdout
    assert os.access(tmp_path / "guide.sh", os.X_OK)
    assert "wrote guide.md" in written.stdout and "wrote guide.sh" in written.stdout

    failed = guide("--output", "/proc/amlen-lab/guide.md")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stdout + failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "guide.md" in errors[0] and "hint:" in errors[0], failed.stderr


# --- on the real Docker engine and the Amlen stand-in ----------------------------------------------------


@pytest.fixture
def fresh_standin(lab_env: LabEnv, standin_image: str) -> Iterator[None]:
    """A fresh stand-in published at the lab's own port numbers (the script configures them inside Amlen)."""
    client = docker.from_env()
    ports = {"9089/tcp": ("127.0.0.1", lab_env.admin_port)}
    ports |= {f"{port}/tcp": ("127.0.0.1", port) for port in (lab_env.tls_port, lab_env.mtls_port)}
    client.containers.run(standin_image, detach=True, name=lab_env.container_name, mem_limit="1g", ports=ports,
                          labels={"amlen-lab.test": "explain"})
    try:
        yield
    finally:
        client.close()  # the lab_env fixture removes the container


@pytest.mark.parametrize("pki", ["root", "intermediate"])
def test_guide_script_alone_makes_a_lab_that_passes_verify(lab_env: LabEnv, fresh_standin: None,
                                                          tmp_path: Path, pki: str) -> None:
    lab_env.env["LAB_PKI"] = pki
    script = tmp_path / "guide.sh"
    written = lab_env.invoke("guide", "--script", str(script))
    assert written.returncode == 0, written.stderr
    workdir = tmp_path / "empty"
    workdir.mkdir()
    # The host name resolves through a hosts file of the script's own (a private mount namespace): other test
    # runs rewrite the shared /etc/hosts, and a reader can catch it half-written.
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {lab_env.hostname}\n")
    # Nothing of the lab: a bare environment, real openssl, curl and mosquitto clients.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LAB_CA_PASSPHRASE": PASSPHRASE,
           "AMLEN_ADMIN_URL": f"https://127.0.0.1:{lab_env.admin_port}",
           "AMLEN_OPEN_URL": f"http://127.0.0.1:{lab_env.admin_port}"}
    isolated = ["unshare", "--mount", "sh", "-c", 'mount --bind "$1" /etc/hosts && exec bash "$2"', "sh",
                str(hosts), str(script)]
    run = subprocess.run(isolated, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "skipped" not in run.stdout, run.stdout
    # The guide's three refusals, and the locked admin API's two: plain HTTP, and HTTPS without lab.admin.
    assert run.stdout.count("refused, as expected") == 5
    assert run.stdout.count("topic1/subtopic2 hello 5") == 2

    client = lab_env.settings().client_names[0]
    target = Target(hostname=lab_env.hostname, address="127.0.0.1", tls_port=lab_env.tls_port,
                    mtls_port=lab_env.mtls_port, ca_file=workdir / "myCA.pem",
                    client_key=workdir / f"{client}.key",
                    client_cert=workdir / (f"{client}.chain.pem" if pki == "intermediate" else f"{client}.crt"))
    report = run_matrix(target, no_hosts=True)
    chain_row = next(r for r in report.rows if r.row == 7)
    issuers = "'amlen-lab toy intermediate CA'" if pki == "intermediate" else "'amlen-lab toy CA'"
    assert f"presented: leaf '{lab_env.hostname}' (issuer {issuers})" in chain_row.detail
    assert report.passed, [(r.row, r.protocol, r.detail) for r in report.rows if not r.passed]


def _between(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_up_explain_shows_every_step_by_hand_and_no_secret(lab_env: LabEnv) -> None:
    up = lab_env.invoke("up", "--explain", "--no-hosts", LAB_CA_PASSPHRASE=PASSPHRASE)
    assert up.returncode == 0, up.stdout + up.stderr
    out = up.stdout
    settings, pki = lab_env.settings(), pki_paths(lab_env.settings())
    expected = {
        "preflight": ["docker info", f"sport = :{lab_env.tls_port}"],
        "certificates": ["openssl genrsa -aes256 -passout env:LAB_CA_PASSPHRASE -out myCA.key 2048",
                         "openssl req -x509", f"subjectAltName=DNS:{lab_env.hostname}",
                         "extendedKeyUsage=clientAuth", "-days 825"],
        "container": ["docker volume create", "Store.PersistFileSizeMB = 256",
                      f"docker run -d --name {lab_env.container_name} --memory 1g",
                      f"-p 127.0.0.1:{lab_env.tls_port}:{lab_env.tls_port}"],
        "admin certificates": ["-subj /CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                               "-subj /CN=lab.admin", "admin.netrc"],
        "readiness": ["/ima/v1/service/status"],
        "admin plane": ["AdminUserID", "--data-binary @admin-server.crt", "TLSEnabled",
                        "UseClientCertificate", '"CommonNames": "lab.admin"',
                        "--cacert myCA.pem --cert lab.admin.crt --key lab.admin.key"],
        "amlen configuration": ["-X PUT --data-binary @test.server.crt", "-X PUT --data-binary @myCA.pem",
                                "--cacert myCA.pem --cert lab.admin.crt --key lab.admin.key",
                                "# WebUI: Server > Security Settings > Certificate Profiles"],
        "endpoints live": [f"monitor/Endpoint?Name={settings.mtls_endpoint}",
                           f"openssl s_client -connect 127.0.0.1:{lab_env.mtls_port}"],
        "hosts entry": [f"echo '127.0.0.1 {lab_env.hostname}' | sudo tee -a"],
        "verification": ["mosquitto_sub", "mosquitto_pub", "--insecure"],
    }
    names = [step.name for step in up_steps()]
    for index, name in enumerate(names):
        # Each step's block comes after the previous step's result line and before its own.
        before = f"] {names[index - 1]}:" if index else "--explain:"
        block = _between(out, before, f"] {name}:")
        for fragment in expected[name]:
            assert fragment in block, (name, fragment)
    bodies = [json.loads(body) for body in _HEREDOC.findall(out)]
    locking = [call.body for call in securing_calls(settings, secrets=False) if "AdminUserID" not in call.body]
    assert bodies == [*locking, *(payload(obj) for obj in desired_objects(settings, pki))]

    secret_lines = [pki.passphrase_file.read_text().strip()] if pki.passphrase_file.exists() else []
    for key in pki.dir.glob("*.key"):
        secret_lines += [line for line in key.read_text().splitlines() if line and not line.startswith("-----")][:2]
    for text in (out, up.stderr):
        assert PASSPHRASE not in text and "PRIVATE KEY" not in text
        assert not [line for line in secret_lines if line in text]

    configure = lab_env.invoke("configure", "--explain", "--no-hosts", "--no-verify", LAB_CA_PASSPHRASE=PASSPHRASE)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    assert "openssl req -x509" in configure.stdout and "docker run -d" not in configure.stdout
    assert f"AMLEN_ADMIN_URL=https://127.0.0.1:{lab_env.admin_port}" in configure.stdout

    down = lab_env.invoke("down", "--explain", LAB_CA_PASSPHRASE=PASSPHRASE)
    assert down.returncode == 0, down.stdout + down.stderr
    for fragment in (f"-X DELETE \"$AMLEN_ADMIN_URL\"/ima/v1/configuration/Endpoint/{settings.mtls_endpoint}",
                     f"docker rm -f {lab_env.container_name}", "sudo sed -i '/^127\\.0\\.0\\.1 ", "rm -f myCA.key"):
        assert fragment in down.stdout, fragment
    assert down.stdout.index("Remove the hosts line") < down.stdout.index("docker rm -f")


def test_container_commands_start_amlen_with_the_store_bounded_as_the_lab_does(lab_env: LabEnv) -> None:
    settings = lab_env.settings().replace(image=lab_env.env["LAB_IMAGE"], container_name=lab_env.container_name,
                                          memory="1g")
    steps = [s for s in guide_steps(settings) if s.step in ("container", "readiness")]
    commands = "\n".join(c.text for s in steps for c in s.commands)
    env = {"PATH": os.environ["PATH"], "AMLEN_ADMIN_URL": settings.admin_base_url,
           "AMLEN_OPEN_URL": f"http://127.0.0.1:{settings.admin_port}"}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr

    container = docker.from_env().containers.get(lab_env.container_name)
    cfg = "/var/lib/amlen-server/data/config/server.cfg"
    owner_and_line = container.exec_run(["sh", "-c", f"stat -c %u {cfg}; grep PersistFileSizeMB {cfg}"])
    assert owner_and_line.output.decode().split("\n")[:2] == ["463", "Store.PersistFileSizeMB = 256"]
    assert container.labels["amlen-lab.dir"] == str(settings.lab_dir)
    assert container.attrs["HostConfig"]["Memory"] == 1 << 30
    bindings = container.attrs["HostConfig"]["PortBindings"]
    assert {b[0]["HostIp"] for b in bindings.values()} == {"127.0.0.1"}
    assert bindings[f"{lab_env.tls_port}/tcp"][0]["HostPort"] == str(lab_env.tls_port)
