"""The lab's certificate set, checked by independent parts: the openssl CLI, Python's ssl, the file system."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab.errors import CertError
from lab.pki.disk import Action, FileResult
from lab.pki.info import describe_certificate
from lab.pki.leaves import ensure_certificates, issue_client_certs, make_foreign_client
from lab.pki.lint import check_certificates, lint_certificates
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("no_lab_env")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(dir=tmp_path / "lab")


@pytest.fixture
def made(settings: Settings) -> Settings:
    ensure_certificates(settings)
    return settings


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    # stdin closed: a passphrase prompt would read EOF and fail instead of hanging the test.
    return subprocess.run(
        ["openssl", *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )


def by_name(results: list[FileResult]) -> dict[str, FileResult]:
    return {r.path.name: r for r in results}


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def ca_key(settings: Settings) -> rsa.RSAPrivateKey:
    paths = pki_paths(settings)
    key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), paths.passphrase_file.read_bytes().strip())
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def sign(
    settings: Settings,
    public_key: object,
    *,
    cn: str,
    ca: bool = False,
    san: str | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> bytes:
    """An independent little signer (not the lab's) for deliberately broken sets."""
    ca_cert = x509.load_pem_x509_certificate(pki_paths(settings).ca_cert.read_bytes())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return builder.sign(ca_key(settings), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# --- the guide's set, checked with openssl ---------------------------------------------------------------


def test_guide_set_verifies_with_openssl_for_its_purposes(made: Settings) -> None:
    paths = pki_paths(made)
    client_key, client_cert = paths.client("test.client1")
    assert client_key.exists()
    ca = ("-CAfile", paths.ca_cert)

    assert openssl("verify", *ca, paths.server_cert).returncode == 0
    assert openssl("verify", *ca, client_cert).returncode == 0
    assert openssl("verify", *ca, "-purpose", "sslserver", paths.server_cert).returncode == 0
    assert openssl("verify", *ca, "-purpose", "sslclient", client_cert).returncode == 0
    # clientAuth only: a client certificate cannot pose as the server.
    assert openssl("verify", *ca, "-purpose", "sslserver", client_cert).returncode != 0

    assert openssl("verify", *ca, "-verify_hostname", made.hostname, paths.server_cert).returncode == 0
    wrong = openssl("verify", *ca, "-verify_hostname", "other.example", paths.server_cert)
    assert wrong.returncode != 0
    assert "hostname mismatch" in wrong.stdout + wrong.stderr


def test_certificates_carry_the_guide_extensions(made: Settings) -> None:
    paths = pki_paths(made)
    ca_text = openssl("x509", "-noout", "-text", "-in", paths.ca_cert).stdout
    assert "CA:TRUE" in ca_text
    assert "Certificate Sign, CRL Sign" in ca_text
    assert "Subject Key Identifier" in ca_text
    assert "sha256WithRSAEncryption" in ca_text

    server = describe_certificate(paths.server_cert)
    assert server.subject.endswith(f"CN={made.hostname}")
    assert server.san == (made.hostname,)
    assert server.key_usage == ("digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment")
    assert server.extended_key_usage == ("serverAuth",)
    assert (server.is_ca, server.key_type, server.key_bits) == (False, "RSA", 2048)
    assert 823 <= server.days_left <= 825

    client = describe_certificate(paths.client("test.client1")[1].read_bytes())
    assert client.subject.endswith("CN=test.client1")
    assert client.extended_key_usage == ("clientAuth",)
    assert client.path is None


def test_describe_certificate_agrees_with_openssl(made: Settings) -> None:
    cert = pki_paths(made).server_cert
    info = describe_certificate(cert)
    fingerprint = openssl("x509", "-noout", "-fingerprint", "-sha256", "-in", cert).stdout
    serial = openssl("x509", "-noout", "-serial", "-in", cert).stdout
    assert fingerprint.strip().split("=", 1)[1] == info.sha256_fingerprint
    assert int(serial.strip().split("=", 1)[1], 16) == int(info.serial, 16)
    with pytest.raises(CertError, match=r"not an X\.509 certificate"):
        describe_certificate(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_ca_key_opens_only_with_the_passphrase(made: Settings) -> None:
    paths = pki_paths(made)
    passphrase = paths.passphrase_file.read_text().strip()
    assert b"ENCRYPTED PRIVATE KEY" in paths.ca_key.read_bytes()

    ok = openssl("rsa", "-check", "-noout", "-in", paths.ca_key, "-passin", f"pass:{passphrase}")
    assert ok.returncode == 0, ok.stderr
    assert "RSA key ok" in ok.stdout
    assert openssl("rsa", "-check", "-noout", "-in", paths.ca_key, "-passin", "pass:").returncode != 0
    assert openssl("rsa", "-check", "-noout", "-in", paths.ca_key, "-passin", "pass:wrong").returncode != 0
    # The server key is the opposite: Amlen needs it unencrypted, so it opens without any passphrase.
    server = openssl("rsa", "-check", "-noout", "-in", paths.server_key, "-passin", "pass:")
    assert server.returncode == 0 and "RSA key ok" in server.stdout


def test_passphrase_from_settings_is_used_and_never_stored(tmp_path: Path) -> None:
    settings = load_settings(dir=tmp_path / "lab", ca_passphrase="correct horse")
    results = ensure_certificates(settings)
    paths = pki_paths(settings)
    assert not paths.passphrase_file.exists()
    assert all(b"correct horse" not in p.read_bytes() for p in paths.dir.iterdir())
    assert all("correct horse" not in r.reason for r in results)
    check = openssl("rsa", "-check", "-noout", "-in", paths.ca_key, "-passin", "pass:correct horse")
    assert check.returncode == 0


def test_private_files_are_0600_in_a_0700_directory(made: Settings) -> None:
    paths = pki_paths(made)
    client_key, client_cert = paths.client("test.client1")

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(paths.dir) == 0o700
    for private in (paths.ca_key, paths.server_key, client_key, paths.passphrase_file):
        assert mode(private) == 0o600, private
    for public in (paths.ca_cert, paths.server_cert, client_cert):
        assert mode(public) == 0o644, public


def test_loose_pki_directory_is_tightened_to_0700(settings: Settings) -> None:
    settings.pki_dir.mkdir(parents=True, mode=0o755)
    os.chmod(settings.pki_dir, 0o755)
    ensure_certificates(settings)
    assert stat.S_IMODE(settings.pki_dir.stat().st_mode) == 0o700


# --- idempotence and re-issue rules -----------------------------------------------------------------------


def test_first_run_creates_every_file(settings: Settings) -> None:
    results = by_name(ensure_certificates(settings))
    expected = {"ca-passphrase", "myCA.key", "myCA.pem", "test.server.key", "test.server.crt",
                "test.client1.key", "test.client1.crt"}
    assert set(results) == expected
    assert {r.action for r in results.values()} == {Action.CREATED}
    assert all(r.path.is_absolute() and r.path.exists() for r in results.values())


def test_rerun_reuses_everything_byte_for_byte(made: Settings) -> None:
    before = snapshot(made.pki_dir)
    results = ensure_certificates(made)
    assert {r.action for r in results} == {Action.REUSED}
    assert snapshot(made.pki_dir) == before


def test_changed_hostname_reissues_only_the_server_certificate(made: Settings, tmp_path: Path) -> None:
    before = snapshot(made.pki_dir)
    moved = load_settings(dir=made.dir, hostname="broker.example.test")
    results = by_name(ensure_certificates(moved))

    assert results["test.server.crt"].action is Action.REISSUED
    assert "not broker.example.test" in results["test.server.crt"].reason
    after = snapshot(made.pki_dir)
    for name in ("myCA.key", "myCA.pem", "test.client1.key", "test.client1.crt"):
        assert after[name] == before[name], name
        assert results[name].action is Action.REUSED
    paths = pki_paths(moved)
    check = openssl("verify", "-CAfile", paths.ca_cert, "-verify_hostname", "broker.example.test", paths.server_cert)
    assert check.returncode == 0


def test_server_certificate_expiring_within_30_days_is_reissued(tmp_path: Path) -> None:
    short = load_settings(dir=tmp_path / "lab", server_days=10)
    ensure_certificates(short)
    ca_before = pki_paths(short).ca_cert.read_bytes()

    results = by_name(ensure_certificates(load_settings(dir=tmp_path / "lab")))
    assert results["test.server.crt"].action is Action.REISSUED
    assert "expires in 9 days" in results["test.server.crt"].reason
    assert describe_certificate(pki_paths(short).server_cert).days_left > 800
    assert pki_paths(short).ca_cert.read_bytes() == ca_before


def test_missing_or_mismatched_leaf_key_reissues_the_pair(made: Settings) -> None:
    paths = pki_paths(made)
    paths.server_key.unlink()
    assert "key file is missing" in by_name(ensure_certificates(made))["test.server.crt"].reason

    client_key, _ = paths.client("test.client1")
    client_key.write_bytes(paths.server_key.read_bytes())
    assert "does not match" in by_name(ensure_certificates(made))["test.client1.crt"].reason
    assert lint_certificates(made) == []


def test_new_ca_replaces_the_ca_and_reissues_every_leaf(made: Settings, tmp_path: Path) -> None:
    paths = pki_paths(made)
    before = snapshot(made.pki_dir)
    old_server = tmp_path / "old-server.crt"
    old_server.write_bytes(before["test.server.crt"])

    results = by_name(ensure_certificates(made, new_ca=True))
    after = snapshot(made.pki_dir)
    assert {r.action for n, r in results.items() if n != "ca-passphrase"} == {Action.REISSUED}
    assert all(after[name] != before[name] for name in before)
    assert openssl("verify", "-CAfile", paths.ca_cert, paths.server_cert).returncode == 0
    assert openssl("verify", "-CAfile", paths.ca_cert, old_server).returncode != 0


def test_wrong_passphrase_is_a_cert_error_that_keeps_the_ca(tmp_path: Path) -> None:
    ensure_certificates(load_settings(dir=tmp_path / "lab", ca_passphrase="s3cret-made-with"))
    before = snapshot(tmp_path / "lab" / "pki")
    with pytest.raises(CertError) as caught:
        ensure_certificates(load_settings(dir=tmp_path / "lab", ca_passphrase="s3cret-typo"))
    assert "wrong passphrase" in caught.value.message
    assert "LAB_CA_PASSPHRASE" in (caught.value.hint or "")
    assert "--new-ca" in (caught.value.hint or "") and "precious" in (caught.value.hint or "")
    assert "s3cret" not in str(caught.value)
    assert snapshot(tmp_path / "lab" / "pki") == before


def test_empty_passphrase_setting_means_the_generated_one(tmp_path: Path) -> None:
    settings = load_settings(dir=tmp_path / "lab", ca_passphrase="")
    ensure_certificates(settings)
    passphrase = pki_paths(settings).passphrase_file.read_text().strip()
    assert len(passphrase) >= 32
    check = openssl("rsa", "-check", "-noout", "-in", pki_paths(settings).ca_key, "-passin", f"pass:{passphrase}")
    assert check.returncode == 0


def test_encrypted_ca_without_any_passphrase_is_a_cert_error(made: Settings) -> None:
    pki_paths(made).passphrase_file.unlink()
    with pytest.raises(CertError, match="LAB_CA_PASSPHRASE is not set"):
        ensure_certificates(made)


def test_ca_certificate_without_its_key_is_refused(made: Settings) -> None:
    pki_paths(made).ca_key.unlink()
    with pytest.raises(CertError, match=r"key .* is missing"):
        ensure_certificates(made)


def test_failed_write_leaves_old_files_whole_and_no_temp_files(
    made: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(made.pki_dir)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    # The disk fails mid-write (fsync), after the temp file holds some of the new bytes.
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CertError, match="No space left on device"):
        ensure_certificates(load_settings(dir=made.dir, hostname="broker.example.test"))
    monkeypatch.undo()
    assert snapshot(made.pki_dir) == before
    assert not [p for p in made.pki_dir.iterdir() if p.name.endswith(".tmp")]


# --- client certificates ----------------------------------------------------------------------------------


def test_many_client_certificates_at_once_chain_to_the_ca(made: Settings) -> None:
    names = [f"sensor-{i}" for i in range(5)]
    results = issue_client_certs(made, [*names, names[0]])
    paths = pki_paths(made)
    issued = [r for r in results if r.path.suffix == ".crt" and r.path.stem.startswith("sensor-")]
    assert [r.path.stem for r in issued] == names
    assert {r.action for r in issued} == {Action.CREATED}
    for name in names:
        key, cert = paths.client(name)
        check = openssl("verify", "-CAfile", paths.ca_cert, "-purpose", "sslclient", cert)
        assert check.returncode == 0, check.stdout + check.stderr
        assert describe_certificate(cert).subject.endswith(f"CN={name}")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600

    again = issue_client_certs(made, names)
    assert {r.action for r in again} == {Action.REUSED}
    forced = issue_client_certs(made, names[:1], force=True)
    assert by_name(forced)["sensor-0.crt"].action is Action.REISSUED


@pytest.mark.parametrize("name", ["../escape", "test.server", "myCA", "-dash", ""])
def test_unusable_client_names_are_refused(made: Settings, name: str) -> None:
    before = snapshot(made.pki_dir)
    with pytest.raises(CertError):
        issue_client_certs(made, [name])
    assert snapshot(made.pki_dir) == before


def test_configured_client_name_may_not_overwrite_the_server_files(tmp_path: Path) -> None:
    settings = load_settings(dir=tmp_path / "lab", client_names="test.client1,test.server")
    with pytest.raises(CertError, match=r"LAB_CLIENT_NAMES: 'test\.server'"):
        ensure_certificates(settings)


def test_client_certificate_makes_the_ca_first_when_there_is_none(settings: Settings) -> None:
    results = by_name(issue_client_certs(settings, ["alice"]))
    assert results["myCA.pem"].action is Action.CREATED
    paths = pki_paths(settings)
    assert openssl("verify", "-CAfile", paths.ca_cert, paths.client("alice")[1]).returncode == 0


def test_foreign_client_does_not_chain_to_the_lab_ca(made: Settings, tmp_path: Path) -> None:
    foreign_ca, key, cert = make_foreign_client(tmp_path / "foreign")
    assert openssl("verify", "-CAfile", foreign_ca, "-purpose", "sslclient", cert).returncode == 0
    assert openssl("verify", "-CAfile", pki_paths(made).ca_cert, cert).returncode != 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


# --- the Amlen lint ---------------------------------------------------------------------------------------


def test_lint_passes_a_fresh_set(made: Settings) -> None:
    assert lint_certificates(made) == []
    check_certificates(made)


def _ec_server_key(s: Settings) -> str:
    paths = pki_paths(s)
    key = ec.generate_private_key(ec.SECP256R1())
    paths.server_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths.server_cert.write_bytes(sign(s, key.public_key(), cn=s.hostname, san=s.hostname))
    return "Amlen accepts only RSA"


def _mismatched_key(s: Settings) -> str:
    paths = pki_paths(s)
    paths.server_key.write_bytes(paths.client("test.client1")[0].read_bytes())
    return "does not match the key"


def _non_ca_anchor(s: Settings) -> str:
    paths = pki_paths(s)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    now = dt.datetime.now(dt.UTC)
    fake = (
        x509.CertificateBuilder()
        .subject_name(ca_cert.subject)
        .issuer_name(ca_cert.subject)
        .public_key(ca_cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key(s), hashes.SHA256())
    )
    paths.ca_cert.write_bytes(fake.public_bytes(serialization.Encoding.PEM))
    return "not a CA certificate"


def _wrong_san(s: Settings) -> str:
    paths = pki_paths(s)
    key = serialization.load_pem_private_key(paths.server_key.read_bytes(), None)
    paths.server_cert.write_bytes(sign(s, key.public_key(), cn=s.hostname, san="elsewhere.example"))
    return f"does not contain the host name {s.hostname}"


def _expired(s: Settings) -> str:
    paths = pki_paths(s)
    key = serialization.load_pem_private_key(paths.server_key.read_bytes(), None)
    now = dt.datetime.now(dt.UTC)
    paths.server_cert.write_bytes(
        sign(s, key.public_key(), cn=s.hostname, san=s.hostname,
             not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))
    )
    return "test.server.crt: expired on"


def _not_yet_valid(s: Settings) -> str:
    paths = pki_paths(s)
    key = serialization.load_pem_private_key(paths.server_key.read_bytes(), None)
    now = dt.datetime.now(dt.UTC)
    paths.server_cert.write_bytes(
        sign(s, key.public_key(), cn=s.hostname, san=s.hostname, not_before=now + dt.timedelta(days=2))
    )
    return "not valid yet"


def _encrypted_server_key(s: Settings) -> str:
    paths = pki_paths(s)
    key = serialization.load_pem_private_key(paths.server_key.read_bytes(), None)
    paths.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return "test.server.key: encrypted"


def _foreign_client(s: Settings) -> str:
    _, key, cert = make_foreign_client(s.lab_dir / "foreign")
    dest_key, dest_cert = pki_paths(s).client("test.client1")
    dest_key.write_bytes(key.read_bytes())
    dest_cert.write_bytes(cert.read_bytes())
    return "test.client1.crt: issued by"


def _impostor_ca_same_name(s: Settings) -> str:
    # A different key under the lab CA's own name: only the signature and key ids give it away.
    paths = pki_paths(s)
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    leaf_key = serialization.load_pem_private_key(paths.server_key.read_bytes(), None)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, s.hostname)]))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=100))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(s.hostname)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(impostor.public_key()), critical=False)
        .sign(impostor, hashes.SHA256())
    )
    paths.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return "signature does not verify with the lab CA's key"


