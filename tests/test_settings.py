"""Settings: the guide's defaults, every LAB_* key read, bad values refused in one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import SettingsError
from lab.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_env(no_lab_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo


def test_defaults_are_the_guides_values() -> None:
    s = load_settings()
    assert (s.hostname, s.host_ip, s.tls_port, s.mtls_port, s.admin_port) == (
        "testserver.getting.started", "127.0.0.1", 8889, 8890, 9089)
    assert s.image == "quay.io/amlen/amlen-server:main"
    assert (s.ca_days, s.server_days) == (1825, 825)
    assert s.client_names == ("test.client1",)
    assert s.security_profile == "TestServerSecProfile"
    assert s.tls_endpoint == "TLSTestPort" and s.mtls_endpoint == "ClientCertsTLS"
    assert s.hosts_file == Path("/etc/hosts")
    assert s.admin_base_url == "https://127.0.0.1:9089"  # the admin plane is locked by default (issue 22)


def test_every_key_in_env_example_is_a_setting_with_that_default(tmp_path: Path) -> None:
    example = (ROOT / ".env.example").read_text().splitlines()
    keys = [line.split("=", 1)[0] for line in example if line and not line.startswith("#")]
    fields = {f"LAB_{name.upper()}" for name in Settings.names()}
    assert set(keys) == fields
    (tmp_path / ".env").write_text("\n".join(example) + "\n")
    assert load_settings() == Settings()


def test_env_file_and_environment_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LAB_TLS_PORT=18889\nLAB_CLIENT_NAMES=alice, bob\n")
    monkeypatch.setenv("LAB_MTLS_PORT", "18890")
    s = load_settings()
    assert (s.tls_port, s.mtls_port, s.client_names) == (18889, 18890, ("alice", "bob"))


def test_passphrase_is_hidden_from_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_CA_PASSPHRASE", "s3cret-words")
    s = load_settings()
    assert s.ca_passphrase is not None and s.ca_passphrase.get_secret_value() == "s3cret-words"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("LAB_HOSTNAME", "bad_host!", "not a valid DNS host name"),
        ("LAB_HOSTNAME", "-leading.example", "not a valid DNS host name"),
        ("LAB_HOSTNAME", "10.0.0.1", "not a valid DNS host name"),
        ("LAB_TLS_PORT", "70000", "not a port number"),
        ("LAB_TLS_PORT", "0", "not a port number"),
        ("LAB_ADMIN_PORT", "abc", "valid integer"),
        ("LAB_MTLS_PORT", "8889", "both 8889"),
        ("LAB_SECURITY_PROFILE", "Test-Sec", "letters and digits only"),
        ("LAB_MUTUAL_SECURITY_PROFILE", "A" * 33, "at most 32"),
        ("LAB_SECURITY_PROFILE", "1Profile", "starting with a letter"),
        ("LAB_TLS_ENDPOINT", "9Port", "start with a letter"),
        ("LAB_CERTIFICATE_PROFILE", "Has,Comma", "start with a letter"),
        ("LAB_HOST_IP", "localhost", "not an IP address"),
        ("LAB_CLIENT_NAMES", "ok, not ok", "not a usable client name"),
        ("LAB_SERVER_DAYS", "0", "lifetime"),
        ("LAB_READY_TIMEOUT", "-1", "positive"),
        ("LAB_ADMIN_URL", "ftp://x", "not an admin URL"),
        ("LAB_MEMORY", "512m", "below 1 GiB"),
        ("LAB_MEMORY", "768m", "CWLNA1119"),
        ("LAB_MEMORY", "lots", "not a memory size"),
        ("LAB_STORE_FILE_MB", "100", "256..65536"),
        ("LAB_STORE_FILE_MB", "65537", "Store.PersistFileSizeMB"),
        ("LAB_WORKSHOP_PORT", "8890", "both 8890"),
        ("LAB_WORKSHOP_HOSTNAME", "bad_name", "not a valid DNS host name"),
    ],
)
def test_bad_value_fails_at_load_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, words: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert words in message
    assert key in message or ("both" in message and "LAB_" in message)


def test_guide_names_amlen_accepts_are_valid() -> None:
    # The appendix: TestServer-from-ToyCA (hyphens) is accepted for a CertificateProfile.
    assert load_settings(certificate_profile="TestServer-from-ToyCA").certificate_profile == "TestServer-from-ToyCA"
    assert load_settings(security_profile="A" * 32).security_profile == "A" * 32


def test_bad_setting_through_invoke_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env["LAB_TLS_PORT"] = "70000"
    env["LAB_DIR"] = str(tmp_path / "lab")
    invoke = str(Path(sys.executable).with_name("invoke"))
    result = subprocess.run([invoke, "-r", str(ROOT), "status"], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and "LAB_TLS_PORT" in lines[0] and "hint:" in lines[0]


@pytest.mark.parametrize(("value", "size"), [("1g", 1 << 30), ("1024m", 1 << 30), ("1.5g", 3 << 29), ("3G", 3 << 30),
                                             ("1073741824", 1 << 30), ("2gb", 2 << 30)])
def test_memory_accepts_dockers_syntax_from_one_gib(monkeypatch: pytest.MonkeyPatch, value: str, size: int) -> None:
    monkeypatch.setenv("LAB_MEMORY", value)
    assert load_settings().memory_bytes == size


def test_replace_validates_and_remembers_what_was_given(tmp_path: Path) -> None:
    base = load_settings(dir=tmp_path / "lab")
    assert "dir" in base.given and "hostname" not in base.given
    changed = base.replace(tls_port=18889)
    assert changed.tls_port == 18889 and "tls_port" in changed.given and base.tls_port == 8889
    with pytest.raises(SettingsError, match="LAB_TLS_PORT"):
        base.replace(tls_port=70000)
