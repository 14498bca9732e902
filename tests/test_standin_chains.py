"""Contract: the stand-in serves a certificate profile's file whole and keeps a mutual profile's trust store as
Amlen does (server_utils/src/ssl.c; reference, "Observed later (2026-12-02)").

- The certificate file is loaded with `SSL_CTX_use_certificate_chain_file`: leaf, then intermediates (then the
  root, when the file has it), all sent, in the file's order.
- A security profile's trust store is `<profile>_cafile.pem` plus the hashed `<profile>_capath`, loaded with
  `SSL_CTX_load_verify_locations`, without `X509_V_FLAG_PARTIAL_CHAIN`: a client chain must end at a trusted
  self-signed root. Trusting only the intermediate admits nobody; with the root trusted a client that sends
  leaf + intermediate is admitted, and one that sends only its leaf only when the intermediate is trusted too.

Checked with the real openssl CLI (what is served) and with Python clients whose contexts clear the
partial-chain flag (Python >= 3.13 sets it in `create_default_context`), on one stand-in container.
"""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.standin_helpers import (
    SERVER_NAME,
    AdminApi,
    RunningStandin,
    assert_success,
    endpoint,
    poll,
    standin_with_api,
    tls_mqtt_probe,
    tls_profile,
    unique,
)

pytestmark = pytest.mark.docker

TLS_PORT, MUTUAL_PORT = 18201, 18202


