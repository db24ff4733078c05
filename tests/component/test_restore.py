"""Restore from real snapshots: one file, a home, another folder, and a whole lost machine."""

from __future__ import annotations

import asyncio
import csv
import grp
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from hubkeeper.host.snapshots import latest_name
from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import HUBKEEPER, hk, pam_hub
from tests.support.simuser import run_once

pytestmark = [pytest.mark.component, pytest.mark.root]

PREFIX = TEST_ACCOUNT_PREFIX
ALICE, BOB = f"{PREFIX}01", f"{PREFIX}02"


def write_hub(workdir: Path) -> Path:
    (workdir / "class.csv").write_text(f"username,groups\n{ALICE},{PREFIX}lab\n{BOB},\n")
    return pam_hub(workdir, "rescue",
                   f"users:\n  roster: {{csv: class.csv}}\n  groups: {{{PREFIX}lab: []}}\n"
                   f"snapshots: {{targets: [{workdir / 'backup'}]}}\n")


def put(path: Path, text: str, account: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    entry = pwd.getpwnam(account)
    for item in [path, *path.relative_to(entry.pw_dir).parents]:
        os.lchown(Path(entry.pw_dir) / item, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def snapshotted(workdir: Path, hubs, clean_accounts):
    config = write_hub(workdir)
    applied = hk(config, "apply")
    assert applied.returncode == 0, applied.stderr
    hubs.start(config).stop()
    home = Path(pwd.getpwnam(ALICE).pw_dir)
    put(home / "notebooks" / "week1.ipynb", "week 1 as submitted\n", ALICE)
    put(home / "notebooks" / "week2.ipynb", "week 2\n", ALICE)
    put(home / "private.txt", "only mine\n", ALICE, 0o600)
    put(Path(pwd.getpwnam(BOB).pw_dir) / "thesis.md", "bob's thesis\n", BOB)
    taken = hk(config, "snapshot")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    return config, home


def test_one_file_and_a_home_come_back_and_nothing_is_replaced_silently(
        snapshotted, workdir: Path) -> None:
    config, home = snapshotted
    week1, week2 = home / "notebooks" / "week1.ipynb", home / "notebooks" / "week2.ipynb"
    week1.write_text("week 1 broken by accident\n")
    week2.unlink()
    os.chmod(home / "private.txt", 0o644)
    put(home / "new-since.txt", "written after the snapshot\n", ALICE)

    one = hk(config, "restore", ALICE, "notebooks/week1.ipynb")
    assert one.returncode == 0, one.stderr
    assert week1.read_text() == "week 1 as submitted\n"
    assert not week2.exists(), "only the one file was asked for"
    (aside,) = home.glob("before-restore-*")
    assert (aside / "notebooks" / "week1.ipynb").read_text() == "week 1 broken by accident\n"
    uid = pwd.getpwnam(ALICE).pw_uid
    assert {p.stat().st_uid for p in [week1, aside, *aside.rglob("*")]} == {uid}
    assert "moved out of the way first: 1 file, now in" in one.stdout

    shutil.rmtree(aside)
    whole = hk(config, "restore", ALICE, "--json")
    assert whole.returncode == 0, whole.stderr
    assert week2.read_text() == "week 2\n"
    assert week2.stat().st_uid == uid
    assert stat.S_IMODE((home / "private.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "new-since.txt").read_text() == "written after the snapshot\n"
    assert not list(home.glob("before-restore-*")), "nothing was in the way this time"

    elsewhere = workdir / "for-inspection"
    copy = hk(config, "restore", BOB, "--to", str(elsewhere), "--from", "latest")
    assert copy.returncode == 0, copy.stderr
    assert (elsewhere / "thesis.md").read_text() == "bob's thesis\n"


def test_bad_restore_requests_change_nothing(snapshotted) -> None:
    config, home = snapshotted
    before = sorted(str(p) for p in home.rglob("*"))
    cases = {
        ("restore", f"{PREFIX}99"): f"has no home of '{PREFIX}99'",
        ("restore", ALICE, "../etc/passwd"): "is not a path inside the home",
        ("restore", ALICE, "notebooks/nosuch.ipynb"): "there: week1.ipynb, week2.ipynb",
        ("restore", ALICE, "--from", "20990101T000000"): "no snapshot '20990101T000000'",
        ("restore", ALICE, "--all"): "give no USER, PATH or --to",
        ("restore", "--all"): "--all needs --from",
        ("restore",): "name the USER",
    }
    for args, message in cases.items():
        done = hk(config, *args)
        assert done.returncode in (1, 2), args
        assert message in done.stderr, (args, done.stderr)
    assert sorted(str(p) for p in home.rglob("*")) == before


def credentials(workdir: Path) -> dict[str, str]:
    found = {}
    for path in (workdir / "state" / "credentials").glob("*.csv"):
        with open(path) as handle:
            found.update({row["username"]: row["password"] for row in csv.DictReader(handle)})
    return found


def test_disaster_recovery_brings_back_accounts_files_and_logins(snapshotted, workdir: Path,
                                                                 hubs) -> None:
    config, home = snapshotted
    passwords = credentials(workdir)
    ids = {name: (pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid)
           for name in (ALICE, BOB)}
    lab_gid = grp.getgrnam(f"{PREFIX}lab").gr_gid
    target = workdir / "backup"
    snapshot = target / latest_name(target)

    # the machine is lost: accounts, groups, homes, the state and hub.yaml all gone
    for name in (ALICE, BOB):
        subprocess.run(["userdel", "--remove", name], check=True, capture_output=True)
    subprocess.run(["groupdel", f"{PREFIX}lab"], check=True, capture_output=True)
    shutil.rmtree(workdir / "state")
    (workdir / "hub.yaml").unlink()
    (workdir / "class.csv").unlink()
    assert not home.exists()

    done = subprocess.run([HUBKEEPER, "restore", "--all", "--from", str(target)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"next: hubkeeper --config {config} up" in done.stdout
    for name, (uid, gid) in ids.items():
        entry = pwd.getpwnam(name)
        assert (entry.pw_uid, entry.pw_gid) == (uid, gid)
    assert grp.getgrnam(f"{PREFIX}lab").gr_gid == lab_gid
    assert ALICE in grp.getgrnam(f"{PREFIX}lab").gr_mem
    assert (home / "notebooks" / "week1.ipynb").read_text() == "week 1 as submitted\n"
    assert stat.S_IMODE((home / "private.txt").stat().st_mode) == 0o600
    assert (workdir / "class.csv").exists()

    again = subprocess.run([HUBKEEPER, "restore", "--all", "--from", str(snapshot)],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "accounts created: 0" in again.stdout, "a second run finds everything in place"

    hub = hubs.start(config)
    seen = asyncio.run(run_once(hub.url, ALICE, passwords[ALICE],
                                "open('notebooks/week1.ipynb').read()"))
    assert "week 1 as submitted" in seen
    seen = asyncio.run(run_once(hub.url, BOB, passwords[BOB],
                                "open('thesis.md').read()"))
    assert "bob's thesis" in seen


def test_restore_all_refuses_conflicts_before_changing_anything(snapshotted,
                                                                workdir: Path) -> None:
    config, home = snapshotted
    uid = pwd.getpwnam(BOB).pw_uid
    subprocess.run(["userdel", "--remove", BOB], check=True, capture_output=True)
    squatter = f"{PREFIX}sq"
    subprocess.run(["useradd", "--no-create-home", "--uid", str(uid), squatter], check=True,
                   capture_output=True)
    passwd = ours_in_passwd()
    done = subprocess.run([HUBKEEPER, "restore", "--all", "--from", str(workdir / "backup")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert f"account {BOB}: uid {uid} belongs to {squatter}" in done.stderr
    assert ours_in_passwd() == passwd


def ours_in_passwd() -> list[str]:
    """/etc/passwd's lines of this run's accounts (every account the snapshot could bring
    back has the prefix): another run on the machine may change its own meanwhile."""
    return [line for line in Path("/etc/passwd").read_text().splitlines()
            if line.startswith(PREFIX)]
