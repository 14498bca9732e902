"""The hosts-file entry: real files, real renames, a real bind mount, the real resolver and a real non-root user.

Fixture files are raw bytes (CRLF, BOM, no final newline, odd bytes...); the marker lines in them name
FIXTURE_LAB, so the tests build settings for that lab directory.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from invoke import Collection, Program

import lab.hosts as hosts_module
from lab.errors import HostsError
from lab.hosts import HostsState, add_hosts_entry, hosts_status, manual_instructions, remove_hosts_entry
from lab.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "hosts"
FIXTURE_LAB = Path("/srv/amlen-lab-fixture/.lab")
NAME = "testserver.getting.started"
OUR_LINE = f"127.0.0.1 {NAME}  # amlen-lab {FIXTURE_LAB}".encode()
NOBODY = 65534

# What each fixture holds, as (state `hosts_status` must report, what `add` must do with it):
#   add: adds the lab's line; user: a line of the user's already maps the name to 127.0.0.1, nothing added;
#   conflict: a line of the user's maps it elsewhere; stale: holds a stale line of this lab; ours: already done.
A, U, C, P = HostsState.ABSENT, HostsState.USER_PROVIDES, HostsState.CONFLICT, HostsState.OURS_PRESENT
CASES: dict[str, tuple[HostsState, str]] = {
    "empty.hosts": (A, "add"),
    "newline-only.hosts": (A, "add"),
    "debian-default.hosts": (A, "add"),
    "no-final-newline.hosts": (A, "add"),
    "crlf.hosts": (A, "add"),
    "crlf-no-final-newline.hosts": (A, "add"),
    "bom-lf.hosts": (A, "add"),
    "bom-only.hosts": (A, "add"),
    "windows-default.hosts": (A, "add"),
    "windows-notepad-bom-crlf.hosts": (A, "add"),
    "tabs.hosts": (A, "add"),
    "comments-only.hosts": (A, "add"),
    "ipv6-lines.hosts": (A, "add"),
    "name-on-ipv6-only.hosts": (A, "add"),
    "name-commented-out.hosts": (A, "add"),
    "docker-container.hosts": (A, "add"),
    "macos-default.hosts": (A, "add"),
    "non-utf8-bytes.hosts": (A, "add"),
    "mixed-line-endings.hosts": (A, "add"),
    "blank-lines-trailing-space.hosts": (A, "add"),
    "inline-comments.hosts": (A, "add"),
    "readonly.hosts": (A, "add"),
    "long.hosts": (A, "add"),
    "other-lab-dir.hosts": (U, "add"),
    "name-at-loopback.hosts": (U, "user"),
    "name-at-loopback-uppercase-tabs.hosts": (U, "user"),
    "several-names-one-line.hosts": (U, "user"),
    "invalid-alias-beside-name.hosts": (U, "user"),
    "marker-lookalike-user-line.hosts": (U, "user"),
    "name-elsewhere.hosts": (C, "conflict"),
    "several-names-elsewhere.hosts": (C, "conflict"),
    "stale-crashed-run.hosts": (A, "stale"),
    "stale-renamed-no-final-newline.hosts": (A, "stale"),
    "ours-present.hosts": (P, "ours"),
}
ADDABLE = [name for name, (_, kind) in CASES.items() if kind in {"add", "user"}]
CONFLICTS = [name for name, (_, kind) in CASES.items() if kind == "conflict"]


def _settings(hosts_file: Path, *, lab: Path = FIXTURE_LAB, hostname: str = NAME) -> Settings:
    return load_settings(hosts_file=hosts_file, dir=lab, hostname=hostname, host_ip="127.0.0.1")


def _copy(name: str, directory: Path) -> Path:
    target = directory / name
    shutil.copyfile(FIXTURES / name, target)
    if name == "readonly.hosts":
        target.chmod(0o444)
    return target


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's tmp_path is 0700 root's)."""
    directory = Path(tempfile.mkdtemp(prefix="amlen-lab-hosts-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def _as_nobody(action: Callable[[], int | None]) -> tuple[int, str]:
    """Run `action` in a forked child as uid/gid 65534; return its exit code and everything it printed."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            sys.stdout = sys.stderr = open(write_end, "w", closefd=False)  # noqa: SIM115
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = action() or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 99
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(write_end)
    with open(read_end, "rb") as handle:
        output = handle.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def _others(directory: Path, keep: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p != keep)


# ---------------------------------------------------------------------------------------------- the fixtures


def test_fixture_set_covers_the_issue_and_every_file_is_described() -> None:
    on_disk = {p.name for p in FIXTURES.iterdir()}
    assert on_disk == set(CASES)
    assert len(on_disk) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_status_reports_the_state_and_changes_nothing(name: str, tmp_path: Path) -> None:
    path = _copy(name, tmp_path)
    outcome = hosts_status(_settings(path))
    assert (outcome.state, outcome.changed) == (CASES[name][0], False)
    assert path.read_bytes() == (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("name", ADDABLE)
def test_add_then_remove_leaves_the_file_byte_identical(name: str, tmp_path: Path) -> None:
    path = _copy(name, tmp_path)
    original, mode = path.read_bytes(), stat.S_IMODE(path.stat().st_mode)
    settings = _settings(path)

    added = add_hosts_entry(settings)
    if CASES[name][1] == "user":
        assert (added.changed, added.state) == (False, HostsState.USER_PROVIDES)
        assert "nothing added, nothing to remove later" in added.message
        assert path.read_bytes() == original
    else:
        assert (added.changed, added.state) == (True, HostsState.OURS_PRESENT)
        assert added.message == f"added '127.0.0.1 {NAME}' to {path}"
        # Appended in the file's own line ending; a file without a final newline gets a separator first.
        crlf = original.count(b"\r\n") > original.count(b"\n") - original.count(b"\r\n")
        eol = b"\r\n" if crlf else b"\n"
        terminated = original in (b"", b"\xef\xbb\xbf") or original.endswith(b"\n")
        assert path.read_bytes() == (original + OUR_LINE + eol if terminated else original + eol + OUR_LINE)
        assert hosts_status(settings).state == HostsState.OURS_PRESENT
        assert add_hosts_entry(settings).changed is False  # twice is a no-op
    assert stat.S_IMODE(path.stat().st_mode) == mode

    removed = remove_hosts_entry(settings)
    assert removed.changed is (CASES[name][1] == "add")
    assert path.read_bytes() == original
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert remove_hosts_entry(settings).changed is False  # nothing left: still succeeds
    assert _others(tmp_path, path) == []  # no temporary file left behind


@pytest.mark.parametrize("name", CONFLICTS)
def test_conflicting_user_line_stops_add_and_leaves_the_file_untouched(name: str, tmp_path: Path) -> None:
    path = _copy(name, tmp_path)
    original, inode = path.read_bytes(), path.stat().st_ino
    with pytest.raises(HostsError) as caught:
        add_hosts_entry(_settings(path))
    assert "not 127.0.0.1" in caught.value.message and "--force" in str(caught.value.hint)
    assert "\n" not in str(caught.value)
    assert (path.read_bytes(), path.stat().st_ino) == (original, inode)


def test_messages_about_lines_with_odd_bytes_can_be_printed(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(f"10.0.0.1 {NAME} # caf\xe9\n".encode("latin-1"))
    with pytest.raises(HostsError) as caught:
        add_hosts_entry(_settings(path))
    assert "caf\ufffd" in str(caught.value)
    str(caught.value).encode("utf-8")  # would raise UnicodeEncodeError with a surrogate in it
    assert "caf\ufffd" in add_hosts_entry(_settings(path), force=True).message


@pytest.mark.parametrize("name", CONFLICTS)
def test_force_puts_ours_above_theirs_and_remove_restores_the_bytes(name: str, tmp_path: Path) -> None:
    path = _copy(name, tmp_path)
    original = path.read_bytes()
    settings = _settings(path)
    theirs = next(line for line in original.splitlines() if NAME.encode() in line)

    outcome = add_hosts_entry(settings, force=True)
    lines = path.read_bytes().splitlines()
    assert outcome.changed and "left as it is" in outcome.message
    assert lines.index(OUR_LINE) == lines.index(theirs) - 1  # resolvers take the first match
    assert hosts_status(settings).state == HostsState.OURS_PRESENT
    assert add_hosts_entry(settings, force=True).changed is False

    remove_hosts_entry(settings)
    assert path.read_bytes() == original


def test_stale_line_of_a_crashed_run_is_replaced_then_removed(tmp_path: Path) -> None:
    path = _copy("stale-crashed-run.hosts", tmp_path)
    original = path.read_bytes()
    stale = f"10.9.9.9 {NAME}  # amlen-lab {FIXTURE_LAB}\n".encode()
    settings = _settings(path)

    outcome = add_hosts_entry(settings)
    assert outcome.changed and "stale line" in outcome.message
    assert stale not in path.read_bytes() and path.read_bytes().count(OUR_LINE) == 1
    remove_hosts_entry(settings)
    assert path.read_bytes() == original.replace(stale, b"")


def test_stale_line_for_a_renamed_host_goes_and_the_missing_final_newline_stays_missing(tmp_path: Path) -> None:
    path = _copy("stale-renamed-no-final-newline.hosts", tmp_path)
    settings = _settings(path)
    add_hosts_entry(settings)
    assert path.read_bytes() == b"127.0.0.1 localhost\n" + OUR_LINE
    remove_hosts_entry(settings)
    assert path.read_bytes() == b"127.0.0.1 localhost"


def test_add_when_the_lab_line_is_there_changes_nothing_and_remove_takes_it(tmp_path: Path) -> None:
    path = _copy("ours-present.hosts", tmp_path)
    original, inode = path.read_bytes(), path.stat().st_ino
    settings = _settings(path)
    outcome = add_hosts_entry(settings)
    assert (outcome.changed, outcome.state) == (False, HostsState.OURS_PRESENT)
    assert (path.read_bytes(), path.stat().st_ino) == (original, inode)
    assert remove_hosts_entry(settings).message == f"removed '127.0.0.1 {NAME}' from {path}"
    assert path.read_bytes() == b"127.0.0.1 localhost\n"


# --------------------------------------------------------------------------------------- ownership, concurrency


def test_two_labs_in_two_directories_never_remove_each_others_line(tmp_path: Path) -> None:
    path = _copy("debian-default.hosts", tmp_path)
    original = path.read_bytes()
    first = _settings(path, lab=tmp_path / "lab one #1" / ".lab")
    second = _settings(path, lab=tmp_path / "lab one #1" / ".lab2")  # a prefix of the other must not match
    add_hosts_entry(first)
    add_hosts_entry(second)
    assert remove_hosts_entry(first).changed
    assert hosts_status(second).state == HostsState.OURS_PRESENT
    assert f"# amlen-lab {second.lab_dir}\n".encode() in path.read_bytes()
    assert remove_hosts_entry(first).changed is False
    remove_hosts_entry(second)
    assert path.read_bytes() == original


def test_edits_made_while_the_lab_is_up_survive_remove(tmp_path: Path) -> None:
    path = _copy("no-final-newline.hosts", tmp_path)
    settings = _settings(path)
    add_hosts_entry(settings)
    # Someone else edits the file while the lab is up: a line above ours, a line below it (editor adds a newline).
    with path.open("ab") as handle:
        handle.write(b"\n10.0.0.99 added.by.someone.else\n")
    path.write_bytes(path.read_bytes().replace(b"127.0.0.1 localhost\n", b"127.0.0.1 localhost\n10.0.0.98 x\n"))
    remove_hosts_entry(settings)
    assert path.read_bytes() == (
        b"127.0.0.1 localhost\n10.0.0.98 x\n::1 localhost ip6-localhost\n10.0.0.99 added.by.someone.else\n"
    )


def test_edit_made_between_our_read_and_our_write_is_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy("debian-default.hosts", tmp_path)
    settings = _settings(path)
    add_hosts_entry(settings)
    plan = hosts_module._plan_remove
    calls = []

    def another_editor_strikes_after_we_read(data: bytes, settings: Settings) -> tuple[bytes, HostsState, str]:
        calls.append(data)
        if len(calls) == 1:  # the other writer appends after our first read, before our write
            with path.open("ab") as handle:
                handle.write(b"10.0.0.77 racer\n")
        return plan(data, settings)

    monkeypatch.setattr(hosts_module, "_plan_remove", another_editor_strikes_after_we_read)
    remove_hosts_entry(settings)
    assert len(calls) == 2  # re-planned on the other writer's content
    assert path.read_bytes() == (FIXTURES / "debian-default.hosts").read_bytes() + b"10.0.0.77 racer\n"


# -------------------------------------------------------------------------------------------- the write path


def test_write_renames_a_new_file_over_the_old_keeping_mode_and_owner(tmp_path: Path) -> None:
    path = _copy("debian-default.hosts", tmp_path)
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o640)
    before = path.stat()
    add_hosts_entry(_settings(path))
    after = path.stat()
    assert after.st_ino != before.st_ino  # a new file was renamed in: readers never see half of it
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (NOBODY, NOBODY, 0o640)
    assert _others(tmp_path, path) == []


def test_interrupted_write_before_rename_leaves_the_original_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _copy("crlf.hosts", tmp_path)

    def killed(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        add_hosts_entry(_settings(path))
    assert path.read_bytes() == (FIXTURES / "crlf.hosts").read_bytes()
    assert _others(tmp_path, path) == []


def test_sigkill_just_before_rename_never_leaves_a_truncated_file(tmp_path: Path) -> None:
    path = _copy("long.hosts", tmp_path)
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from lab.hosts import add_hosts_entry
        from lab.settings import load_settings
        os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
        add_hosts_entry(load_settings(hosts_file=Path({str(path)!r}), dir=Path({str(FIXTURE_LAB)!r}),
                                      hostname={NAME!r}, host_ip="127.0.0.1"))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert path.read_bytes() == (FIXTURES / "long.hosts").read_bytes()
    # The complete new content sat in a temp file beside it, waiting for the rename.
    [leftover] = [p for p in tmp_path.iterdir() if p != path]
    assert leftover.name.startswith(".long.hosts.amlen-lab.") and OUR_LINE in leftover.read_bytes()


def test_rename_refused_falls_back_to_writing_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy("bom-lf.hosts", tmp_path)
    inode = path.stat().st_ino

    def busy(src: str, dst: str) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy", dst)

    monkeypatch.setattr(os, "replace", busy)
    settings = _settings(path)
    assert add_hosts_entry(settings).changed
    assert OUR_LINE in path.read_bytes() and path.stat().st_ino == inode
    assert _others(tmp_path, path) == []
    remove_hosts_entry(settings)
    assert path.read_bytes() == (FIXTURES / "bom-lf.hosts").read_bytes()


def test_bind_mounted_hosts_file_is_updated_in_place(tmp_path: Path) -> None:
    source, target = _copy("docker-container.hosts", tmp_path), tmp_path / "mounted-hosts"
    target.write_bytes(b"")
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        settings = _settings(target)
        assert add_hosts_entry(settings).changed  # rename over a mount point fails with EBUSY
        assert OUR_LINE in source.read_bytes()  # written through the mount: same file
        remove_hosts_entry(settings)
        assert source.read_bytes() == (FIXTURES / "docker-container.hosts").read_bytes()
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_symlinked_hosts_file_is_edited_behind_the_link(tmp_path: Path) -> None:
    real, link = _copy("debian-default.hosts", tmp_path), tmp_path / "hosts-link"
    link.symlink_to(real)
    settings = _settings(link)
    add_hosts_entry(settings)
    assert link.is_symlink() and OUR_LINE in real.read_bytes()
    remove_hosts_entry(settings)
    assert link.is_symlink() and real.read_bytes() == (FIXTURES / "debian-default.hosts").read_bytes()


def test_missing_hosts_file_is_an_error_to_add_and_nothing_to_remove(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "nope")
    with pytest.raises(HostsError, match="does not exist"):
        add_hosts_entry(settings)
    assert remove_hosts_entry(settings).changed is False
    assert hosts_status(settings).state == HostsState.ABSENT
    assert not (tmp_path / "nope").exists()


# ------------------------------------------------------------------------------------------------ permissions


def test_non_root_user_gets_one_line_with_the_sudo_command_and_the_file_is_untouched(shared_dir: Path) -> None:
    path = _copy("debian-default.hosts", shared_dir)

    def add() -> None:
        try:
            add_hosts_entry(_settings(path))
        except HostsError as exc:
            print(exc)
            raise SystemExit(1) from None

    code, output = _as_nobody(add)
    assert code == 1
    [line] = output.splitlines()
    assert line.startswith(f"cannot change {path}: permission denied (hint: run `sudo env ")
    assert "hosts --add`" in line and f"LAB_HOSTS_FILE={path}" in line and OUR_LINE.decode() in line
    assert path.read_bytes() == (FIXTURES / "debian-default.hosts").read_bytes()
    assert _others(shared_dir, path) == []


def test_read_only_file_of_the_user_is_not_changed(shared_dir: Path) -> None:
    path = _copy("readonly.hosts", shared_dir)
    os.chown(path, NOBODY, NOBODY)  # theirs, in a directory they may not write, and 0444

    def add() -> int:
        try:
            add_hosts_entry(_settings(path))
        except HostsError as exc:
            print(exc.message)
            return 1
        return 0

    assert _as_nobody(add) == (1, f"cannot change {path}: permission denied\n")
    assert path.read_bytes() == (FIXTURES / "readonly.hosts").read_bytes()


def test_manual_instructions_give_the_exact_command_and_the_line(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "my hosts")
    text = manual_instructions(settings)
    command = shlex.split(text.split("`")[1])
    assert command[:4] == ["sudo", "env", f"LAB_DIR={FIXTURE_LAB}", f"LAB_HOSTS_FILE={tmp_path}/my hosts"]
    assert command[5:] == ["hosts", "--add"]
    # sudo's PATH does not hold the virtualenv: the command names this environment's invoke by path.
    assert Path(command[4]).samefile(Path(sys.executable).parent / "invoke")
    assert text.endswith(f"add this line to {tmp_path}/my hosts by hand: {OUR_LINE.decode()}")
    assert "hosts --remove`" in manual_instructions(settings, remove=True)
    assert "\n" not in text


# ------------------------------------------------------------------------------------------- the real resolver


def test_real_etc_hosts_resolves_the_name_between_add_and_remove(tmp_path: Path) -> None:
    etc_hosts = Path("/etc/hosts")
    backup = etc_hosts.read_bytes()
    hostname = f"amlen-lab-test-{uuid.uuid4().hex[:12]}.getting.started"
    settings = load_settings(hosts_file=etc_hosts, dir=tmp_path / ".lab", hostname=hostname, host_ip="127.0.0.1")
    try:
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo(hostname, None)
        assert add_hosts_entry(settings).changed
        assert {info[4][0] for info in socket.getaddrinfo(hostname, None)} == {"127.0.0.1"}
        assert remove_hosts_entry(settings).changed
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo(hostname, None)
        assert etc_hosts.read_bytes() == backup
    finally:
        # Other tests may touch /etc/hosts too: take back only our line, and restore the backup only if that fails.
        remove_hosts_entry(settings)
        if hostname.encode() in etc_hosts.read_bytes():
            etc_hosts.write_bytes(backup)


RESOLVER_SCRIPT = """
import json, os, socket, sys
from pathlib import Path
from lab.hosts import add_hosts_entry, remove_hosts_entry
from lab.settings import load_settings

def first_address():
    try:
        return socket.getaddrinfo(sys.argv[1], None, socket.AF_INET)[0][4][0]
    except socket.gaierror:
        return None

settings = load_settings(hosts_file=Path("/etc/hosts"), dir=Path(sys.argv[2]), hostname=sys.argv[1],
                         host_ip="127.0.0.1")
report = {"before": first_address()}
report["added"] = add_hosts_entry(settings, force=sys.argv[3] == "force").changed
report["during"] = first_address()
report["removed"] = remove_hosts_entry(settings).changed
report["after"] = first_address()
print(json.dumps(report))
"""


@pytest.mark.parametrize(
    ("name", "before"),
    [
        ("crlf-no-final-newline.hosts", None),
        ("windows-notepad-bom-crlf.hosts", None),
        ("tabs.hosts", None),
        ("non-utf8-bytes.hosts", None),
        ("name-elsewhere.hosts", "10.20.30.40"),
        ("several-names-elsewhere.hosts", "192.168.1.50"),
    ],
)
def test_resolver_reads_the_lab_line_from_awkward_files(name: str, before: str | None, tmp_path: Path) -> None:
    """Each file is bind-mounted over /etc/hosts in a private mount namespace: the real one is never touched."""
    path = _copy(name, tmp_path)
    script = tmp_path / "resolve.py"
    script.write_text(RESOLVER_SCRIPT)
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", 'mount --bind "$1" /etc/hosts && shift && exec "$@"', "sh",
         str(path), sys.executable, str(script), NAME, str(FIXTURE_LAB), "force" if before else "-"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"before": before, "added": True, "during": "127.0.0.1", "removed": True, "after": before}
    assert path.read_bytes() == (FIXTURES / name).read_bytes()
    assert OUR_LINE not in Path("/etc/hosts").read_bytes()  # the mount was private to the child


# ----------------------------------------------------------------------------------------------- invoke hosts


def _invoke(args: list[str], hosts_file: Path, lab: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAB_HOSTS_FILE": str(hosts_file), "LAB_DIR": str(lab), "LAB_HOSTNAME": NAME,
           "LAB_HOST_IP": "127.0.0.1", "COLUMNS": "80"}
    invoke = Path(sys.executable).parent / "invoke"
    return subprocess.run([str(invoke), "hosts", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)


def test_invoke_hosts_shows_adds_and_removes(tmp_path: Path) -> None:
    path = _copy("crlf-no-final-newline.hosts", tmp_path)
    shown = _invoke([], path, FIXTURE_LAB)
    assert (shown.returncode, shown.stdout) == (0, f"{path} has no line for {NAME}\n")
    added = _invoke(["--add"], path, FIXTURE_LAB)
    assert (added.returncode, added.stdout) == (0, f"added '127.0.0.1 {NAME}' to {path}\n")
    assert _invoke(["--show"], path, FIXTURE_LAB).stdout.startswith(f"line 4 of {path} is the lab's")
    removed = _invoke(["--remove"], path, FIXTURE_LAB)
    assert (removed.returncode, removed.stdout) == (0, f"removed '127.0.0.1 {NAME}' from {path}\n")
    assert path.read_bytes() == (FIXTURES / "crlf-no-final-newline.hosts").read_bytes()


def test_invoke_hosts_conflict_is_one_line_and_force_overrides(tmp_path: Path) -> None:
    path = _copy("name-elsewhere.hosts", tmp_path)
    refused = _invoke(["--add"], path, FIXTURE_LAB)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1 and "maps testserver.getting.started to 10.20.30.40" in refused.stderr
    assert _invoke(["--add", "--force"], path, FIXTURE_LAB).returncode == 0
    assert _invoke(["--remove"], path, FIXTURE_LAB).returncode == 0
    assert path.read_bytes() == (FIXTURES / "name-elsewhere.hosts").read_bytes()
    assert _invoke(["--remove", "--force"], path, FIXTURE_LAB).returncode == 1


def test_invoke_hosts_without_permission_exits_non_zero_with_one_line(shared_dir: Path) -> None:
    path = _copy("debian-default.hosts", shared_dir)
    # The unprivileged child cannot read this interpreter's standard library (it lives under /root):
    # load tasks.py, invoke and what the task imports here, before the fork.
    spec = importlib.util.spec_from_file_location("amlen_lab_tasks", REPO / "tasks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    program = Program(namespace=Collection.from_module(module))
    importlib.import_module("lab.report")
    manual_instructions(_settings(path))

    def run_task() -> None:
        os.environ.update(LAB_HOSTS_FILE=str(path), LAB_DIR=str(FIXTURE_LAB), LAB_HOSTNAME=NAME,
                          LAB_HOST_IP="127.0.0.1", HOME=str(shared_dir))  # a user's own home, not root's
        os.chdir(REPO)
        program.run(["invoke", "hosts", "--add"])

    code, output = _as_nobody(run_task)
    assert code == 1 and "Traceback" not in output, output
    [line] = output.splitlines()
    assert line.startswith(f"error: cannot change {path}: permission denied (hint: run `sudo env ")
    assert path.read_bytes() == (FIXTURES / "debian-default.hosts").read_bytes()
