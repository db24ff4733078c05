"""A student's own start-up hook (hooks.as_user) attacks root's hook log (issue 17, finding
8): it used to inherit a write descriptor to the root-only log, which it could truncate, and
keep in a process left behind to write to for ever. Now it gets a pipe that the spawner
copies into the log (bounded), and closes when the hook is done."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hubkeeper.hub.spawner import LocalSpawner
from tests.attacks.homes_support import journal_of

pytestmark = [pytest.mark.component, pytest.mark.root]

# What the hook does with what it was given as stdout: say what it is, try to wipe it, write
# a lot, and leave a process behind (its own session, so the deadline's kill misses it) that
# writes to it later.
EVIL_HOOK = """#!/usr/bin/python3
import os, time
print("stdout is", os.readlink("/proc/self/fd/1"), flush=True)
try:
    os.ftruncate(1, 0)
    print("TRUNCATED root's log", flush=True)
except OSError as exc:
    print("cannot truncate:", exc.strerror, flush=True)
os.write(1, b"x" * (3 << 20))
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(3)
        for _ in range(100):
            try:
                os.write(1, b"LATE WRITE from a process left behind\\n")
            except OSError:
                pass
        os._exit(0)
    os._exit(0)
"""


def test_a_users_hook_never_holds_roots_log(workdir: Path, students) -> None:
    student = students.make("k1")
    script = workdir / "hooks" / "evil.py"
    script.parent.mkdir()
    script.write_text(EVIL_HOOK)
    os.chmod(script, 0o755)
    logs = workdir / "logs"
    log = logs / f"{student.name}.log"
    logs.mkdir(mode=0o700)
    log.write_text("--- an earlier start: root's record\n")
    os.chmod(log, 0o600)
    spawner = LocalSpawner(user=SimpleNamespace(name=student.name, groups=[]),
                           journal_path=journal_of(workdir, student),
                           hook_log_dir=str(logs),
                           hooks_as_user=[{"script": str(script), "name": "evil.py",
                                           "timeout": 20}])

    began = time.monotonic()
    asyncio.run(spawner.run_hooks())
    assert time.monotonic() - began < 15, "the start waited for the process left behind"
    time.sleep(4)  # the process left behind has written by now, if it could

    text = log.read_text(errors="replace")
    assert text.startswith("--- an earlier start: root's record\n"), "the log was wiped"
    assert "stdout is pipe:[" in text
    assert "TRUNCATED" not in text
    assert "LATE WRITE" not in text
    assert log.stat().st_size < 1 << 20, "the hook's output is bounded in root's log"
    assert "output cut here" in text
