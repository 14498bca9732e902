"""lab.pki.chain and the two-tier set on disk, without Docker: the broken chains named in words, verification
that refuses partial chains (as Amlen's OpenSSL does), and switching LAB_PKI without ever losing a CA."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from lab.errors import CertError
from lab.pki.build import LabCa, ServerNames, build_ca_cert, build_intermediate, build_leaf, new_key
from lab.pki.chain import Finding, Severity, order_bundle, presented_findings, verify_path
from lab.pki.disk import Action
from lab.pki.leaves import ensure_certificates
from lab.pki.lint import lint_certificates
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings

pytestmark = pytest.mark.usefixtures("no_lab_env")
Chain = tuple[x509.Certificate, x509.Certificate, x509.Certificate]


@pytest.fixture(scope="module")
def two_tier() -> Chain:
    """(root, intermediate, leaf) as the lab's builders make them."""
    root_key = new_key()
    root = LabCa(root_key, build_ca_cert(root_key, days=30, path_length=1))
    inter_key = new_key()
    inter = LabCa(inter_key, build_intermediate(root, inter_key, days=30))
    leaf = build_leaf(inter, new_key(), "chain.example", days=10, server=ServerNames(("chain.example",)))
    return root.cert, inter.cert, leaf


def _words(findings: list[Finding]) -> str:
    return " | ".join(f"{f.severity}: {f.words}" for f in findings)


def test_leaf_then_intermediate_is_clean_and_the_root_sent_too_is_said(two_tier: Chain) -> None:
    root, inter, leaf = two_tier
    assert presented_findings([leaf, inter], [root]) == []
    findings = presented_findings([leaf, inter, root], [root])
    assert [f.severity for f in findings] == [Severity.OK]
    assert "only clients that trust on first use" in findings[0].words


def test_the_broken_chains_are_named_in_words(two_tier: Chain) -> None:
    root, _inter, leaf = two_tier
    alone = presented_findings([leaf], [root])
    assert alone[0].severity is Severity.FAIL and "the leaf is sent alone" in alone[0].words
    assert "clients that trust only myCA.pem will fail" in alone[0].words
    assert "upload leaf + intermediate" in alone[0].hint

    other_key = new_key()
    stranger = build_ca_cert(other_key, days=30, cn="stranger CA")
    not_signed = presented_findings([leaf, stranger], [root])
    assert not_signed[0].severity is Severity.FAIL and "is not signed by the certificate sent after it" in \
        not_signed[0].words

    # A second intermediate level, sent in the wrong order.
    top_key, mid_key = new_key(), new_key()
    top = LabCa(top_key, build_ca_cert(top_key, days=30, cn="top", path_length=2))
    mid_cert = build_intermediate(top, mid_key, days=30)
    mid = LabCa(mid_key, mid_cert)
    low_key = new_key()
    low = LabCa(low_key, build_intermediate(mid, low_key, days=30))
    deep_leaf = build_leaf(low, new_key(), "deep.example", days=10, server=ServerNames(("deep.example",)))
    wrong = presented_findings([deep_leaf, mid.cert, low.cert], [top.cert])
    assert any(f.severity is Severity.WARN and "in the wrong order" in f.words for f in wrong), _words(wrong)
    assert order_bundle([low.cert, top.cert, deep_leaf, mid.cert]).chain == (deep_leaf, low.cert, mid.cert, top.cert)


def test_verification_needs_a_trusted_root_no_partial_chains(two_tier: Chain) -> None:
    root, inter, leaf = two_tier
    assert verify_path([leaf, inter], [root]) is None
    assert "trusted but not a root" in (verify_path([leaf], [inter]) or "")
    assert "unknown" in (verify_path([leaf], [root]) or "")
    one_tier_key = new_key()
    one_tier = LabCa(one_tier_key, build_ca_cert(one_tier_key, days=30))  # pathlen 0, the guide's
    under_key = new_key()
    under = build_intermediate(one_tier, under_key, days=30)
    below = build_leaf(LabCa(under_key, under), new_key(), "x.example", days=10)
    assert "pathlen 0" in (verify_path([below, under], [one_tier.cert]) or "")


def _set(tmp_path: Path, pki: str) -> Settings:
    return load_settings(env_file=None, dir=tmp_path / "lab", pki=pki, ca_passphrase="switch-words")