@pytest.mark.parametrize(
    "breaker",
    [_ec_server_key, _mismatched_key, _non_ca_anchor, _wrong_san, _expired, _not_yet_valid,
     _encrypted_server_key, _foreign_client, _impostor_ca_same_name],
    ids=lambda f: f.__name__.strip("_"),
)
def test_lint_names_each_broken_rule(made: Settings, breaker) -> None:  # type: ignore[no-untyped-def]
    expected = breaker(made)
    problems = lint_certificates(made)
    assert any(expected in p for p in problems), problems
    with pytest.raises(CertError, match="break Amlen's rules"):
        check_certificates(made)


def test_lint_reports_missing_files(settings: Settings) -> None:
    problems = lint_certificates(settings)
    assert "myCA.pem: missing" in problems
    assert "test.server.crt: missing" in problems


def test_certs_repairs_what_lint_found(made: Settings) -> None:
    _mismatched_key(made)
    _foreign_client(made)
    assert lint_certificates(made)
    ensure_certificates(made)
    assert lint_certificates(made) == []


# --- real TLS with Python's ssl ---------------------------------------------------------------------------


def handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_name: str
) -> tuple[str, Exception | None, Exception | None]:
    """One TLS exchange over a socket pair: (CN the server saw, server-side error, client-side error)."""
    server_sock, client_sock = socket.socketpair()
    seen: dict[str, str] = {"cn": ""}
    errors: dict[str, Exception | None] = {"server": None, "client": None}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(server_sock, server_side=True) as tls:
                subject = (tls.getpeercert() or {}).get("subject", ())
                seen["cn"] = next((v for rdn in subject for k, v in rdn if k == "commonName"), "")
                tls.sendall(b"ok")
        except OSError as exc:  # ssl.SSLError is an OSError
            errors["server"] = exc
            server_sock.close()

    for sock in (server_sock, client_sock):
        sock.settimeout(10)
    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(client_sock, server_hostname=server_name) as tls:
            # TLS 1.3 reports a refused client certificate on the first read, not in the handshake.
            if tls.recv(2) != b"ok":
                raise ConnectionError("the server closed without answering")
    except OSError as exc:
        errors["client"] = exc
        client_sock.close()
    thread.join(10)
    return seen["cn"], errors["server"], errors["client"]


