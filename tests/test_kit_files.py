"""`invoke kit`'s files, checked by independent parts: keytool (the JDK), openssl 3, zipfile, the file system.

No broker here (tests/test_kit.py runs the programs against a stand-in lab): what is in a kit and with which
modes, both PKCS#12 forms read by their consumers, byte stability, refreshes after re-issued certificates,
edited files refused, bad input as one line, and `down --purge`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from lab.kit import available_languages, kits_dir, write_client_kit
from lab.kit.programs import PROGRAMS_DIR
from lab.pki.leaves import ensure_certificates
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings
from tests.conftest import INVOKE, ROOT

pytestmark = pytest.mark.usefixtures("no_lab_env")
CLIENT = "test.client1"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    made = load_settings(dir=tmp_path / "lab", env_file=None)
    ensure_certificates(made)
    return made


def invoke(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")} | {"LAB_DIR": str(settings.lab_dir)}
    return subprocess.run([INVOKE, "-r", str(ROOT), *args], capture_output=True, text=True, env=env,
                          cwd=settings.lab_dir.parent, timeout=120)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)


def digests(directory: Path) -> dict[str, str]:
    """Every file under `directory` (and the kit's zip beside it) by path, with its SHA-256 and mode."""
    files = [p for p in directory.rglob("*") if p.is_file()] + [zip_of(directory)]
    return {str(p): f"{hashlib.sha256(p.read_bytes()).hexdigest()} {stat.S_IMODE(p.stat().st_mode):o}"
            for p in files}


def zip_of(kit: Path) -> Path:
    return kit.parent / f"{kit.name}.zip"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_kit_holds_the_contracts_files_with_private_modes_and_never_the_ca_key(settings: Settings) -> None:
    done = invoke(settings, "kit")
    assert done.returncode == 0, done.stderr
    kit = kits_dir(settings) / CLIENT
    assert f"kit for {CLIENT}: {kit}" in done.stdout
    for name in ("ca.pem", "client.pem", "client.key", "client.p12", "truststore.p12", "kit.password",
                 "connection.env", "connection.json", "README.md",
                 *(f"{lang}/run.sh" for lang in available_languages())):
        assert (kit / name).is_file(), name
    assert {mode(kit / n) for n in ("client.key", "kit.password", "client.p12")} == {0o600}
    assert mode(kit) == 0o700 and mode(kits_dir(settings)) == 0o700 and mode(zip_of(kit)) == 0o600
    assert all(mode(kit / lang / "run.sh") == 0o755 for lang in available_languages())
    pki = pki_paths(settings)
    assert (kit / "ca.pem").read_bytes() == pki.ca_cert.read_bytes()
    assert (kit / "client.pem").read_bytes() == pki.client(CLIENT)[1].read_bytes()
    assert (kit / "client.key").read_text().startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, unencrypted
    ca_key = pki.ca_key.read_bytes()
    password = (kit / "kit.password").read_text()
    assert password.endswith("\n") and len(password.strip()) >= 32
    for path in kit.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert ca_key not in data and b"ENCRYPTED PRIVATE KEY" not in data, path
            if path.name != "kit.password":
                assert password.strip().encode() not in data, f"{path} holds the password"
    assert password.strip() not in done.stdout + done.stderr
    env = (kit / "connection.env").read_text().splitlines()
    pairs = dict(line.split("=", 1) for line in env if not line.startswith("#"))
    assert pairs == {
        "KIT_ADDRESS": "127.0.0.1", "KIT_SERVER_NAME": settings.hostname, "KIT_TLS_PORT": str(settings.tls_port),
        "KIT_MTLS_PORT": str(settings.mtls_port), "KIT_CLIENT_ID": f"{CLIENT}-kit",
        "KIT_TOPIC": f"amlen-lab/kit/{CLIENT}", "KIT_CA": "ca.pem", "KIT_CERT": "client.pem", "KIT_KEY": "client.key",
        "KIT_KEYSTORE": "client.p12", "KIT_TRUSTSTORE": "truststore.p12", "KIT_PASSWORD_FILE": "kit.password"}
    # The same facts for any shell: `source` reads them as they are.
    sourced = run("sh", "-c", f". {kit / 'connection.env'} && echo $KIT_SERVER_NAME:$KIT_MTLS_PORT").stdout
    assert sourced.strip() == f"{settings.hostname}:{settings.mtls_port}"
    facts = json.loads((kit / "connection.json").read_text())
    assert facts["server_name"] == settings.hostname and facts["mtls_port"] == settings.mtls_port
    assert facts["files"] == {"ca": "ca.pem", "cert": "client.pem", "key": "client.key", "keystore": "client.p12",
                              "truststore": "truststore.p12", "password_file": "kit.password"}
    # Programs are copied verbatim, and the README carries each language's NOTES.md.
    readme = (kit / "README.md").read_text()
    for lang in available_languages():
        for source in (PROGRAMS_DIR / lang).iterdir():
            if source.is_file():
                assert (kit / lang / source.name).read_bytes() == source.read_bytes()
        assert f"## {lang}/" in readme
    with zipfile.ZipFile(zip_of(kit)) as archive:
        members = {info.filename: info for info in archive.infolist()}
        assert f"{CLIENT}/client.key" in members and f"{CLIENT}/.kit.json" not in members
        assert (members[f"{CLIENT}/client.key"].external_attr >> 16) & 0o777 == 0o600
        assert archive.read(f"{CLIENT}/client.p12") == (kit / "client.p12").read_bytes()


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_keytool_and_openssl_read_both_p12_files_with_the_kits_password(settings: Settings, legacy: bool) -> None:
    result = write_client_kit(settings, CLIENT, [], legacy_p12=legacy)
    kit = result.dir
    password = (kit / "kit.password").read_text().strip()
    listed = run("keytool", "-list", "-v", "-keystore", kit / "client.p12", "-storetype", "PKCS12",
                 "-storepass", password)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert f"Alias name: {CLIENT}" in listed.stdout and "Entry type: PrivateKeyEntry" in listed.stdout
    assert f"CN={CLIENT}" in listed.stdout and "Certificate chain length: 1" in listed.stdout
    trusted = run("keytool", "-list", "-v", "-keystore", kit / "truststore.p12", "-storepass", password)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    # Java's PKCS12 KeyStore treats a certificate entry as trusted only with Oracle's trusted-key-usage attribute.
    assert "Entry type: trustedCertEntry" in trusted.stdout and "Alias name: amlen-lab-ca" in trusted.stdout
    wrong = run("keytool", "-list", "-keystore", kit / "client.p12", "-storepass", "not-the-password")
    assert wrong.returncode != 0
    for name in ("client.p12", "truststore.p12"):
        info = run("openssl", "pkcs12", "-info", "-noout", "-in", kit / name, "-passin", f"file:{kit / 'kit.password'}")
        text = info.stdout + info.stderr
        assert info.returncode == 0, text
        if legacy:  # what Java 8 before 8u301 and OpenSSL 1.1 read (OpenSSL 3 reads it too: 3DES is not RC2)
            assert "MAC: sha1" in text and "pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048" in text
        else:
            assert "MAC: sha256, Iteration 2048" in text and "AES-256-CBC, Iteration 2048, PRF hmacWithSHA256" in text
    loaded = pkcs12.load_pkcs12((kit / "client.p12").read_bytes(), password.encode())
    assert loaded.cert is not None and loaded.cert.friendly_name == CLIENT.encode()
    assert loaded.cert.certificate == x509.load_pem_x509_certificate((kit / "client.pem").read_bytes())


def test_rerun_changes_no_byte_and_a_reissued_client_refreshes_the_kit(settings: Settings) -> None:
    assert invoke(settings, "kit").returncode == 0
    kit = kits_dir(settings) / CLIENT
    before = digests(kit)
    again = invoke(settings, "kit")
    assert again.returncode == 0 and "up to date, no file changed" in again.stdout
    assert digests(kit) == before
    old_serial = x509.load_pem_x509_certificate((kit / "client.pem").read_bytes()).serial_number
    reissued = invoke(settings, "client-cert", "--name", CLIENT, "--force")
    assert reissued.returncode == 0, reissued.stderr
    assert f"kit for {CLIENT} refreshed" in reissued.stdout  # the kit follows the lab without being asked
    after = digests(kit)
    changed = {Path(p).name for p in after if after[p] != before.get(p)}
    assert {"client.pem", "client.key", "client.p12", f"{CLIENT}.zip", ".kit.json"} <= changed
    assert "truststore.p12" not in changed and "kit.password" not in changed  # the CA and password did not change
    cert = x509.load_pem_x509_certificate((kit / "client.pem").read_bytes())
    assert cert.serial_number != old_serial
    password = (kit / "kit.password").read_text().strip()
    loaded = pkcs12.load_pkcs12((kit / "client.p12").read_bytes(), password.encode())
    assert loaded.cert is not None and loaded.cert.certificate.serial_number == cert.serial_number
    # Choosing the legacy form makes the PKCS#12 pair again, and only that.
    legacy = invoke(settings, "kit", "--legacy-p12")
    assert legacy.returncode == 0 and "legacy PKCS#12" in legacy.stdout
    assert {Path(p).name for p, d in digests(kit).items() if d != after[p]} >= {"client.p12", "truststore.p12"}


def test_an_edited_file_is_refused_without_force_and_nothing_changes(settings: Settings) -> None:
    assert invoke(settings, "kit").returncode == 0
    kit = kits_dir(settings) / CLIENT
    program = kit / "python" / "kit_client.py"
    program.write_text(program.read_text() + "# my change\n")
    before = digests(kit)
    refused = invoke(settings, "kit")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"{program} was changed by hand" in refused.stderr and f"invoke kit --client {CLIENT} --force" in \
        refused.stderr
    assert "Traceback" not in refused.stderr
    assert digests(kit) == before
    # A re-issued certificate does not overwrite it either: the refresh says why it left the kit.
    reissued = invoke(settings, "client-cert", "--name", CLIENT, "--force")
    assert reissued.returncode == 0 and "kit not refreshed" in reissued.stdout and str(program) in reissued.stdout
    forced = invoke(settings, "kit", "--force")
    assert forced.returncode == 0, forced.stderr
    assert program.read_bytes() == (PROGRAMS_DIR / "python" / "kit_client.py").read_bytes()
    # Build output beside a program (python/run.sh's .venv) is not an edit and not in the zip.
    (kit / "python" / ".venv").mkdir()
    (kit / "python" / ".venv" / "marker").write_text("x")
    assert invoke(settings, "kit").returncode == 0
    with zipfile.ZipFile(zip_of(kit)) as archive:
        assert not [n for n in archive.namelist() if ".venv" in n]


def test_bad_input_is_one_line_with_a_hint_and_writes_nothing(settings: Settings) -> None:
    unknown = invoke(settings, "kit", "--lang", "java,cobol")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert "unknown language cobol" in unknown.stderr and "java,node,go,c,python" in unknown.stderr
    nobody = invoke(settings, "kit", "--client", "nobody")
    assert nobody.returncode == 1 and nobody.stderr.count("\n") == 1
    assert "no certificate for client 'nobody'" in nobody.stderr and "invoke client-cert --name nobody" in nobody.stderr
    assert not kits_dir(settings).exists()


def test_a_second_client_gets_its_own_kit_and_down_purge_removes_every_kit(settings: Settings) -> None:
    assert invoke(settings, "client-cert", "--name", "alice").returncode == 0
    alice = invoke(settings, "kit", "--client", "alice", "--lang", "python")
    assert alice.returncode == 0, alice.stderr
    kit = kits_dir(settings) / "alice"
    assert "KIT_CLIENT_ID=alice-kit" in (kit / "connection.env").read_text()
    assert json.loads((kit / ".kit.json").read_text())["languages"] == ["python"]
    assert invoke(settings, "kit").returncode == 0
    down = invoke(settings, "down", "--purge")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not kits_dir(settings).exists()


def test_two_tier_kit_presents_the_chain_and_trusts_only_the_root(tmp_path: Path) -> None:
    settings = load_settings(dir=tmp_path / "lab", pki="intermediate", env_file=None)
    ensure_certificates(settings)
    kit = write_client_kit(settings, CLIENT, ["python"]).dir
    pki = pki_paths(settings)
    assert (kit / "ca.pem").read_bytes() == pki.ca_cert.read_bytes()
    chain = x509.load_pem_x509_certificates((kit / "client.pem").read_bytes())
    assert [c.subject for c in chain] == [x509.load_pem_x509_certificate(p.read_bytes()).subject
                                          for p in (pki.client(CLIENT)[1], pki.intermediate_cert)]
    password = (kit / "kit.password").read_text().strip()
    listed = run("keytool", "-list", "-v", "-keystore", kit / "client.p12", "-storepass", password)
    assert listed.returncode == 0 and "Certificate chain length: 2" in listed.stdout, listed.stdout
    trusted = run("keytool", "-list", "-keystore", kit / "truststore.p12", "-storepass", password)
    assert trusted.stdout.count("trustedCertEntry") == 1
    verified = run("openssl", "verify", "-CAfile", kit / "ca.pem", "-untrusted", kit / "client.pem", kit / "client.pem")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_workshop_kits_flag_rejects_an_unknown_language_before_anything(settings: Settings) -> None:
    done = invoke(settings, "workshop", "--seats", "2", "--kits", "fortran")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "unknown language fortran" in done.stderr and "java,node,go,c,python" in done.stderr
    assert not (settings.lab_dir / "workshop").exists()
    alone = invoke(settings, "workshop", "--kits", "java")
    assert alone.returncode == 1 and "--kits goes with --seats or --roster" in alone.stderr


def test_your_own_password_in_kit_password_remakes_only_the_p12_pair(settings: Settings) -> None:
    kit = write_client_kit(settings, CLIENT, ["python"]).dir
    before = digests(kit)
    (kit / "kit.password").write_text("my-own-password\n")
    result = write_client_kit(settings, CLIENT, ["python"])
    assert {"client.p12", "truststore.p12"} <= set(result.changed) and "client.key" not in result.changed
    assert (kit / "kit.password").read_text() == "my-own-password\n" and mode(kit / "kit.password") == 0o600
    listed = run("keytool", "-list", "-keystore", kit / "client.p12", "-storepass", "my-own-password")
    assert listed.returncode == 0 and "PrivateKeyEntry" in listed.stdout
    assert digests(kit)[str(kit / "client.pem")] == before[str(kit / "client.pem")]


def test_guide_and_up_summary_lead_to_the_kit(settings: Settings) -> None:
    from lab.learn.guide import explanation, guide_markdown
    from lab.report import up_summary

    guide = guide_markdown(settings)
    assert re.search(r"^## \d+\. Your application$", guide, re.MULTILINE)
    assert f"openssl pkcs12 -export -name {CLIENT} -inkey {CLIENT}.key -in {CLIENT}.crt -out client.p12 " \
           "-passout file:kit.password" in guide
    assert "keytool -importcert -noprompt -alias amlen-lab-ca -file myCA.pem -keystore truststore.p12" in guide
    assert "-legacy" in guide and "--legacy-p12" in guide
    assert "openssl pkcs12 -export" in explanation(settings).blocks["verification"]
    assert "invoke kit --lang java" in up_summary(settings)["commands"].values()
