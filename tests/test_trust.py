"""lab.pki.trust against real NSS databases made with certutil in temp homes, and `invoke trust` end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import CertError
from lab.pki.leaves import ensure_certificates, make_foreign_client
from lab.pki.paths import pki_paths
from lab.pki.trust import TrustState, ca_nickname, find_nss_dbs, install_ca, trust_guide, trust_status, uninstall_ca
from lab.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


def _new_nss_db(directory: Path) -> Path:
    directory.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{directory}"], check=True)
    return directory


def _listing(db: Path) -> str:
    return subprocess.run(["certutil", "-L", "-d", f"sql:{db}"], check=True, capture_output=True, text=True).stdout


def _add(db: Path, nickname: str, pem: Path, flags: str = "C,,") -> None:
    subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", nickname, "-t", flags, "-i", str(pem)], check=True)


@pytest.fixture
def lab(tmp_path: Path) -> Settings:
    settings = load_settings(dir=tmp_path / "lab")
    ensure_certificates(settings)
    return settings


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with Chromium's NSS DB (holding a user's own CA) and one Firefox profile."""
    home = tmp_path / "home"
    chrome_db = _new_nss_db(home / ".pki" / "nssdb")
    _new_nss_db(home / ".mozilla" / "firefox" / "abcd1234.default-release")
    # The user's own CA, which the lab must never touch.
    users_ca, _, _ = make_foreign_client(tmp_path / "users-ca")
    _add(chrome_db, "Corporate Root", users_ca)
    return home


def _invoke(home: Path, lab_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "LAB_DIR": str(lab_dir)}
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "trust", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


