"""Finding 5: locks and the database open to every account.

A student opens every lock file hubkeeper makes and holds a shared flock on it, so that
root's apply, environment build, hub start and snapshot are refused; and reads the hub
database (server ports, admins, native login's password hashes). Replayed against the state
directory as an older hubkeeper left it (0755 run/, 0644 lock files), held open across the
upgrade, and then against what hubkeeper makes now.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import hk, pam_hub

pytestmark = [pytest.mark.attack, pytest.mark.root]

ENV = "tiny"

HOLD = """
import fcntl, os, sys, time
held = []
for path in sys.argv[1:]:
    try:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        held.append(fd)
        print("held", path, flush=True)
    except OSError as exc:
        print("refused", path, exc.strerror, flush=True)
print("ready", len(held), flush=True)
time.sleep(900)
"""

PROBE = """
import fcntl, os, sys
for path in sys.argv[1:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            fd = os.open(path, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        print("OPEN", path)
    except OSError as exc:
        print("denied", path, exc.strerror)
"""


def old_state(state: Path) -> list[Path]:
    """The state dir as hubkeeper made it before: 0755 everywhere, lock files 0644."""
    run = state / "run"
    env = state / "envs" / ENV
    for folder in (state, run, env):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o755)
    os.chmod(state / "envs", 0o755)
    locks = [run / name for name in ("hub.lock", "apply.lock", "snapshot.lock",
                                     "archive.lock")] + [env / ".lock"]
    for lock in locks:
        lock.touch()
        os.chmod(lock, 0o644)
    return locks


def wait_for(log: Path, text: str, deadline: float = 30.0) -> str:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        body = log.read_text() if log.exists() else ""
        if text in body:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not seen in {log} within {deadline} s:\n{body}")


def test_a_student_holding_every_lock_refuses_nothing(workdir: Path, students, hubs) -> None:
    student = students.make("lk")
    target = workdir / "backup"
    config = pam_hub(workdir, f"{TEST_ACCOUNT_PREFIX}lk", (
        f"users:\n  roster:\n    ranges: ['{TEST_ACCOUNT_PREFIX}lu{{1..1}}']\n"
        f"snapshots:\n  targets: [{target}]\n"
        f"environments:\n  {ENV}: {{packages: [toolz]}}\n"))
    state = workdir / "state"
    locks = old_state(state)

    # The attack: a shared flock on each lock file, opened while they were 0644 and held
    # open through everything root does next.
    log = workdir / "hold.log"
    student.start(HOLD, *map(str, locks), log=log)
    assert f"ready {len(locks)}" in wait_for(log, "ready"), log.read_text()

    applied = hk(config, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    built = hk(config, "env", "build", "-q")
    assert built.returncode == 0, built.stdout + built.stderr
    hub = hubs.start(config)
    snapshot = hk(config, "snapshot")
    assert snapshot.returncode == 0, snapshot.stdout + snapshot.stderr
    again = hk(config, "apply")  # while the hub runs: apply's lock taken a second time
    assert again.returncode == 0, again.stdout + again.stderr
    hub.stop()
    assert student.background[0].poll() is None, "the student's holder died: no attack"

    # Now: the student cannot open a lock file again, nor list run/, nor read the database.
    database = state / "jupyterhub.sqlite"
    assert database.stat().st_size > 0
    current = sorted((state / "run").glob("*.lock")) + sorted(state.glob("envs/*/.lock"))
    assert {p.name for p in current} >= {"hub.lock", "apply.lock", "snapshot.lock", ".lock"}
    probed = student.python(PROBE, *map(str, [*current, state / "run", state, database]))
    assert "OPEN" not in probed.stdout, probed.stdout
    for lock in current:
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600, lock
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "run").stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o711

    # What users need still works: the student can run the environment's python.
    python = state / "envs" / ENV / "current" / "bin" / "python"
    ran = student.run(str(python), "-c", "import toolz; print('ok')")
    assert ran.stdout.strip() == "ok"

    # doctor agrees that nothing is open any more.
    doctor = json.loads(hk(config, "doctor", "--json").stdout)
    state_problems = [f for f in doctor["findings"]
                      if f["check"] == "state" and f["status"] != "ok"]
    assert state_problems == []


def test_doctor_fix_replaces_a_lock_file_a_student_holds(workdir: Path, students) -> None:
    """An old 0644 lock file a student holds open: doctor reports it and --fix gives it a
    new inode, so the next snapshot is not refused."""
    student = students.make("lf")
    target = workdir / "backup"
    config = pam_hub(workdir, f"{TEST_ACCOUNT_PREFIX}lf", (
        f"users:\n  roster:\n    ranges: ['{TEST_ACCOUNT_PREFIX}lv{{1..1}}']\n"
        f"snapshots:\n  targets: [{target}]\n"))
    assert hk(config, "apply").returncode == 0
    lock = workdir / "state" / "run" / "snapshot.lock"
    lock.touch()
    os.chmod(lock, 0o644)
    os.chmod(lock.parent, 0o755)  # as an older hubkeeper left it
    before = lock.stat().st_ino
    log = workdir / "hold.log"
    student.start(HOLD, str(lock), log=log)
    assert "ready 1" in wait_for(log, "ready")

    found = hk(config, "doctor", "--json")
    assert found.returncode == 1
    [finding] = [f for f in json.loads(found.stdout)["findings"] if f["subject"] == str(lock)]
    assert "every account on this machine can open it" in finding["explanation"]
    assert finding["fix"]["safe"]
    fixed = json.loads(hk(config, "doctor", "--fix", "--json").stdout)
    [change] = [c for c in fixed["changes"] if c["subject"] == str(lock)]
    assert change["command"] == f"replace {lock} by a new 0600 file"
    assert change["error"] is None
    assert lock.stat().st_ino != before
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert stat.S_IMODE(lock.parent.stat().st_mode) == 0o700
    assert student.background[0].poll() is None  # still holding the old inode, to no effect
