"""Process helpers: is a pid alive, what it runs, signal it (or its group), wait with a
deadline, the processes of a uid. Linux /proc only; nothing here raises for a process that
is already gone, since every caller races with processes that end on their own."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def wait_until(done: Callable[[], bool], deadline: float) -> bool:
    """Poll `done` with exponential backoff (10 ms to 0.5 s) until true or `deadline` s."""
    end = time.monotonic() + deadline
    delay = 0.01
    while not done():
        if time.monotonic() > end:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return True


def cmdline(pid: int) -> list[str]:
    """The process's argv ([] when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def exists(pid: int) -> bool:
    """Whether a process `pid` exists (a zombie too) and may be signalled by us."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def pid_in_file(path: Path) -> int | None:
    """The pid a pid file names, or None (no file, not a number)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def send(pid: int, signum: int) -> bool:
    """Signal `pid`; False when it was already gone."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def send_group(pgid: int, signum: int) -> bool:
    """Signal the process group `pgid`; False when it was gone (or is no longer ours)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop(pid: int, deadline: float = 5.0) -> None:
    """SIGTERM, `deadline` s to end, then SIGKILL (and as long again to be gone)."""
    send(pid, signal.SIGTERM)
    if not wait_until(lambda: not alive(pid), deadline):
        send(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), deadline)


def processes_of(uid: int) -> list[int]:
    """Live processes (not zombies) with `uid` as their real, effective or saved uid, but
    this one."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if uid in (int(part) for part in fields.get("Uid", "").split()[:3]):
            found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid()]


def kill_all_of(uid: int, deadline: float) -> tuple[int, list[int]]:
    """SIGKILL every process of `uid` until none is left (a process may fork meanwhile) or
    the deadline passes. Returns how many were signalled and those still left."""
    killed = 0

    def none_left() -> bool:
        nonlocal killed
        pids = processes_of(uid)
        for pid in pids:
            if send(pid, signal.SIGKILL):
                killed += 1
        return not pids

    if wait_until(none_left, deadline):
        return killed, []
    return killed, processes_of(uid)


