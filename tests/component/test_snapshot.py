"""Snapshots of a real hub with real accounts: hard links, crash safety, a full disk, bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest

from hubkeeper.host.snapshots import complete_snapshots, latest_name
from hubkeeper.lifecycle.snapshot import verify_snapshot
from tests.conftest import TEST_ACCOUNT_PREFIX, require_root
from tests.support.hubproc import HUBKEEPER, hk, pam_hub

pytestmark = [pytest.mark.component, pytest.mark.root]

PREFIX = TEST_ACCOUNT_PREFIX


def write_hub(workdir: Path, users: int, targets: list[Path] | None = None,
              keep: str = "") -> Path:
    snapshots = ""
    if targets is not None:
        snapshots = f"snapshots:\n  targets: [{', '.join(map(str, targets))}]\n{keep}"
    return pam_hub(workdir, "snap", f"users:\n  roster:\n    ranges: "
                   f"['{PREFIX}{{01..{users:02d}}}']\n" + snapshots)


def fill_homes(users: int, files: int = 3, size: int = 2000) -> list[Path]:
    """A few files, a subfolder and a symlink in each home, owned by its account."""
    written = []
    for n in range(1, users + 1):
        account = f"{PREFIX}{n:02d}"
        home = Path("/home") / account
        (home / "notebooks").mkdir(exist_ok=True)
        for i in range(files):
            path = home / "notebooks" / f"week{i}.ipynb"
            path.write_bytes(os.urandom(size))
            written.append(path)
        (home / "notes é.txt").write_text(f"{account}'s notes\n")
        (home / "secret.txt").write_text("mine\n")
        os.chmod(home / "secret.txt", 0o600)
        if not (home / "latest").is_symlink():
            os.symlink("notebooks/week0.ipynb", home / "latest")
        subprocess.run(["chown", "-R", "-h", f"{account}:{account}", str(home)], check=True)
    return written


@pytest.fixture
def hub(workdir: Path, hubs, clean_accounts):
    """A hub with 20 real accounts (apply), started once so that its database exists."""
    targets = [workdir / "backup-a", workdir / "backup-b"]
    config = write_hub(workdir, 20, targets)
    applied = hk(config, "apply")
    assert applied.returncode == 0, applied.stderr
    running = hubs.start(config)
    fill_homes(20)
    return config, targets, running


def snapshot_dirs(target: Path) -> list[Path]:
    return [target / name for name in complete_snapshots(target)]


def inodes(snapshot: Path) -> dict[str, int]:
    return {str(path.relative_to(snapshot)): path.lstat().st_ino
            for path in snapshot.rglob("*") if path.is_file() and not path.is_symlink()}


def test_snapshot_of_a_running_hub_links_what_did_not_change(hub) -> None:
    config, targets, _ = hub
    first = hk(config, "snapshot", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    result = json.loads(first.stdout)
    assert result["users"] == 20 and result["hub_users"] >= 20
    assert [t["ok"] for t in result["targets"]] == [True, True]

    for target in targets:
        assert stat.S_IMODE(target.stat().st_mode) == 0o700
        (snap,) = snapshot_dirs(target)
        assert latest_name(target) == snap.name
        manifest = json.loads((snap / "MANIFEST.json").read_text())
        listed = {entry["path"]: entry for entry in manifest["entries"]}
        for n in range(1, 21):
            home = Path("/home") / f"{PREFIX}{n:02d}"
            for path in home.rglob("*"):
                key = f"homes/{PREFIX}{n:02d}/{path.relative_to(home)}"
                assert key in listed, key
                info = path.lstat()
                entry = listed[key]
                assert (entry["uid"], entry["gid"], entry["mode"]) == \
                    (info.st_uid, info.st_gid, info.st_mode), key
            copy = snap / "homes" / f"{PREFIX}{n:02d}"
            assert copy.stat().st_uid == home.stat().st_uid
            assert stat.S_IMODE(copy.stat().st_mode) == 0o700
            assert os.readlink(copy / "latest") == "notebooks/week0.ipynb"
        secret = snap / "hub" / "state" / "secrets" / "cookie-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        database = sqlite3.connect(f"file:{snap / 'hub' / 'jupyterhub.sqlite'}?mode=ro",
                                   uri=True)
        names = {row[0] for row in database.execute("SELECT name FROM users")}
        database.close()
        assert {f"{PREFIX}{n:02d}" for n in range(1, 21)} <= names
        accounts = json.loads((snap / "hub" / "accounts.json").read_text())["accounts"]
        assert accounts[f"{PREFIX}07"]["uid"] == Path(f"/home/{PREFIX}07").stat().st_uid
        assert accounts[f"{PREFIX}07"]["password_hash"]
        assert verify_snapshot(snap) == []

    changed = Path("/home") / f"{PREFIX}05" / "notebooks" / "week1.ipynb"
    changed.write_bytes(b"new work")
    time.sleep(1.1)  # the next snapshot's name is the next second
    second = hk(config, "snapshot", "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    for target in targets:
        old, new = snapshot_dirs(target)
        assert latest_name(target) == new.name
        before, after = inodes(old), inodes(new)
        key = f"homes/{PREFIX}05/notebooks/week1.ipynb"
        assert after[key] != before[key]
        assert (new / key).read_bytes() == b"new work"
        assert (old / key).read_bytes() != b"new work"
        homes = [k for k in after if k.startswith("homes/")]
        assert len(homes) >= 20 * 5  # ours and the skeleton files
        assert all(after[k] == before[k] for k in homes if k != key), "not hard-linked"
    counts = json.loads(second.stdout)["targets"][0]
    assert counts["files"] - counts["linked"] <= 10  # the changed file and the hub's own

    verified = hk(config, "snapshot", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listing = hk(config, "snapshot", "list", "--json")
    body = json.loads(listing.stdout)
    assert [len(t["snapshots"]) for t in body["targets"]] == [2, 2]

    # a flipped byte inside a snapshot is found and named
    victim = new / "homes" / f"{PREFIX}09" / "notebooks" / "week2.ipynb"
    info = victim.stat()
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(info.st_atime_ns, info.st_mtime_ns))  # only the content differs
    bad = hk(config, "snapshot", "verify", str(new))
    assert bad.returncode == 1
    assert f"homes/{PREFIX}09/notebooks/week2.ipynb: sha256" in bad.stdout


def test_kill_9_at_twenty_moments_never_breaks_latest(workdir: Path, hubs,
                                                      clean_accounts) -> None:
    target = workdir / "backup"
    config = write_hub(workdir, 6, [target], keep="  keep: {last: 3, daily: 0, weekly: 0}\n")
    assert hk(config, "apply").returncode == 0
    hubs.start(config).stop()
    fill_homes(6, files=150, size=4000)
    assert hk(config, "snapshot").returncode == 0
    started = time.monotonic()
    assert hk(config, "snapshot").returncode == 0
    duration = time.monotonic() - started
    rng = random.Random(5)
    killed = attempts = 0
    # Twenty runs killed part-way. The machine's speed varies, so a run that finished before
    # its kill does not count, and the kills that follow come sooner.
    while killed < 20:
        attempts += 1
        assert attempts <= 60, f"only {killed} of {attempts} runs were killed part-way"
        changed = Path("/home") / f"{PREFIX}0{attempts % 6 + 1}" / "notebooks" / "week3.ipynb"
        changed.write_bytes(os.urandom(4000))
        proc = subprocess.Popen([HUBKEEPER, "--config", str(config), "snapshot", "-q"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(0.05, duration * 1.05))
        os.killpg(proc.pid, signal.SIGKILL)
        if proc.wait() == -signal.SIGKILL:
            killed += 1
        else:
            assert proc.returncode == 0, f"run {attempts} exited {proc.returncode}"
            duration *= 0.8
        latest = latest_name(target)
        assert latest is not None, f"run {attempts}: no latest"
        assert verify_snapshot(target / latest) == [], f"run {attempts}"
    final = hk(config, "snapshot", "--json")
    assert final.returncode == 0, final.stdout + final.stderr
    leftovers = [p.name for p in target.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert len(complete_snapshots(target)) == 3
    assert verify_snapshot(target / latest_name(target)) == []


@pytest.fixture
def small_fs(workdir: Path):
    require_root()
    mount = workdir / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    assert done.returncode == 0, f"cannot mount a tmpfs: {done.stderr}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_target_fails_clearly_and_keeps_what_it_had(workdir: Path, hubs, small_fs,
                                                           clean_accounts) -> None:
    roomy = workdir / "roomy"
    config = write_hub(workdir, 3, [small_fs, roomy])
    assert hk(config, "apply").returncode == 0
    hubs.start(config).stop()
    fill_homes(3)
    first = hk(config, "snapshot")
    assert first.returncode == 0, first.stdout + first.stderr
    before = latest_name(small_fs)
    big = Path("/home") / f"{PREFIX}02" / "big.bin"
    big.write_bytes(os.urandom(4 * 1024 * 1024))
    time.sleep(1.1)
    second = hk(config, "snapshot", "--json")
    assert second.returncode == 1
    small, other = json.loads(second.stdout)["targets"]
    assert not small["ok"] and "full" in small["error"], small
    assert f"`latest` ({before}) are untouched" in small["error"]
    assert other["ok"], "the other target is written on its own"
    assert latest_name(small_fs) == before
    assert [p.name for p in small_fs.iterdir()] == [before, "latest"] or \
        sorted(p.name for p in small_fs.iterdir()) == sorted([before, "latest"])
    assert verify_snapshot(small_fs / before) == []
    text = hk(config, "snapshot")
    assert text.returncode == 1
    assert f"{small_fs}: FAILED: the target filesystem is full" in text.stdout


def test_bad_targets_are_refused_before_anything_is_written(workdir: Path, hubs,
                                                            clean_accounts) -> None:
    config = write_hub(workdir, 2)
    assert hk(config, "apply").returncode == 0
    hubs.start(config).stop()
    none = hk(config, "snapshot")
    assert none.returncode == 1
    assert "no snapshot target" in none.stderr and "snapshots: {targets:" in none.stderr

    inside = f"/home/{PREFIX}01/backups"
    text = config.read_text() + f"snapshots:\n  targets: [{workdir / 'ok'}, {inside}]\n"
    config.write_text(text)
    refused = hk(config, "snapshot")
    assert refused.returncode == 2, refused.stderr
    line = text.splitlines().index(f"  targets: [{workdir / 'ok'}, {inside}]") + 1
    assert f"hub.yaml:{line}:" in refused.stderr and "snapshots.targets[1]:" in refused.stderr
    assert f"the home of {PREFIX}01" in refused.stderr
    assert not (workdir / "ok").exists() and not Path(inside).exists()

    unknown = hk(config, "snapshot", "verify", "20990101T000000", "--target",
                 str(workdir / "ok"))
    assert unknown.returncode == 1 and "no snapshot '20990101T000000'" in unknown.stderr


def test_one_snapshot_at_a_time(workdir: Path, hubs, clean_accounts) -> None:
    from hubkeeper.base.locks import snapshot_lock
    from hubkeeper.state.statedir import StatePaths

    config = write_hub(workdir, 1, [workdir / "backup"])
    assert hk(config, "apply").returncode == 0
    hubs.start(config).stop()
    with snapshot_lock(StatePaths(workdir / "state")):
        refused = hk(config, "snapshot")
    assert refused.returncode == 1
    assert f"another snapshot of this hub is running (pid {os.getpid()})" in refused.stderr
    assert not (workdir / "backup").exists()
    assert hk(config, "snapshot").returncode == 0


def test_homes_are_read_by_their_owners_and_group_folders_by_their_group(
        workdir: Path, hubs, clean_accounts) -> None:
    """What its owner cannot read (a file they made 0000) is left out of their home's copy
    with a warning on its line; a group folder's file its group cannot read likewise; the
    snapshot itself completes, verifies and becomes `latest`."""
    target, folder, group = workdir / "backup", workdir / "lab", f"{PREFIX}lab"
    config = pam_hub(workdir, "snapown",
                     f"users:\n  allowed: [{PREFIX}01, {PREFIX}02]\n"
                     f"  groups: {{{group}: [{PREFIX}01]}}\n"
                     f"data:\n  group_folders:\n    - {{path: {folder}, group: {group}}}\n"
                     f"snapshots:\n  targets: [{target}]\n")
    applied = hk(config, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    hubs.start(config).stop()
    fill_homes(2)
    home = Path("/home") / f"{PREFIX}01"
    os.chmod(home / "secret.txt", 0)  # its owner's choice: not even they can read it
    uid, gid = home.stat().st_uid, os.stat(folder).st_gid
    for name, mode in (("shared.txt", 0o660), ("private.txt", 0o600)):
        (folder / name).write_text(f"{name} of the lab\n")
        os.chown(folder / name, uid, gid)
        os.chmod(folder / name, mode)

    taken = hk(config, "snapshot")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    data_key = "data/" + str(folder).lstrip("/")
    why = "WARNING, incomplete: some files could not be read or copied"
    assert f"    homes/{PREFIX}01: {why}" in taken.stdout
    assert f"    {data_key}: {why}" in taken.stdout
    assert f'"/home/{PREFIX}01/secret.txt": Permission denied' in taken.stdout
    assert f"homes/{PREFIX}02: WARNING" not in taken.stdout
    snap = target / latest_name(target)
    assert (snap / "homes" / f"{PREFIX}01" / "notes é.txt").read_text() == \
        f"{PREFIX}01's notes\n"
    assert not (snap / "homes" / f"{PREFIX}01" / "secret.txt").exists()
    assert (snap / "homes" / f"{PREFIX}02" / "secret.txt").read_text() == "mine\n"
    copied = snap / data_key / "shared.txt"
    assert copied.read_text() == "shared.txt of the lab\n"
    assert (copied.stat().st_uid, copied.stat().st_gid) == (uid, gid)
    assert not (snap / data_key / "private.txt").exists()
    assert verify_snapshot(snap) == []

    listing = hk(config, "snapshot", "list")
    assert f"(2 incomplete: {data_key}, homes/{PREFIX}01)  <- latest" in listing.stdout
    verified = hk(config, "snapshot", "verify")
    assert verified.returncode == 0, verified.stdout
    assert f"  homes/{PREFIX}01: {why}" in verified.stdout