@dataclass(frozen=True)
class TwoTier:
    """A root, an intermediate it signed, and a server and a client certificate the intermediate signed."""

    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(cn: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None, *,
          ca: bool, pathlen: int | None = None, dns: str | None = None, usage: x509.ObjectIdentifier | None = None,
          ) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                        critical=True)
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TwoTier:
    directory = tmp_path_factory.mktemp("two-tier")
    root_key, inter_key, server_key, client_key = _key(), _key(), _key(), _key()
    root = _cert("Chain Root CA", root_key, None, ca=True, pathlen=1)
    inter = _cert("Chain Intermediate CA", inter_key, (root, root_key), ca=True, pathlen=0)
    server = _cert(SERVER_NAME, server_key, (inter, inter_key), ca=False, dns=SERVER_NAME,
                   usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _cert("chain-client", client_key, (inter, inter_key), ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    files = {
        "root.pem": _pem(root), "inter.pem": _pem(inter), "server.crt": _pem(server),
        "server.chain.pem": _pem(server, inter), "server.full.pem": _pem(server, inter, root),
        "server.key": _key_pem(server_key), "client.crt": _pem(client), "client.chain.pem": _pem(client, inter),
        "client.key": _key_pem(client_key),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return TwoTier(directory)


@pytest.fixture(scope="module")
def standin(standin_image: str) -> Iterator[tuple[RunningStandin, AdminApi]]:
    with standin_with_api(standin_image, ports=(9089, TLS_PORT, MUTUAL_PORT)) as running:
        yield running


def _serve(api: AdminApi, pki: TwoTier, cert_file: str, *, trusted: tuple[str, ...] = ()) -> None:
    """Both endpoints on a new certificate profile of `cert_file`; the mutual one trusts `trusted`."""
    name = unique("Chain")
    upload = f"{name}.pem"
    api.put_file(upload, pki.path(cert_file).read_bytes())
    api.put_file(f"{name}.key", pki.path("server.key").read_bytes())
    assert_success(api.post({"CertificateProfile": {name: {"Certificate": upload, "Key": f"{name}.key",
                                                           "Overwrite": True}}}))
    assert_success(api.post({"SecurityProfile": {f"{name}Tls": tls_profile(client_certificates=False,
                                                                           certificate_profile=name)}}))
    assert_success(api.post({"SecurityProfile": {f"{name}Mtls": tls_profile(client_certificates=True,
                                                                            certificate_profile=name)}}))
    for trusted_file in trusted:
        stored = f"{name}-{trusted_file}"
        api.put_file(stored, pki.path(trusted_file).read_bytes())
        assert_success(api.post({"TrustedCertificate": [{"SecurityProfileName": f"{name}Mtls",
                                                         "TrustedCertificate": stored, "Overwrite": True}]}))
    assert_success(api.post({"Endpoint": {"ChainTls": endpoint(TLS_PORT, f"{name}Tls")}}))
    assert_success(api.post({"Endpoint": {"ChainMtls": endpoint(MUTUAL_PORT, f"{name}Mtls")}}))


def _presented(running: RunningStandin, port: int, pki: TwoTier) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """The subjects openssl s_client lists (leaf first), and the run, verifying against the root only."""
    def shown() -> subprocess.CompletedProcess[str] | None:
        done = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{running.host_port(port)}", "-servername", SERVER_NAME,
             "-CAfile", str(pki.path("root.pem")), "-verify_return_error", "-showcerts"],
            input="", capture_output=True, text=True, timeout=30)
        return done if "BEGIN CERTIFICATE" in done.stdout else None

    result = poll(shown)
    assert result is not None, "the endpoint never presented a certificate"
    subjects = [line.split("s:", 1)[1].strip() for line in result.stdout.splitlines()
                if line.strip()[:1].isdigit() and " s:" in line]
    return subjects, result


def _client(pki: TwoTier, cert_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN  # what Amlen's clients must not rely on either
    context.load_verify_locations(cafile=str(pki.path("root.pem")))
    context.load_cert_chain(str(pki.path(cert_file)), str(pki.path("client.key")))
    return context


def _admitted(running: RunningStandin, pki: TwoTier, cert_file: str) -> bool:
    return tls_mqtt_probe(running.host_port(MUTUAL_PORT), _client(pki, cert_file)).mqtt_accepted


def _refused(running: RunningStandin, pki: TwoTier, cert_file: str) -> bool:
    """Refused by the TLS layer (an alert or a close after the handshake), not by a port that is not up."""
    outcome = tls_mqtt_probe(running.host_port(MUTUAL_PORT), _client(pki, cert_file))
    error = outcome.handshake_error or outcome.read_error
    if outcome.mqtt_accepted:
        return False
    tls_refusal = isinstance(error, ssl.SSLError | ConnectionResetError | BrokenPipeError)
    return tls_refusal or (outcome.version is not None and not outcome.answer)


def test_the_certificate_file_is_served_whole_in_its_order(standin: tuple[RunningStandin, AdminApi],
                                                           pki: TwoTier) -> None:
    running, api = standin
    _serve(api, pki, "server.chain.pem", trusted=("root.pem",))
    subjects, shown = _presented(running, TLS_PORT, pki)
    assert subjects == [f"CN = {SERVER_NAME}", "CN = Chain Intermediate CA"], shown.stdout
    assert shown.returncode == 0 and "Verify return code: 0 (ok)" in shown.stdout, "a client trusting only the root"

    _serve(api, pki, "server.full.pem", trusted=("root.pem",))
    subjects, shown = _presented(running, TLS_PORT, pki)
    assert subjects == [f"CN = {SERVER_NAME}", "CN = Chain Intermediate CA", "CN = Chain Root CA"], shown.stdout


def test_a_leaf_alone_fails_a_client_that_trusts_only_the_root(standin: tuple[RunningStandin, AdminApi],
                                                               pki: TwoTier) -> None:
    running, api = standin
    _serve(api, pki, "server.crt", trusted=("root.pem",))
    subjects, shown = _presented(running, TLS_PORT, pki)
    assert subjects == [f"CN = {SERVER_NAME}"]
    assert shown.returncode != 0 and "unable to get local issuer certificate" in shown.stdout + shown.stderr


def test_trusting_the_root_admits_a_client_that_sends_leaf_and_intermediate_not_its_leaf_alone(
        standin: tuple[RunningStandin, AdminApi], pki: TwoTier) -> None:
    running, api = standin
    _serve(api, pki, "server.chain.pem", trusted=("root.pem",))
    assert poll(lambda: _admitted(running, pki, "client.chain.pem")), "leaf + intermediate, root trusted"
    assert _refused(running, pki, "client.crt"), "leaf alone: the intermediate is not in the trust store"


def test_trusting_only_the_intermediate_admits_nobody(standin: tuple[RunningStandin, AdminApi],
                                                      pki: TwoTier) -> None:
    running, api = standin
    _serve(api, pki, "server.chain.pem", trusted=("inter.pem",))
    # The endpoint is up (it presents its chain), and still no chain ends at a trusted root.
    _presented(running, MUTUAL_PORT, pki)
    assert _refused(running, pki, "client.chain.pem")
    assert _refused(running, pki, "client.crt")


def test_with_the_intermediate_trusted_too_a_leaf_alone_is_admitted(standin: tuple[RunningStandin, AdminApi],
                                                                    pki: TwoTier) -> None:
    running, api = standin
    _serve(api, pki, "server.chain.pem", trusted=("root.pem", "inter.pem"))
    assert poll(lambda: _admitted(running, pki, "client.crt")), "leaf alone, root and intermediate trusted"
    assert _admitted(running, pki, "client.chain.pem")