def test_switching_to_intermediate_never_replaces_the_guides_root_without_new_ca(tmp_path: Path) -> None:
    root_mode = _set(tmp_path, "root")
    ensure_certificates(root_mode)
    paths = pki_paths(root_mode)
    before = {p.name: p.read_bytes() for p in paths.dir.iterdir()}

    two = _set(tmp_path, "intermediate")
    with pytest.raises(CertError, match=r"may sign leaves only \(pathlen 0") as caught:
        ensure_certificates(two)
    assert "--new-ca" in (caught.value.hint or "")
    assert {p.name: p.read_bytes() for p in paths.dir.iterdir()} == before, "nothing was changed"

    results = ensure_certificates(two, new_ca=True)
    assert {r.path.name for r in results if r.action is Action.REISSUED} >= {"myCA.pem", "myCA.key"}
    assert lint_certificates(two) == []
    check = subprocess.run(["openssl", "verify", "-CAfile", paths.ca_cert, "-untrusted", paths.intermediate_cert,
                            paths.server_cert, paths.client("test.client1")[1]], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # And back: the two-tier root (pathlen 1) signs leaves directly; both CAs stay on disk, untouched.
    cas = {p: p.read_bytes() for p in (paths.ca_cert, paths.ca_key, paths.intermediate_cert, paths.intermediate_key)}
    back = ensure_certificates(root_mode)
    assert {r.path.name for r in back if r.action is Action.REISSUED} >= {"test.server.crt", "test.client1.crt"}
    assert {p: p.read_bytes() for p in cas} == cas
    assert not paths.server_chain.exists() and lint_certificates(root_mode) == []


def test_two_tier_set_is_reused_byte_for_byte_and_each_leaf_has_its_chain(tmp_path: Path) -> None:
    two = _set(tmp_path, "intermediate")
    ensure_certificates(two)
    paths = pki_paths(two)
    snapshot = {p.name: p.read_bytes() for p in paths.dir.iterdir()}
    assert {r.action for r in ensure_certificates(two)} == {Action.REUSED}
    assert {p.name: p.read_bytes() for p in paths.dir.iterdir()} == snapshot
    key, presented = paths.client_presented("test.client1")
    assert presented.name == "test.client1.chain.pem" and key.name == "test.client1.key"
    assert presented.read_bytes() == paths.client("test.client1")[1].read_bytes() + \
        paths.intermediate_cert.read_bytes()
    assert paths.served_cert == paths.server_chain
    # The intermediate's key is encrypted with the CA passphrase, like the root's.
    assert b"ENCRYPTED PRIVATE KEY" in paths.intermediate_key.read_bytes()


@pytest.mark.parametrize(("pki", "served"), [("root", 2), ("intermediate", 3)])
def test_serve_root_appends_the_root_after_the_chain(tmp_path: Path, pki: str, served: int) -> None:
    settings = _set(tmp_path, pki).replace(serve_root=True)
    ensure_certificates(settings)
    paths = pki_paths(settings)
    certs = x509.load_pem_x509_certificates(paths.served_cert.read_bytes())
    assert paths.served_cert == paths.server_chain and len(certs) == served
    assert certs[-1] == x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    assert lint_certificates(settings) == []
    assert [f.severity for f in presented_findings(certs, certs[-1:])] == [Severity.OK]  # "the root is sent too"
    from lab.learn.guide import guide_markdown

    assert f"cat test.server.crt {' '.join(['myIntermediateCA.pem'] * (pki == 'intermediate'))}".rstrip() \
        + " myCA.pem > test.server.chain.pem" in guide_markdown(settings)


def test_guide_clients_present_the_chain_in_the_two_tier_pki(tmp_path: Path) -> None:
    from lab.clients.subpub import ClientFlags, client_target

    settings = _set(tmp_path, "intermediate")
    ensure_certificates(settings)
    target = client_target(settings, ClientFlags(port=str(settings.mtls_port)))
    assert target.description.endswith("client certificate test.client1.chain.pem")
    # -C with a chain file finds its key beside it, as with a .crt
    chained = client_target(settings, ClientFlags(port=str(settings.mtls_port), cert="test.client1.chain.pem"))
    assert "test.client1.chain.pem" in chained.description


def test_guide_for_your_own_certificate_never_shows_the_key_password(tmp_path: Path) -> None:
    from lab.learn.guide import guide_markdown, guide_script

    made = tmp_path / "mine"
    made.mkdir()
    subprocess.run(["bash", "-euo", "pipefail", "-c",
                    "openssl req -x509 -newkey rsa:2048 -keyout k.pem -passout pass:hunter22 -subj /CN=own.example "
                    "-addext subjectAltName=DNS:own.example -days 30 -out c.pem"], cwd=made, check=True,
                   capture_output=True)
    settings = load_settings(env_file=None, dir=tmp_path / "lab", hostname="own.example", server_cert=made / "c.pem",
                             server_key=made / "k.pem", server_key_password="hunter22", ca_passphrase="x-words")
    ensure_certificates(settings)
    for text in (guide_markdown(settings), guide_script(settings)):
        assert "hunter22" not in text
        assert '"KeyFilePassword": "${LAB_SERVER_KEY_PASSWORD}"' in text
        assert "Your own certificate" in text or "Your own certificate" in guide_markdown(settings)
    subprocess.run(["bash", "-n"], input=guide_script(settings), text=True, check=True)
