"""Helpers both benchmarks use: the machine's description, its load, and writing the report.

Standard library only: roster.py imports this and must not pull in jupyterhub or the test
support code that hubbench.py needs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def output_of(command: list[str], cwd: Path | None = None) -> str | None:
    """The command's stdout, stripped; None if it could not run or failed."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# ----------------------------------------------------------------------------- load


def proc_table() -> dict[int, tuple[int, int, int, str]]:
    """pid -> (ppid, user+system CPU ticks, start time, comm) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        # comm may hold spaces and parentheses: it ends at the last ")"
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        # fields[0] is field 3 of proc(5): state, ppid, ..., utime 14, stime 15, starttime 22
        table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                                  int(fields[19]), comm)
    return table


def busy_fraction(seconds: float) -> float:
    """Share of all CPUs busy over the next `seconds` (from /proc/stat)."""

    def read() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(values[:8]), values[3] + values[4]  # all, idle + iowait

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(deadline: float, progress: Callable[[str], None], threshold: float = 0.15,
               flush: bool = False) -> dict[str, Any]:
    """Wait until the machine is idle (below `threshold` of all CPUs busy in two 3 s windows
    in a row), at most `deadline` s: between phases nothing of ours runs, so what is busy is
    someone else. `flush` first writes out dirty pages, so that the previous phase's
    writeback does not run during the next one."""
    began = time.monotonic()
    if flush:
        os.sync()
    quiet_windows, last_note = 0, 0.0
    while True:
        busy = busy_fraction(3.0)
        quiet_windows = quiet_windows + 1 if busy < threshold else 0
        waited = time.monotonic() - began
        if quiet_windows >= 2:
            return {"waited": round(waited, 1), "quiet": True, "busy": round(busy, 3)}
        if waited > deadline:
            progress(f"  machine still {busy:.0%} busy after {waited:.0f} s; going on")
            return {"waited": round(waited, 1), "quiet": False, "busy": round(busy, 3)}
        if busy >= threshold and waited - last_note > 60:
            progress(f"  waiting for the machine to be quiet ({busy:.0%} busy, other work?)")
            last_note = waited


# ----------------------------------------------------------------------------- machine


def machine_facts(repo: Path) -> dict[str, Any]:
    """What both benchmarks record about the machine and the checkout; each adds its own."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    memory = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
    modified = output_of(["git", "status", "--porcelain", "--", "src"], cwd=repo)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gib": round(int(memory.group(1)) / 1024 / 1024, 1) if memory else None,
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "kernel": platform.release(),
        "os": _os_release(),
        "python": sys.version.split()[0],
        "hubkeeper_commit": output_of(["git", "rev-parse", "HEAD"], cwd=repo),
        # the changed files under src/ (git status lines); None when git could not tell
        "hubkeeper_src_modified": modified.splitlines() if modified is not None else None,
    }


def _os_release() -> str | None:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?$', text, re.M)
    return match.group(1) if match else None


# ----------------------------------------------------------------------------- report


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # a reader never sees half a report
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)


def finish(report: dict[str, Any], path: Path, repo: Path) -> None:
    """The report's last write, from main()'s finally: when the run ended, and the commit
    then (someone may have checked out another one during a long run)."""
    report["finished"] = now()
    report["hubkeeper_commit_at_end"] = output_of(["git", "rev-parse", "HEAD"], cwd=repo)
    write_json(path, report)


def unwind_on_sigterm() -> None:
    """SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so every finally runs and cleans up."""

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
