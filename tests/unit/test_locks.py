"""base/locks.py: lock files nobody else can open, and an older hubkeeper's replaced."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import PidLock, flock_holders, held_by_strangers, renew


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_lock_is_0600_in_a_0700_folder_and_names_its_holder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    lock = PidLock(run / "apply.lock", "busy", hint="wait")
    with lock:
        assert mode(run / "apply.lock") == 0o600 and mode(run) == 0o700
        assert lock.holder() == os.getpid()
        assert os.getpid() in flock_holders(os.stat(run / "apply.lock"))
        with pytest.raises(HubkeeperError, match=f"busy \\(pid {os.getpid()}\\)"):
            PidLock(run / "apply.lock", "busy", hint="wait").acquire()
    # an environment's lock lives in a folder users traverse: the folder is left alone
    env = tmp_path / "envs" / "lab"
    env.mkdir(parents=True, mode=0o755)
    os.chmod(env, 0o755)
    with PidLock(env / ".lock", "busy", hint="", private_dir=False):
        assert mode(env) == 0o755 and mode(env / ".lock") == 0o600


def test_an_old_world_readable_lock_file_is_replaced_not_chmodded(tmp_path: Path) -> None:
    """An fd opened on the old 0644 file (a student's, before the upgrade) keeps its flock
    after a chmod; a new inode leaves it holding nothing anyone checks."""
    path = tmp_path / "run" / "snapshot.lock"
    path.parent.mkdir()
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    old = path.stat().st_ino
    assert renew(path) and path.stat().st_ino != old and mode(path) == 0o600
    assert not renew(path)  # already private: nothing to do
    assert not renew(tmp_path / "missing.lock")


def test_a_private_lock_held_by_us_is_never_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "run" / "hub.lock"
    with PidLock(path, "busy", hint=""):
        assert not held_by_strangers(os.stat(path))
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        with pytest.raises(HubkeeperError):
            PidLock(path, "busy", hint="").check_free()


def test_an_old_lock_file_held_by_one_of_ours_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "run" / "apply.lock"
    path.parent.mkdir()
    path.touch()
    os.chmod(path, 0o644)
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # this process: root or the hub's account, so ours
    try:
        assert not held_by_strangers(os.stat(path))
        assert not renew(path)
        with pytest.raises(HubkeeperError):
            PidLock(path, "busy", hint="").acquire()
    finally:
        os.close(fd)
