"""Your own server certificate (LAB_SERVER_CERT / LAB_SERVER_KEY / LAB_SERVER_KEY_PASSWORD / LAB_TRUST_CA), made
by real tools: `openssl` (a two-tier chain, written out of order) and `mkcert` (Debian's; RSA by default, its
-ecdsa for the refused case). What Amlen would refuse, or accept and then fail with, is one line with a hint
before anything is uploaded; a good certificate passes the lab's matrix on the stand-in, and the lab never
writes to or deletes the user's files (`down --purge` included).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from lab.amlen.configure import desired_objects
from lab.errors import CertError
from lab.pki.leaves import ensure_certificates
from lab.pki.own import load_own_server
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings
from tests.conftest import LabEnv

HOST = "own.getting.started"
pytestmark = pytest.mark.usefixtures("no_lab_env")


def _sh(script: str, cwd: Path, **env: str) -> None:
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, check=True, capture_output=True,
                   env={"PATH": os.environ["PATH"], **env})


def openssl_two_tier(directory: Path, host: str = HOST) -> Path:
    """root.pem, inter.pem, leaf.crt/leaf.key by openssl, and bundle.pem written out of order: inter, leaf, root."""
    directory.mkdir(parents=True, exist_ok=True)
    _sh(f"""
openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -subj '/CN=Own Root' -days 30 -out root.pem \
  -addext 'basicConstraints=critical,CA:TRUE,pathlen:1' -addext 'keyUsage=critical,keyCertSign,cRLSign'
openssl req -newkey rsa:2048 -nodes -keyout inter.key -subj '/CN=Own Intermediate' -out inter.csr
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > inter.ext
openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -CAcreateserial -days 30 -extfile inter.ext \
  -out inter.pem
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -subj '/CN={host}' -out leaf.csr
printf 'basicConstraints=critical,CA:FALSE\\nsubjectAltName=DNS:{host}\\nextendedKeyUsage=serverAuth\\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA inter.pem -CAkey inter.key -CAcreateserial -days 30 -extfile leaf.ext \
  -out leaf.crt
cat inter.pem leaf.crt root.pem > bundle.pem
""", directory)
    return directory


def mkcert(directory: Path, *extra: str, host: str = HOST) -> Path:
    """mkcert's CA in `directory` (CAROOT) and a certificate for `host`: leaf.crt / leaf.key, rootCA.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    _sh(f"mkcert {' '.join(extra)} -cert-file leaf.crt -key-file leaf.key {host}", directory,
        CAROOT=str(directory), HOME=str(directory))
    return directory


def _settings(tmp_path: Path, cert: Path, key: Path, **more: object) -> Settings:
    return load_settings(env_file=None, dir=tmp_path / "lab", hostname=HOST, server_cert=cert, server_key=key,
                         **more)


def _message(settings: Settings) -> str:
    with pytest.raises(CertError) as caught:
        ensure_certificates(settings)
    assert not (settings.pki_dir / "test.server.chain.pem").exists(), "nothing is written when the file is bad"
    return f"{caught.value.message} (hint: {caught.value.hint})"


