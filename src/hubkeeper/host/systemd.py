"""systemd on this machine: is it PID 1, and the systemctl calls. (The unit file is rendered,
purely, by render/systemd.py.)

Every systemctl command line is run by `systemctl()` through a runner, so the exact commands
are tested with a fake runner where, as on hubkeeper's test machines, systemd is not PID 1
and systemctl cannot talk to it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


# --- systemd on this machine --------------------------------------------------------------


def run_command(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def systemctl(runner: Runner, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `systemctl ARGS` through runner; with check, a failure is a HubkeeperError.

    Every systemctl call of hubkeeper goes through here, so that tests can record the exact
    command lines with a fake runner: no systemd runs as PID 1 on the test machines."""
    command = ["systemctl", *args]
    try:
        done = runner(command)
    except FileNotFoundError:
        raise HubkeeperError("systemd runs on this machine but there is no systemctl",
                             hint="install the systemd package") from None
    except subprocess.TimeoutExpired:
        raise HubkeeperError(f"`{' '.join(command)}` did not answer within 120 s") from None
    if check and done.returncode != 0:
        said = (done.stderr or done.stdout or "").strip()
        raise HubkeeperError(f"`{' '.join(command)}` failed (exit {done.returncode})"
                             + (f": {said}" if said else ""),
                             hint="see `journalctl -xe` for systemd's reasons")
    return done


def pid1_name(proc: Path = Path("/proc")) -> str:
    try:
        return (proc / "1" / "comm").read_text().strip() or "?"
    except OSError:
        return "?"


def in_unit_cgroup(cgroup_text: str, unit: str) -> bool:
    """Whether /proc/<pid>/cgroup text places the process in `unit` (cgroup v1 or v2)."""
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        if unit in path.split("/"):
            return True
    return False


@dataclass(frozen=True)
class SystemdHost:
    """What hubkeeper needs to know of systemd here, and how it runs systemctl."""

    booted: bool  # systemd is PID 1 (as sd_booted(3) decides: /run/systemd/system exists)
    pid1: str  # the name of PID 1, to say what runs instead
    runner: Runner = field(default=run_command)
    proc: Path = Path("/proc")

    @classmethod
    def detect(cls, run_dir: Path = Path("/run/systemd/system")) -> SystemdHost:
        return cls(booted=run_dir.is_dir(), pid1=pid1_name())

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return systemctl(self.runner, *args, check=check)

    def query(self, verb: str, unit: str) -> str:
        """`systemctl is-active|is-enabled UNIT`: its one-word answer (a non-zero exit is an
        answer too: inactive, disabled)."""
        done = self.systemctl(verb, unit, check=False)
        answer = (done.stdout or "").strip()
        if answer:
            return answer.splitlines()[-1]
        said = (done.stderr or "").strip()
        return f"unknown: {said}" if said else f"unknown (exit {done.returncode})"

    def runs_in_unit(self, pid: int, unit: str) -> bool:
        try:
            text = (self.proc / str(pid) / "cgroup").read_text()
        except OSError:
            return False
        return in_unit_cgroup(text, unit)
