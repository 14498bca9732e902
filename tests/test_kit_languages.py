"""The connection kit's programs (issue 23), each run through its own `<lang>/run.sh` from a fresh kit against a
lab on the Amlen stand-in: Java, Node.js, Go, C and Python.

For every language: both endpoints deliver the program's own message back to it, and so does a workshop seat's
kit on the workshop endpoint; a server name the certificate does not carry fails with that language's own
host-name error (proof that verification is on); the mutual-TLS port without a client certificate is refused.
A missing toolchain fails with the install hint: no language is skipped. The lab is `up` with its hosts entry
(in the real /etc/hosts, as root in CI): Paho C dials the name it verifies, the other programs dial KIT_ADDRESS.
Each program is built once per kit (run.sh builds into the kit's own `<lang>/build` or `node_modules` and
reuses it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LabEnv, lab_up

PROGRAMS = Path(__file__).resolve().parents[1] / "lab" / "kit" / "programs"
DEBIAN_JARS = ("mqtt-client", "hawtdispatch-transport", "hawtdispatch", "hawtbuf")
PAHO_GO = Path("/usr/share/gocode/src/github.com/eclipse/paho.mqtt.golang")


@dataclass(frozen=True)
class Language:
    """A kit language: what it needs installed, and the library's own words for the two refusals."""

    name: str
    needs: tuple[str, ...]  # commands on PATH, or absolute paths
    install: str
    host_name_error: str  # KIT_SERVER_NAME=127.0.0.1: the certificate names no IP address
    refused_error: str  # the mutual-TLS port without a client certificate (TLS 1.3: an alert after the handshake)


LANGUAGES = {
    lang.name: lang
    for lang in (
        Language("java", ("javac", "java", *(f"/usr/share/java/{jar}.jar" for jar in DEBIAN_JARS)),
                 "apt-get install default-jdk-headless libmqtt-client-java",
                 "No subject alternative names matching IP address 127.0.0.1 found",
                 "Received fatal alert: certificate_required"),
        Language("node", ("node", "npm"), "apt-get install nodejs npm (MQTT.js comes from npm)",
                 "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list",
                 "tlsv13 alert certificate required"),
        Language("go", ("go", str(PAHO_GO)), "apt-get install golang-go golang-github-eclipse-paho.mqtt.golang-dev",
                 "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs",
                 "remote error: tls: certificate required"),
        # OpenSSL 3.0 has no name for alert 116 (certificate required): Paho C's trace says "unknown".
        Language("c", ("gcc", "/usr/include/MQTTClient.h"), "apt-get install gcc libpaho-mqtt-dev",
                 "X509_check_host for hostname 127.0.0.1 failed",
                 "SSL alert read:fatal:unknown"),
        Language("python", ("python3",), "apt-get install python3 python3-venv (paho-mqtt comes from PyPI)",
                 "IP address mismatch, certificate is not valid for '127.0.0.1'",
                 "TLSV13_ALERT_CERTIFICATE_REQUIRED"),
    )
}


def require_toolchain(lang: str) -> None:
    """Fail (never skip) when the language's compiler, runtime or library is missing, naming the install."""
    language = LANGUAGES[lang]
    missing = [need for need in language.needs
               if not (Path(need).exists() if need.startswith("/") else shutil.which(need))]
    if missing:
        pytest.fail(f"the {lang} kit program needs {', '.join(missing)}: {language.install} (.ci/run installs it)")