def test_openssl_chain_out_of_order_is_served_leaf_first_and_the_users_files_stay(tmp_path: Path) -> None:
    made = openssl_two_tier(tmp_path / "mine")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in made.iterdir()}
    settings = _settings(tmp_path, made / "bundle.pem", made / "leaf.key")
    results = ensure_certificates(settings)

    pki = pki_paths(settings)
    served = x509.load_pem_x509_certificates(pki.served_cert.read_bytes())
    assert [c.subject.rfc4514_string() for c in served] == [f"CN={HOST}", "CN=Own Intermediate"]
    assert any("out of order" in r.reason for r in results)
    assert any("its root is not served" in r.reason for r in results)
    assert pki.server_trust == pki.server_ca and pki.server_ca.read_bytes() == (made / "root.pem").read_bytes()
    assert not pki.server_cert.exists(), "no server certificate of the lab's own"
    cert_profile = desired_objects(settings, pki)[0]
    assert cert_profile.properties["Certificate"] == "test.server.chain.pem"
    assert cert_profile.uploads["test.server.key"] == (made / "leaf.key").read_bytes()
    check = subprocess.run(["openssl", "verify", "-CAfile", str(made / "root.pem"), "-untrusted",
                            str(pki.served_cert), str(pki.served_cert)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in made.iterdir()} == before

    served_root = ensure_certificates(settings.replace(serve_root=True))
    assert served_root and pki.served_cert.read_bytes().count(b"BEGIN CERTIFICATE") == 3


def test_mkcert_certificate_with_its_root_as_lab_trust_ca(tmp_path: Path) -> None:
    made = mkcert(tmp_path / "mkcert")
    settings = _settings(tmp_path, made / "leaf.crt", made / "leaf.key", trust_ca=made / "rootCA.pem")
    own = load_own_server(settings)
    assert len(own.chain) == 1 and own.root is None  # mkcert signs leaves with its root directly
    served_root = load_own_server(settings.replace(serve_root=True))
    assert len(served_root.chain) == 2 and served_root.chain[-1].subject == served_root.chain[-1].issuer
    ensure_certificates(settings)
    assert pki_paths(settings).server_trust == made / "rootCA.pem"


def test_ec_keys_are_refused_with_how_to_reissue_with_rsa(tmp_path: Path) -> None:
    made = mkcert(tmp_path / "ecdsa", "-ecdsa")
    words = _message(_settings(tmp_path, made / "leaf.crt", made / "leaf.key", trust_ca=made / "rootCA.pem"))
    assert "is an EC 256 key: Amlen takes RSA keys only (it would answer CWLNA6191" in words
    assert "step certificate create --kty RSA" in words and "mkcert" in words


def test_each_broken_certificate_is_one_line_naming_the_cause(tmp_path: Path) -> None:
    made = openssl_two_tier(tmp_path / "mine")
    other = openssl_two_tier(tmp_path / "other", host="elsewhere.example")
    cases = [
        (_settings(tmp_path, made / "bundle.pem", other / "leaf.key"), "does not belong to the certificate"),
        (_settings(tmp_path, other / "bundle.pem", other / "leaf.key"),
         f"is for elsewhere.example, not LAB_HOSTNAME={HOST}"),
        (_settings(tmp_path, made / "leaf.crt", made / "leaf.key", trust_ca=made / "root.pem"),
         "lacks the intermediate 'Own Intermediate' that signed 'own.getting.started'"),
        (_settings(tmp_path, made / "leaf.crt", made / "leaf.key"), "no root of the system's trust store signed it"),
        (_settings(tmp_path, made / "missing.pem", made / "leaf.key"), "LAB_SERVER_CERT: "),
    ]
    for settings, words in cases:
        message = _message(settings)
        assert words in message, (words, message)
        assert "\n" not in message
    subprocess.run(["openssl", "pkey", "-in", made / "leaf.key", "-aes256", "-passout", "pass:right", "-out",
                    made / "locked.key"], check=True, capture_output=True)
    assert "is encrypted and LAB_SERVER_KEY_PASSWORD is not set" in _message(
        _settings(tmp_path, made / "bundle.pem", made / "locked.key"))
    assert "does not decrypt" in _message(
        _settings(tmp_path, made / "bundle.pem", made / "locked.key", server_key_password="wrong"))


def test_intermediates_in_lab_trust_ca_complete_a_leaf_only_file(tmp_path: Path) -> None:
    made = openssl_two_tier(tmp_path / "mine")
    (made / "ca-bundle.pem").write_bytes((made / "root.pem").read_bytes() + (made / "inter.pem").read_bytes())
    own = load_own_server(_settings(tmp_path, made / "leaf.crt", made / "leaf.key", trust_ca=made / "ca-bundle.pem"))
    assert [c.subject.rfc4514_string() for c in own.chain] == [f"CN={HOST}", "CN=Own Intermediate"]
    assert any("from LAB_TRUST_CA" in note for note in own.notes)


@pytest.mark.parametrize("when", ["expired", "future"])
def test_dates_are_checked_because_amlen_serves_an_expired_certificate(tmp_path: Path, when: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    start, end = (now - dt.timedelta(days=10), now - dt.timedelta(days=1)) if when == "expired" else \
        (now + dt.timedelta(days=1), now + dt.timedelta(days=10))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    words = _message(_settings(tmp_path, tmp_path / "c.pem", tmp_path / "k.pem"))
    assert ("expired on" in words and "Amlen would accept and serve it" in words) if when == "expired" \
        else "is not valid before" in words


# --- on the stand-in -------------------------------------------------------------------------------------


def _lab_with(tmp_path: Path, image: str, **env: str) -> LabEnv:
    lab = LabEnv.new(tmp_path / "lab", image, LAB_HOSTNAME=HOST, **env)
    lab.env["LAB_HOSTNAME"] = HOST
    return lab


def _up_verify_purge(lab: LabEnv) -> dict[str, object]:
    try:
        up = lab.invoke("up", "--no-hosts")
        assert up.returncode == 0, up.stdout + up.stderr
        verified = lab.invoke("verify", "--no-hosts", "--json")
        report = json.loads(verified.stdout)
        assert report["passed"], [r for r in report["rows"] if not r["passed"]]
        down = lab.invoke("down", "--purge")
        assert down.returncode == 0, down.stdout + down.stderr
        return report
    finally:
        subprocess.run(["docker", "rm", "-f", lab.container_name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"{lab.container_name}-data"], capture_output=True)


@pytest.mark.docker
def test_openssl_two_tier_certificate_passes_the_matrix_and_purge_leaves_it(tmp_path: Path,
                                                                             standin_image: str) -> None:
    made = openssl_two_tier(tmp_path / "mine")
    before = {p.name: p.read_bytes() for p in made.iterdir()}
    lab = _lab_with(tmp_path, standin_image, LAB_SERVER_CERT=str(made / "bundle.pem"),
                    LAB_SERVER_KEY=str(made / "leaf.key"))
    report = _up_verify_purge(lab)
    chain_row = next(r for r in report["rows"] if r["row"] == 7)  # type: ignore[union-attr]
    assert "trusting only server-ca.pem" in chain_row["name"]
    assert "then intermediate 'Own Intermediate' (issuer 'Own Root')" in chain_row["detail"]
    assert {p.name: p.read_bytes() for p in made.iterdir()} == before


@pytest.mark.docker
def test_mkcert_certificate_with_an_encrypted_key_passes_the_matrix(tmp_path: Path, standin_image: str) -> None:
    made = mkcert(tmp_path / "mkcert")
    subprocess.run(["openssl", "pkey", "-in", made / "leaf.key", "-aes256", "-passout", "pass:s3cret-key",
                    "-out", made / "locked.key"], check=True, capture_output=True)
    lab = _lab_with(tmp_path, standin_image, LAB_SERVER_CERT=str(made / "leaf.crt"),
                    LAB_SERVER_KEY=str(made / "locked.key"), LAB_SERVER_KEY_PASSWORD="s3cret-key",
                    LAB_TRUST_CA=str(made / "rootCA.pem"))
    _up_verify_purge(lab)
    assert (made / "locked.key").is_file() and (made / "rootCA.pem").is_file()


@pytest.mark.docker
def test_an_ec_key_is_refused_in_preflight_before_any_container_or_volume(tmp_path: Path,
                                                                          standin_image: str) -> None:
    made = mkcert(tmp_path / "ecdsa", "-ecdsa")
    lab = _lab_with(tmp_path, standin_image, LAB_SERVER_CERT=str(made / "leaf.crt"),
                    LAB_SERVER_KEY=str(made / "leaf.key"), LAB_TRUST_CA=str(made / "rootCA.pem"))
    try:
        up = lab.invoke("up", "--no-hosts")
        names = [lab.container_name, f"{lab.container_name}-data"]
        containers = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=^{names[0]}$"], capture_output=True,
                                    text=True, check=True).stdout
        volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name=^{names[1]}$"],
                                 capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(["docker", "rm", "-f", lab.container_name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"{lab.container_name}-data"], capture_output=True)
    assert up.returncode == 1, up.stdout + up.stderr
    error = [line for line in up.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error[0].startswith("error: preflight failed: LAB_SERVER_KEY "), up.stderr
    assert "is an EC 256 key: Amlen takes RSA keys only" in error[0] and "left nothing behind" in up.stderr
    assert "step certificate create --kty RSA" in error[0] and "Traceback" not in up.stdout + up.stderr
    assert containers == "" and volumes == "", "refused before anything was made"
    assert re.search(r"✘ \[1/\d+\] preflight: LAB_SERVER_KEY", up.stdout) and "[2/" not in up.stdout, up.stdout
    assert not (lab.dir / "pki" / "test.server.chain.pem").exists() and (made / "leaf.key").is_file()