def test_invoke_trust_install_then_uninstall_leaves_nss_databases_as_they_were(lab: Settings, home: Path) -> None:
    dbs = [db.path for db in find_nss_dbs(home)]
    before = {db: _listing(db) for db in dbs}

    installed = _invoke(home, lab.lab_dir, "--install")
    assert installed.returncode == 0, installed.stderr
    for db in dbs:
        assert f"{ca_nickname(lab)} " in _listing(db)
        line = next(x for x in _listing(db).splitlines() if x.startswith(ca_nickname(lab)))
        assert line.split()[-1] == "C,,"  # trusted for TLS servers only, not e-mail or code signing

    removed = _invoke(home, lab.lab_dir, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert {db: _listing(db) for db in dbs} == before
    assert "Corporate Root" in before[home / ".pki" / "nssdb"]


def test_install_twice_is_a_no_op(lab: Settings, home: Path) -> None:
    dbs = find_nss_dbs(home)
    assert len(install_ca(lab, nss_dbs=dbs)) == 2
    listing = {db.path: _listing(db.path) for db in dbs}
    assert install_ca(lab, nss_dbs=dbs) == []
    assert {db.path: _listing(db.path) for db in dbs} == listing
    assert [t.state for t in trust_status(lab, nss_dbs=dbs)] == [TrustState.TRUSTED, TrustState.TRUSTED]


def test_uninstall_with_nothing_installed_succeeds_and_changes_nothing(lab: Settings, home: Path) -> None:
    dbs = find_nss_dbs(home)
    before = {db.path: _listing(db.path) for db in dbs}
    assert uninstall_ca(lab, nss_dbs=dbs) == []
    assert uninstall_ca(lab, nss_dbs=[]) == []
    assert {db.path: _listing(db.path) for db in dbs} == before


def test_users_own_import_of_the_lab_ca_is_reported_and_left_alone(lab: Settings, home: Path) -> None:
    chrome_db = home / ".pki" / "nssdb"
    _add(chrome_db, "my toy CA", pki_paths(lab).ca_cert, flags="CT,C,C")
    dbs = find_nss_dbs(home)
    states = {t.db.path: (t.state, t.nickname) for t in trust_status(lab, nss_dbs=dbs)}
    assert states[chrome_db] == (TrustState.TRUSTED_BY_USER, "my toy CA")

    changed = install_ca(lab, nss_dbs=dbs)
    assert [Path(x.split(": ", 1)[1]) for x in changed] == [home / ".mozilla/firefox/abcd1234.default-release"]
    uninstall_ca(lab, nss_dbs=dbs)
    line = next(x for x in _listing(chrome_db).splitlines() if x.startswith("my toy CA"))
    assert line.split()[-1] == "CT,C,C"  # the user's entry and its trust flags are untouched


def test_uninstall_removes_only_this_labs_ca_not_another_labs(lab: Settings, home: Path, tmp_path: Path) -> None:
    other = load_settings(dir=tmp_path / "other-lab")
    ensure_certificates(other)
    dbs = find_nss_dbs(home)
    install_ca(lab, nss_dbs=dbs)
    install_ca(other, nss_dbs=dbs)

    uninstall_ca(lab, nss_dbs=dbs)
    assert [t.state for t in trust_status(lab, nss_dbs=dbs)] == [TrustState.ABSENT] * 2
    assert [t.state for t in trust_status(other, nss_dbs=dbs)] == [TrustState.TRUSTED] * 2


def test_install_replaces_the_old_lab_ca_after_the_ca_was_regenerated(lab: Settings, home: Path) -> None:
    dbs = find_nss_dbs(home)
    install_ca(lab, nss_dbs=dbs)
    ensure_certificates(lab, new_ca=True)
    assert [t.state for t in trust_status(lab, nss_dbs=dbs)] == [TrustState.STALE] * 2

    assert len(install_ca(lab, nss_dbs=dbs)) == 2
    assert [t.state for t in trust_status(lab, nss_dbs=dbs)] == [TrustState.TRUSTED] * 2
    for db in dbs:
        assert _listing(db.path).count(ca_nickname(lab)) == 1


def test_install_without_a_lab_ca_fails_with_a_hint_to_run_up(tmp_path: Path, home: Path) -> None:
    settings = load_settings(dir=tmp_path / "empty-lab")
    with pytest.raises(CertError, match="no lab CA") as info:
        install_ca(settings, nss_dbs=find_nss_dbs(home))
    assert "invoke up" in (info.value.hint or "")


def test_install_without_any_browser_database_fails_with_a_hint(lab: Settings, tmp_path: Path) -> None:
    with pytest.raises(CertError, match="no Chrome/Chromium or Firefox certificate database") as info:
        install_ca(lab, nss_dbs=[])
    assert "start the browser once" in (info.value.hint or "")


def test_find_nss_dbs_finds_chromium_firefox_and_snap_profiles_but_not_legacy_ones(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _new_nss_db(home / ".pki" / "nssdb")
    _new_nss_db(home / "snap" / "firefox" / "common" / ".mozilla" / "firefox" / "snapprof.default")
    _new_nss_db(home / ".mozilla" / "firefox" / "p1.default")
    legacy = home / ".mozilla" / "firefox" / "old.default"
    legacy.mkdir(parents=True)
    (legacy / "cert8.db").write_bytes(b"")  # pre-2017 format: browsers no longer read it

    found = {db.path: db.browser for db in find_nss_dbs(home)}
    assert found == {
        home / ".pki" / "nssdb": "Chrome/Chromium",
        home / "snap/firefox/common/.mozilla/firefox/snapprof.default": "Firefox (snap) profile snapprof.default",
        home / ".mozilla/firefox/p1.default": "Firefox profile p1.default",
    }


def test_guide_names_the_ca_file_and_exact_os_commands_with_its_thumbprint(lab: Settings) -> None:
    guide = trust_guide(lab)
    ca = pki_paths(lab).ca_cert
    sha1 = subprocess.run(
        ["openssl", "x509", "-in", str(ca), "-noout", "-fingerprint", "-sha1"],
        check=True, capture_output=True, text=True,
    ).stdout.split("=", 1)[1].strip().replace(":", "")
    assert guide.ca_file == ca
    assert guide.os_commands["Windows"]["install"] == [f"certutil -addstore -user Root {ca}"]
    assert guide.os_commands["Windows"]["uninstall"] == [f"certutil -delstore -user Root {sha1}"]
    assert f"security delete-certificate -Z {sha1}" in guide.os_commands["macOS"]["uninstall"][1]
    assert any(str(ca) in step for step in guide.browser_steps["Firefox"])
    assert "any website name" in guide.meaning


def test_invoke_trust_prints_browser_steps_and_bad_flags_end_in_one_line(lab: Settings, home: Path) -> None:
    shown = _invoke(home, lab.lab_dir)
    assert shown.returncode == 0, shown.stderr
    assert "Trust this CA to identify websites" in shown.stdout
    assert str(pki_paths(lab).ca_cert) in shown.stdout
    assert "not trusted" in shown.stdout  # the status table: nothing installed yet

    both = _invoke(home, lab.lab_dir, "--install", "--uninstall")
    assert both.returncode == 1
    assert "Traceback" not in both.stderr
    no_ca = _invoke(home, lab.lab_dir / "missing", "--install")
    assert no_ca.returncode == 1
    assert no_ca.stderr.strip().splitlines()[-1].startswith("error: no lab CA at")
    assert "Traceback" not in no_ca.stderr
