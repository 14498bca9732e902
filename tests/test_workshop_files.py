"""The workshop's files, checked by independent parts: openssl (chains, CRLs, SANs), zipfile, the file system.

No broker here: seat certificates, bundles, the CRL, the server certificate's extra names, and how `--status`
joins seats with Amlen's connection monitor.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography import x509

from lab.pki.ca import signing_ca
from lab.pki.crl import ensure_crl, read_crl, revoked_serials
from lab.pki.disk import Action
from lab.pki.leaves import ensure_certificates
from lab.pki.paths import pki_paths
from lab.settings import Settings, load_settings
from lab.workshop.bundle import access, readme_text, write_bundle
from lab.workshop.monitor import instant
from lab.workshop.seats import existing_seats, issue_seat_certs, seat_files
from lab.workshop.status import join_connections
from tests.conftest import INVOKE, ROOT
from tests.helpers import free_port

pytestmark = pytest.mark.usefixtures("no_lab_env")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    made = load_settings(dir=tmp_path / "lab", env_file=None)
    ensure_certificates(made)
    return made


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=30)


def test_seat_certificates_chain_to_the_lab_ca_with_cn_seat_name(settings: Settings) -> None:
    results = issue_seat_certs(settings, signing_ca(settings), ["01", "alice"])
    assert {r.action for r in results} == {Action.CREATED}
    assert existing_seats(settings) == ["01", "alice"]
    for name in ("01", "alice"):
        seat = seat_files(settings, name)
        check = openssl("verify", "-purpose", "sslclient", "-CAfile", pki_paths(settings).ca_cert, seat.cert)
        assert check.returncode == 0, check.stderr
        subject = openssl("x509", "-in", seat.cert, "-noout", "-subject").stdout
        assert f"CN = seat.{name}" in subject
        assert stat.S_IMODE(seat.key.stat().st_mode) == 0o600
        assert stat.S_IMODE(seat.dir.stat().st_mode) == 0o700


def test_reissue_makes_a_new_key_and_serial_and_rerun_keeps_everything(settings: Settings) -> None:
    ca = signing_ca(settings)
    issue_seat_certs(settings, ca, ["01", "02"])
    seat = seat_files(settings, "01")
    before = seat.cert.read_bytes(), seat.key.read_bytes()
    assert {r.action for r in issue_seat_certs(settings, ca, ["01", "02"])} == {Action.REUSED}
    assert (seat.cert.read_bytes(), seat.key.read_bytes()) == before
    issue_seat_certs(settings, ca, ["01"], force=True)
    old, new = (x509.load_pem_x509_certificate(data) for data in (before[0], seat.cert.read_bytes()))
    assert new.serial_number != old.serial_number and seat.key.read_bytes() != before[1]


def test_bundle_holds_the_seats_files_and_its_exact_commands(settings: Settings) -> None:
    issue_seat_certs(settings, signing_ca(settings), ["07"])
    seat = seat_files(settings, "07")
    where = access(settings, None)
    ca_pem = pki_paths(settings).ca_cert.read_bytes()
    assert write_bundle(seat, ca_pem, where)
    readme = seat.readme.read_text()
    port = settings.workshop_port
    assert f"mosquitto_sub -h {settings.hostname} -p {port} --cafile myCA.pem --cert seat.07.crt --key seat.07.key " \
           f"-i seat.07-sub -t 'workshop/seat.07/#' -t 'workshop/all/#' -v" in readme
    assert f"invoke pub -H {settings.hostname} -P {port} -s -F 07/myCA.pem -C 07/seat.07.crt" in readme
    assert "-c seat.07-pub" in readme
    assert f"127.0.0.1 {settings.hostname}" in readme
    with zipfile.ZipFile(seat.zip) as archive:
        members = {info.filename: info for info in archive.infolist()}
        # Today's bundle plus the kit's PKCS#12 pair, its password and the connection facts (lab.kit).
        assert sorted(members) == ["07/README.md", "07/client.p12", "07/connection.env", "07/connection.json",
                                   "07/kit.password", "07/myCA.pem", "07/seat.07.crt", "07/seat.07.key",
                                   "07/truststore.p12"]
        for private in ("07/seat.07.key", "07/kit.password", "07/client.p12"):
            assert (members[private].external_attr >> 16) & 0o777 == 0o600, private
        env = archive.read("07/connection.env").decode()
        assert f"KIT_MTLS_PORT={port}\n" in env and "KIT_TLS_PORT" not in env
        assert "KIT_CA=myCA.pem\nKIT_CERT=seat.07.crt\nKIT_KEY=seat.07.key\n" in env
        assert "KIT_TOPIC=workshop/seat.07/kit\n" in env and "KIT_CLIENT_ID=seat.07-kit\n" in env
        assert archive.read("07/seat.07.key") == seat.key.read_bytes()
    assert stat.S_IMODE(seat.zip.stat().st_mode) == 0o600
    # Same inputs, same bytes: nothing is rewritten, so a participant's copy stays the current one.
    mtimes = {p: p.stat().st_mtime_ns for p in seat.dir.iterdir()}
    assert not write_bundle(seat, ca_pem, where)
    assert {p: p.stat().st_mtime_ns for p in seat.dir.iterdir()} == mtimes


def test_exposed_readme_names_the_address_and_workshop_hostname(settings: Settings) -> None:
    named = settings.replace(workshop_hostname="mqtt.room.example")
    seat = seat_files(named, "07")
    text = readme_text(seat, access(named, "192.0.2.10"))
    assert "    192.0.2.10 mqtt.room.example\n" in text and "mosquitto_sub -h mqtt.room.example" in text


def test_crl_is_signed_by_the_ca_and_revokes_only_the_listed_seat(settings: Settings, tmp_path: Path) -> None:
    ca = signing_ca(settings)
    issue_seat_certs(settings, ca, ["01", "02"])
    path = tmp_path / "crl.pem"
    empty, written = ensure_crl(path, ca)
    assert written and revoked_serials(read_crl(path)) == set()
    assert ensure_crl(path, ca) == (empty, False)  # idempotent: byte for byte the same file
    one, two = (seat_files(settings, n) for n in ("01", "02"))
    serial = x509.load_pem_x509_certificate(one.cert.read_bytes()).serial_number
    _, written = ensure_crl(path, ca, revoke=[serial])
    assert written and revoked_serials(read_crl(path)) == {serial}
    crl = read_crl(path)
    assert crl is not None and crl.next_update_utc == ca.cert.not_valid_after_utc  # never lapses in a lab
    ca_file = pki_paths(settings).ca_cert
    revoked = openssl("verify", "-crl_check", "-CAfile", ca_file, "-CRLfile", path, one.cert)
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr
    fine = openssl("verify", "-crl_check", "-CAfile", ca_file, "-CRLfile", path, two.cert)
    assert fine.returncode == 0, fine.stderr


def test_crl_of_a_replaced_ca_starts_empty(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "crl.pem"
    ensure_crl(path, signing_ca(settings), revoke=[12345])
    ensure_certificates(settings, new_ca=True)
    _, written = ensure_crl(path, signing_ca(settings))
    assert written and revoked_serials(read_crl(path)) == set()


def test_server_certificate_gains_exposed_address_and_workshop_hostname(settings: Settings) -> None:
    named = settings.replace(workshop_hostname="mqtt.room.example")
    pki = pki_paths(named)
    results = {r.path.name: r for r in ensure_certificates(named, server_addresses=["192.0.2.10"])}
    assert results["test.server.crt"].action is Action.REISSUED
    assert "does not name mqtt.room.example, 192.0.2.10" in results["test.server.crt"].reason
    for check in (("-verify_hostname", named.hostname), ("-verify_hostname", "mqtt.room.example"),
                  ("-verify_ip", "192.0.2.10")):
        verified = openssl("verify", "-purpose", "sslserver", "-CAfile", pki.ca_cert, *check, pki.server_cert)
        assert verified.returncode == 0, (check, verified.stdout, verified.stderr)
    other_ip = openssl("verify", "-CAfile", pki.ca_cert, "-verify_ip", "192.0.2.11", pki.server_cert)
    assert other_ip.returncode != 0
    # Names are added, never dropped: without the address the certificate that has it is kept.
    again = {r.path.name: r for r in ensure_certificates(named)}
    assert again["test.server.crt"].action is Action.REUSED
    assert {r.action for r in ensure_certificates(named, server_addresses=["192.0.2.10"])} == {Action.REUSED}


def test_connections_join_the_seat_whose_cn_begins_their_client_id() -> None:
    connections = [
        {"Name": "seat.01-sub", "ReadMsg": 0, "WriteMsg": 4, "ConnectTime": 1_700_000_000_000_000_000},
        {"Name": "seat.01-pub", "ReadMsg": 4, "WriteMsg": 0, "ConnectTime": 1_700_000_100_000_000_000},
        {"Name": "seat.10", "ReadMsg": 1},
        {"Name": "mosq-12345"},
    ]
    joined, others = join_connections(["seat.01", "seat.10", "seat.1"], connections)
    assert [c["Name"] for c in joined["seat.01"]] == ["seat.01-sub", "seat.01-pub"]
    assert [c["Name"] for c in joined["seat.10"]] == ["seat.10"]  # the longest CN wins
    assert joined["seat.1"] == [] and others == ["mosq-12345"]
    assert str(instant(1_700_000_000_000_000_000)) == "2023-11-14 22:13:20+00:00"
    assert str(instant("2026-12-02T08:47:41.941Z")) == "2026-12-02 08:47:41.941000+00:00"
    assert instant(None) is None and instant("soon") is None


def workshop(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`invoke workshop ...` for a lab that is not up (nothing listens on its admin port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update({"LAB_DIR": str(tmp_path / "lab"), "LAB_ADMIN_PORT": str(free_port())})
    return subprocess.run([INVOKE, "-r", str(ROOT), "workshop", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)


def test_workshop_without_a_lab_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    result = workshop(tmp_path, "--seats", "3")
    assert result.returncode == 1 and "did not answer" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "lab" / "workshop").exists() and not (tmp_path / "lab" / "pki").exists()
    status = workshop(tmp_path, "--status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["seats"] == [] and data["live"] is None and "did not answer" in data["monitor_error"]
    rehearsal = workshop(tmp_path, "--rehearse")
    assert rehearsal.returncode == 1 and rehearsal.stderr.startswith("error: there are no seats to rehearse")
    assert len(rehearsal.stderr.strip().splitlines()) == 1


def test_workshop_flags_are_one_action_at_a_time(tmp_path: Path) -> None:
    both = workshop(tmp_path, "--seats", "2", "--revoke", "01")
    assert both.returncode == 1 and "choose one of --seats, --revoke" in both.stderr
    stray = workshop(tmp_path, "--seats", "2", "--json")
    assert stray.returncode == 1 and "--json goes with --status" in stray.stderr
    for args, words in ((("--rehearse", "--watch"), "--watch goes with --status"),
                        (("--status", "--json", "--watch"), "choose one of --json, --watch"),
                        (("--rehearse", "--revoke", "01"), "choose one of --revoke, --rehearse")):
        refused = workshop(tmp_path, *args)
        assert refused.returncode == 1 and words in refused.stderr, (args, refused.stderr)


def test_workshop_surface_resolves_and_stays_lazy() -> None:
    import lab.workshop

    for name in lab.workshop.__all__:
        assert getattr(lab.workshop, name) is not None, name
    code = "import sys, lab.workshop; print(sorted(m for m in ('docker', 'paho', 'lab.plan') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