def contexts(settings: Settings, *, mutual: bool) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    paths = pki_paths(settings)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(paths.server_cert, paths.server_key)
    if mutual:
        server.verify_mode = ssl.CERT_REQUIRED
        server.load_verify_locations(paths.ca_cert)
    client = ssl.create_default_context(cafile=paths.ca_cert)
    # Python >= 3.13 turns on strict X.509 checks by default; hold our certificates to them already.
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    server.verify_flags |= ssl.VERIFY_X509_STRICT
    return server, client


def test_tls_handshake_trusts_the_server_by_its_hostname_only(made: Settings) -> None:
    server, client = contexts(made, mutual=False)
    assert handshake(server, client, made.hostname) == ("", None, None)
    _, _, refused = handshake(server, client, "other.example")
    assert isinstance(refused, ssl.SSLCertVerificationError)
    assert "mismatch" in str(refused)


def test_mutual_tls_accepts_the_lab_client_and_refuses_others(made: Settings, tmp_path: Path) -> None:
    server, client = contexts(made, mutual=True)
    key, cert = pki_paths(made).client("test.client1")
    client.load_cert_chain(cert, key)
    assert handshake(server, client, made.hostname) == ("test.client1", None, None)

    _, foreign_key, foreign_cert = make_foreign_client(tmp_path / "foreign")
    for identity in (None, (foreign_cert, foreign_key)):
        _, other = contexts(made, mutual=True)
        if identity:
            other.load_cert_chain(*identity)
        cn, server_error, client_error = handshake(server, other, made.hostname)
        assert cn == ""
        assert isinstance(server_error, ssl.SSLError), server_error
        assert "certificate" in str(server_error).lower()
        assert client_error is not None


