"""State directory: secrets generated once with mode 0600, a version file, an exclusive lock."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import HubLock
from hubkeeper.state.statedir import (
    SECRET_NAMES,
    StatePaths,
    ensure_layout,
    ensure_secrets,
    read_secret,
)


def test_secrets_are_private_and_made_once(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    ensure_layout(paths)
    created = ensure_secrets(paths)
    assert len(created) == len(SECRET_NAMES)
    assert stat.S_IMODE(paths.secrets.stat().st_mode) == 0o700
    first = {name: read_secret(paths, name) for name in SECRET_NAMES}
    for name in SECRET_NAMES:
        assert stat.S_IMODE(paths.secret(name).stat().st_mode) == 0o600
    assert len(first["admin-password"]) >= 32  # JupyterHub's minimum for admin_password
    assert len(first["shared-password"]) >= 8
    assert ensure_secrets(paths) == []
    assert {name: read_secret(paths, name) for name in SECRET_NAMES} == first


def test_version_file(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    ensure_layout(paths)
    assert json.loads(paths.version_file.read_text())["schema"] == 1
    paths.version_file.write_text('{"schema": 99}')
    with pytest.raises(HubkeeperError, match="schema 99"):
        ensure_layout(paths)


def test_lock_names_the_holder_pid(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    ensure_layout(paths)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path\n"
         "from hubkeeper.base.locks import HubLock\n"
         "from hubkeeper.state.statedir import StatePaths\n"
         f"HubLock(StatePaths(Path({str(tmp_path)!r}))).acquire()\n"
         "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(HubkeeperError, match=f"another hub already runs .*pid {holder.pid}"):
            HubLock(paths).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = HubLock(paths)  # the kernel dropped the dead holder's lock: no stale lock
    lock.acquire()
    assert lock.holder() == os.getpid()
    lock.release()
