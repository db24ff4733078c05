"""Memory, CPU and process limits for the local backend's servers, with the kernel's cgroups.

Where systemd runs (PID 1), the cgroup tree is systemd's: a server is moved into a transient
scope `hubkeeper-<hub>-<user>.scope` with MemoryMax=, CPUQuota= and TasksMax= (what
SystemdSpawner gets from systemd-run). Where it does not, hubkeeper writes the cgroup files
itself: cgroup v2 (memory.max, cpu.max, pids.max) or v1 (memory.limit_in_bytes,
cpu.cfs_quota_us, pids.max in the pids hierarchy), in hubkeeper/<hub>/<user>; the
server's process joins its group before it execs, as root, so it and every kernel it
starts stay inside. Where neither works (not root, no writable controllers) limits are
not enforced, and `detect()` says why, in words the hub logs and `hubkeeper capacity`
prints.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hubkeeper.base.whoami import effective_uid
from hubkeeper.context.limits import Limits

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000  # the CFS period the CPU quota is a share of
Kind = Literal["systemd", "cgroup2", "cgroup1", "none"]


@dataclass(frozen=True)
class Enforcer:
    """How limits are enforced on this machine; `reason` says why not, when kind is none."""

    kind: Kind
    root: Path = ROOT
    reason: str = ""
    pids: bool = True  # the pids controller is there (cgroup v1 may lack it)

    @property
    def enforces(self) -> bool:
        return self.kind != "none"

    def describe(self) -> str:
        return {
            "systemd": "enforced by systemd (a transient scope per server)",
            "cgroup2": f"enforced with cgroup v2 under {self.root}/hubkeeper",
            "cgroup1": f"enforced with cgroup v1 under {self.root}/{{memory,cpu}}/hubkeeper",
            "none": f"NOT enforced: {self.reason}",
        }[self.kind] + ("" if self.pids or self.kind == "none" else
                        "; the process limit is NOT enforced: no pids controller")


def _controllers(directory: Path) -> set[str]:
    try:
        return set((directory / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def detect(root: Path = ROOT, systemd_dir: Path = Path("/run/systemd/system")) -> Enforcer:
    if effective_uid() != 0:
        return Enforcer("none", root, "the hub does not run as root, so it cannot place "
                        "servers in cgroups (personal mode); run the container backend or "
                        "system mode as root")
    if systemd_dir.is_dir():
        return Enforcer("systemd", root)
    for unified in (root, root / "unified"):
        controllers = _controllers(unified)
        if {"memory", "cpu"} <= controllers and os.access(unified, os.W_OK):
            return Enforcer("cgroup2", unified, pids="pids" in controllers)
    v1 = [root / "memory" / "memory.limit_in_bytes", root / "cpu" / "cpu.cfs_quota_us"]
    if all(path.exists() for path in v1) and all(os.access(p.parent, os.W_OK) for p in v1):
        pids = root / "pids"
        return Enforcer("cgroup1", root, pids=(pids / "cgroup.procs").exists()
                        and os.access(pids, os.W_OK))
    return Enforcer("none", root, f"neither systemd nor writable cgroup memory and cpu "
                    f"controllers were found under {root}")


class UserGroup:
    """The cgroup(s) of one user's server: hubkeeper/<hub>/<user>."""

    def __init__(self, enforcer: Enforcer, hub: str, user: str) -> None:
        self.enforcer = enforcer
        self.relative = Path("hubkeeper") / hub / user
        self.unit = f"hubkeeper-{hub}-{user}.scope"

    @property
    def directories(self) -> list[Path]:
        root = self.enforcer.root
        if self.enforcer.kind == "cgroup2":
            return [root / self.relative]
        if self.enforcer.kind == "cgroup1":
            return [root / "memory" / self.relative, root / "cpu" / self.relative] + (
                [root / "pids" / self.relative] if self.enforcer.pids else [])
        return []

    def prepare(self, limits: Limits) -> None:
        """Create the group(s) and write the limits (before the server starts)."""
        kind = self.enforcer.kind
        if kind == "cgroup2":
            self._enable_controllers()
            directory = self.directories[0]
            directory.mkdir(parents=True, exist_ok=True)
            _write(directory / "memory.max", str(limits.memory) if limits.memory else "max")
            _write(directory / "cpu.max", f"{_quota(limits.cpu)} {PERIOD_US}"
                   if limits.cpu else f"max {PERIOD_US}")
            if self.enforcer.pids:
                _write(directory / "pids.max", _pids(limits.pids))
        elif kind == "cgroup1":
            memory, cpu, *pids = self.directories
            for directory in self.directories:
                directory.mkdir(parents=True, exist_ok=True)
            _write(memory / "memory.limit_in_bytes", str(limits.memory) if limits.memory else "-1")
            _write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(_quota(limits.cpu)) if limits.cpu else "-1")
            for directory in pids:
                _write(directory / "pids.max", _pids(limits.pids))

    def _enable_controllers(self) -> None:
        """cgroup v2 gives a child a controller only if every parent delegates it."""
        wanted = "+memory +cpu" + (" +pids" if self.enforcer.pids else "")
        directory = self.enforcer.root
        for part in self.relative.parts[:-1]:
            _write(directory / "cgroup.subtree_control", wanted)
            directory = directory / part
            directory.mkdir(exist_ok=True)
        _write(directory / "cgroup.subtree_control", wanted)

    def procs_files(self) -> list[str]:
        return [str(directory / "cgroup.procs") for directory in self.directories]

    def remove(self) -> None:
        """Remove the group(s) once the server is gone (a group with processes stays)."""
        for directory in self.directories:
            with contextlib.suppress(OSError):
                directory.rmdir()

    def members(self) -> list[int]:
        """The processes in the (first) group."""
        for directory in self.directories:
            try:
                return [int(pid) for pid in (directory / "cgroup.procs").read_text().split()]
            except OSError:
                return []
        return []


def join(procs_files: list[str]) -> None:
    """Move the calling process into the groups (called in the child, before exec, as
    root): no allocation beyond a few bytes, no locks."""
    pid = str(os.getpid()).encode()
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)


def scope_command(unit: str, pid: int, limits: Limits) -> list[str]:
    """systemd: the busctl call that puts `pid` into a transient scope with the limits (what
    `systemd-run --scope` does for itself, for a process that already runs)."""
    properties: list[str] = ["PIDs", "au", "1", str(pid)]
    count = 1
    if limits.memory:
        properties += ["MemoryMax", "t", str(limits.memory)]
        count += 1
    if limits.cpu:
        properties += ["CPUQuotaPerSecUSec", "t", str(int(limits.cpu * 1_000_000))]
        count += 1
    if limits.pids:
        properties += ["TasksMax", "t", str(limits.pids)]
        count += 1
    return ["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))",
            unit, "fail", str(count), *properties, "0"]


def _pids(pids: int | None) -> str:
    return str(pids) if pids else "max"


def _quota(cpu: float | None) -> int:
    return max(1000, int((cpu or 0) * PERIOD_US))


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)