# --- through invoke ---------------------------------------------------------------------------------------


def invoke(*args: str, lab_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    environment.update(LAB_DIR=str(lab_dir), COLUMNS="200", **env)
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=REPO, env=environment,
        capture_output=True, text=True, timeout=120,
    )


def test_invoke_certs_reports_each_file_then_reuses(tmp_path: Path) -> None:
    first = invoke("certs", lab_dir=tmp_path / "lab")
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and "myCA.pem" in first.stdout and "test.server.crt" in first.stdout
    again = invoke("certs", lab_dir=tmp_path / "lab")
    assert "reused" in again.stdout and "created" not in again.stdout

    more = invoke("client-cert", "--name", "a,b", "--name", "c", lab_dir=tmp_path / "lab")
    assert more.returncode == 0, more.stderr
    assert all((tmp_path / "lab" / "pki" / f"{n}.crt").exists() for n in "abc")


def test_invoke_certs_with_wrong_passphrase_fails_in_one_line(tmp_path: Path) -> None:
    assert invoke("certs", lab_dir=tmp_path / "lab", LAB_CA_PASSPHRASE="right").returncode == 0
    failed = invoke("certs", lab_dir=tmp_path / "lab", LAB_CA_PASSPHRASE="wrong")
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    assert "wrong passphrase" in failed.stderr and "LAB_CA_PASSPHRASE" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