@pytest.fixture(scope="module")
def kit_lab(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Iterator[LabEnv]:
    """A lab `up` on the stand-in, with its hosts entry (Paho C needs the name to resolve)."""
    with lab_up(LabEnv.new(tmp_path_factory.mktemp("kit-lab") / "lab", standin_image, prefix="amlen-lab-kit")) as lab:
        yield lab


@pytest.fixture(scope="module")
def client_kit(kit_lab: LabEnv) -> Path:
    """A fresh kit of the lab's client, every language, written by `invoke kit`."""
    result = kit_lab.invoke("kit")
    assert result.returncode == 0, f"invoke kit failed:\n{result.stdout}\n{result.stderr}"
    kit = kit_lab.dir / "kits" / "test.client1"
    assert all((kit / lang / "run.sh").is_file() for lang in LANGUAGES), sorted(p.name for p in kit.iterdir())
    return kit


@pytest.fixture(scope="module")
def two_tier_kit(tmp_path_factory: pytest.TempPathFactory, standin_image: str) -> Iterator[Path]:
    """A client kit of a lab with LAB_PKI=intermediate: client.pem is the leaf and the intermediate."""
    lab = LabEnv.new(tmp_path_factory.mktemp("kit-two-tier") / "lab", standin_image, prefix="amlen-lab-kit2",
                     LAB_PKI="intermediate")
    with lab_up(lab):
        made = lab.invoke("kit")
        assert made.returncode == 0, f"invoke kit failed:\n{made.stdout}\n{made.stderr}"
        yield lab.dir / "kits" / "test.client1"


@pytest.fixture(scope="module")
def seat_kit(kit_lab: LabEnv) -> Path:
    """Seat 01's bundle with every language's program: a kit for the workshop endpoint (mutual TLS only)."""
    made = kit_lab.invoke("workshop", "--seats", "1", "--kits", ",".join(LANGUAGES))
    assert made.returncode == 0, f"invoke workshop failed:\n{made.stdout}\n{made.stderr}"
    seat = kit_lab.dir / "workshop" / "01"
    assert all((seat / lang / "run.sh").is_file() for lang in LANGUAGES), sorted(p.name for p in seat.iterdir())
    return seat


def kit_settings(kit: Path) -> dict[str, str]:
    lines = (kit / "connection.env").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def run_kit(kit: Path, lang: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`<kit>/<lang>/run.sh args`, from outside the kit, KIT_* taken from connection.env unless given."""
    require_toolchain(lang)
    clean = {key: value for key, value in os.environ.items() if not key.startswith("KIT_")}
    if lang == "python":  # the suite's interpreter has paho-mqtt 2; tests/test_kit.py proves run.sh's own venv
        clean["KIT_PYTHON"] = sys.executable
    return subprocess.run([str(kit / lang / "run.sh"), *args], capture_output=True, text=True, timeout=600,
                          env={**clean, **env}, cwd=kit.parent)


def the_error(result: subprocess.CompletedProcess[str]) -> str:
    """The program's one `error: ...` line, after a non-zero exit (build output may precede it)."""
    output = f"{result.stdout}\n{result.stderr}"
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert result.returncode != 0, output
    assert "received " not in result.stdout, output
    assert len(errors) == 1, output
    return errors[0]


@pytest.mark.parametrize("mode", ["mtls", "tls"])
@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_program_receives_its_own_message(client_kit: Path, lang: str, mode: str) -> None:
    result = run_kit(client_kit, lang, mode)
    assert result.returncode == 0, f"{lang}/run.sh {mode}:\n{result.stdout}\n{result.stderr}"
    topic = kit_settings(client_kit)["KIT_TOPIC"]
    assert re.fullmatch(rf"received {re.escape(topic)}: \S.*\n", result.stdout), result.stdout


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_seat_kit_program_receives_on_the_workshop_endpoint(kit_lab: LabEnv, seat_kit: Path, lang: str) -> None:
    settings = kit_settings(seat_kit)
    assert settings["KIT_MTLS_PORT"] == str(kit_lab.workshop_port) and "KIT_TLS_PORT" not in settings
    result = run_kit(seat_kit, lang)
    assert result.returncode == 0, f"seat {lang}/run.sh:\n{result.stdout}\n{result.stderr}"
    assert re.fullmatch(rf"received {re.escape(settings['KIT_TOPIC'])}: \S.*\n", result.stdout), result.stdout
    assert settings["KIT_TOPIC"].startswith("workshop/seat.01/")


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_two_tier_kit_program_presents_its_chain(two_tier_kit: Path, lang: str) -> None:
    """The server knows the root only: the client must send the intermediate with its leaf (client.pem, the p12)."""
    assert (two_tier_kit / "client.pem").read_text().count("BEGIN CERTIFICATE") == 2
    result = run_kit(two_tier_kit, lang, "mtls")
    assert result.returncode == 0, f"two-tier {lang}/run.sh:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.startswith("received "), result.stdout


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_a_name_the_certificate_lacks_fails_with_the_host_name_error(client_kit: Path, lang: str) -> None:
    result = run_kit(client_kit, lang, "mtls", KIT_SERVER_NAME="127.0.0.1")
    assert LANGUAGES[lang].host_name_error in the_error(result)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_the_mutual_tls_port_refuses_a_client_without_certificate(client_kit: Path, lang: str) -> None:
    mtls_port = kit_settings(client_kit)["KIT_MTLS_PORT"]
    result = run_kit(client_kit, lang, "tls", KIT_TLS_PORT=mtls_port)
    assert LANGUAGES[lang].refused_error in the_error(result)


def test_c_refuses_a_server_name_that_does_not_resolve_to_the_address(client_kit: Path) -> None:
    """Paho C cannot dial one address and verify another name: it says so instead of verifying less."""
    result = run_kit(client_kit, "c", "mtls", KIT_SERVER_NAME="no-such-host.invalid")
    error = the_error(result)
    assert "KIT_SERVER_NAME no-such-host.invalid does not resolve" in error
    assert "hosts entry" in error


def test_a_bad_mode_is_one_error_line(client_kit: Path) -> None:
    for lang in LANGUAGES:
        assert "mtls or tls" in the_error(run_kit(client_kit, lang, "plain")), lang


# The programs' sources, compiled with warnings as errors (run.sh builds with warnings shown, not fatal: a newer
# compiler's new warning must not break a user's build).
STRICT_BUILDS = {
    "java": lambda src, out: ["javac", "-Xlint:all", "-Werror", "-d", str(out),
                              "-cp", ":".join(f"/usr/share/java/{jar}.jar" for jar in DEBIAN_JARS),
                              str(src / "Kit.java")],
    "c": lambda src, out: ["gcc", "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-o",
                           str(out / "kit"), str(src / "kit.c"), "-lpaho-mqtt3cs"],
    "go": lambda src, out: ["go", "vet", "."],
    "node": lambda src, out: ["node", "--check", str(src / "kit.js")],
}


@pytest.mark.parametrize("lang", list(STRICT_BUILDS))
def test_program_compiles_without_warnings(tmp_path: Path, lang: str) -> None:
    require_toolchain(lang)
    source = tmp_path / lang
    shutil.copytree(PROGRAMS / lang, source, ignore=shutil.ignore_patterns("node_modules", "build"))
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": ""}
    result = subprocess.run(STRICT_BUILDS[lang](source, tmp_path), capture_output=True, text=True, cwd=source,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
