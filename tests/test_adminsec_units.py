"""lab.amlen.adminsec without a server: the setting, the reserved name, the securing order, the curl line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.amlen.adminsec import _OFFERS, Rung, admin_client, admin_curl, find_rung, target_rung
from lab.errors import AmlenError, CertError, SettingsError
from lab.pki.leaves import issue_client_certs
from lab.settings import load_settings
from lab.steps.admin import securing_calls
from tests.helpers import free_port


def test_the_setting_defaults_to_mtls_and_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    assert load_settings(env_file=None, dir=tmp_path).admin_security == "mtls"
    assert load_settings(env_file=None, dir=tmp_path).admin_base_url.startswith("https://127.0.0.1:")
    assert load_settings(env_file=None, dir=tmp_path, admin_security="open").admin_base_url.startswith("http://")
    with pytest.raises(SettingsError, match=r"LAB_ADMIN_SECURITY.*'mtls'"):
        load_settings(env_file=None, dir=tmp_path, admin_security="tls")
    with pytest.raises(SettingsError, match="LAB_ADMIN_CERT and LAB_ADMIN_KEY"):
        load_settings(env_file=None, dir=tmp_path, admin_cert=tmp_path / "c.pem")


def test_lab_admin_is_no_client_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="admin identity"):
        load_settings(env_file=None, dir=tmp_path, client_names="a,lab.admin")
    with pytest.raises(CertError, match=r"lab\.admin"):
        issue_client_certs(load_settings(env_file=None, dir=tmp_path), ["LAB.admin"])


def test_securing_calls_follow_the_order_the_real_server_needed(tmp_path: Path) -> None:
    mtls = load_settings(env_file=None, dir=tmp_path)
    labels = [call.label for call in securing_calls(mtls, secrets=False)]
    assert labels == ["AdminUserID and AdminUserPassword", "CertificateProfile LabAdminCert",
                      "SecurityProfile AdminDefaultSecProfile: TLS + password",
                      "TrustedCertificate AdminDefaultSecProfile/LabAdminCA.pem",
                      "SecurityProfile AdminDefaultSecProfile: client certificate required",
                      "ConfigurationPolicy AdminDefaultConfigPolicy: CommonNames lab.admin",
                      "SecurityProfile AdminDefaultSecProfile: password off"]
    rungs = [(call.over, call.then) for call in securing_calls(mtls, secrets=False)]
    assert rungs[2] == (Rung.OPEN, Rung.PASSWORD) and rungs[-1] == (Rung.CERT_PASSWORD, Rung.CERT)
    # The policy goes in only once requests carry the certificate (the other order locked the probe out).
    assert rungs[5] == (Rung.CERT_PASSWORD, Rung.CERT_PASSWORD)
    password = load_settings(env_file=None, dir=tmp_path, admin_security="password")
    assert [c.then for c in securing_calls(password, secrets=False)][-1] is Rung.PASSWORD == target_rung(password)
    assert securing_calls(load_settings(env_file=None, dir=tmp_path, admin_security="open"), secrets=False) == []


def test_a_switch_needs_a_witness_only_where_the_new_client_would_pass_the_old_listener() -> None:
    ambiguous = {(old, new) for old in Rung for new in Rung if old is not new and _OFFERS[new] >= _OFFERS[old]}
    assert (Rung.OPEN, Rung.PASSWORD) in ambiguous and (Rung.PASSWORD, Rung.CERT_PASSWORD) in ambiguous
    assert (Rung.CERT_PASSWORD, Rung.CERT) not in ambiguous


def test_the_curl_line_carries_files_only_and_nothing_listening_is_did_not_answer(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, dir=tmp_path, admin_port=free_port())
    line = admin_curl(settings)
    assert "--cacert" in line and "--cert" in line and "--key" in line and line.endswith("/ima/v1/service/status")
    assert "netrc" in admin_curl(settings.replace(admin_security="password"))
    with pytest.raises(AmlenError, match="did not answer"):
        admin_client(settings)
    assert find_rung(settings, timeout=0.5) is None  # nothing answers: still starting, not locked


class _Answers:
    """An admin client whose status call fails as a real server's listener would: refused, or silent."""

    def __init__(self, error: AmlenError) -> None:
        self.error = error

    def status(self, timeout: float) -> dict[str, object]:
        raise self.error

    def close(self) -> None:
        pass


def test_a_refusal_after_a_silent_rung_is_a_restart_still_opening_not_another_labs_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in CI: a restarted container opened its listener between two tries, so the lab's own rung (CERT) got
    no answer and the next one was refused; that is a server still starting, not one locked by another lab."""
    settings = load_settings(env_file=None, dir=tmp_path, admin_port=free_port())
    refused = AmlenError("Amlen's admin API did not answer (TLS handshake failed: TLSV13_ALERT_CERTIFICATE_REQUIRED)")
    silent = AmlenError("Amlen's admin API did not answer (connection refused)")

    def clients(first: AmlenError) -> object:
        return lambda _settings, timeout, rung: _Answers(first if rung is Rung.CERT else refused)

    monkeypatch.setattr("lab.amlen.adminsec.admin_client", clients(silent))
    assert find_rung(settings, timeout=0.5) is None  # polled again by readiness
    monkeypatch.setattr("lab.amlen.adminsec.admin_client", clients(refused))
    with pytest.raises(AmlenError, match="locked by another lab directory"):
        find_rung(settings, timeout=0.5)
