"""`hubkeeper capacity`: does this machine have the memory and CPUs for the roster?

The sizing rule of The Littlest JupyterHub: memory = concurrent users x memory per user +
128 MiB for the hub and proxy; CPUs = concurrent users x CPUs per user + 20%. Per user means
their limits (limits:, per group the largest); with fewer concurrent users than the roster,
the users with the largest limits are counted (the worst case). A user without a memory limit
may use all of it, so the memory need is then unknown, and the answer says that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.context.hub import Hub
from hubkeeper.context.limits import Limits, merged
from hubkeeper.host import cgroups

HUB_OVERHEAD = 128 * 1024**2  # the hub, its proxy and the culler (TLJH's figure)
# An idle JupyterLab 4 server after its user opened /lab: 117 MiB PSS, measured here
# (JupyterHub 6.1, Python 3.11); what a prewarmed server holds before anyone runs code.
IDLE_SERVER = 128 * 1024**2
CPU_HEADROOM = 1.2  # TLJH: 20% on top of the users' CPUs


@dataclass(frozen=True)
class CapacityResult:
    config: str
    roster: int  # active roster users
    concurrent: int  # how many servers at once were assumed
    memory_per_user: tuple[int | None, ...]  # bytes, largest first; None: no limit
    cpu_per_user: tuple[float | None, ...]
    memory_needed: int | None  # None: some user has no memory limit
    cpu_needed: float | None
    memory_total: int  # this machine
    cpus: int
    enforcement: str  # how (or that not) the limits are enforced here
    memory_ok: bool | None  # None: cannot tell
    cpu_ok: bool | None
    group: str | None = None  # only this group's members were counted
    idle_memory: int = 0  # the counted servers started and idle (prewarmed), with the hub

    @property
    def ok(self) -> bool:
        return self.memory_ok is not False and self.cpu_ok is not False


def machine_memory(meminfo: Path = Path("/proc/meminfo")) -> int:
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise HubkeeperError(f"{meminfo} has no MemTotal line")


def _largest_first(values: list, count: int) -> list:
    """The `count` largest values, None (no limit) counting as the largest."""
    return sorted(values, key=lambda v: (v is not None, -(v or 0)))[:count]


def capacity(hub: Hub, concurrent: int | None = None,
             group: str | None = None) -> CapacityResult:
    config, spec = hub.path, hub.spec
    roster = hub.roster
    members = roster.active
    if concurrent is not None and concurrent < 1:
        raise HubkeeperError(f"--concurrent {concurrent}: give at least 1 user")
    if group is not None:
        if group not in roster.groups:
            known = ", ".join(roster.groups) or "none"
            raise InvalidInput([Problem("command line", None, None, "--group",
                                        f"{group!r} is not a roster group (roster groups: "
                                        f"{known})")])
        members = tuple(member for member in members if group in member.groups)
    count = len(members) if concurrent is None else min(concurrent, len(members))
    hub = Limits(spec.limits.memory, spec.limits.cpu)
    per_user = [merged(hub, [Limits(spec.limits.groups[g].memory,
                                                    spec.limits.groups[g].cpu)
                                     for g in member.groups if g in spec.limits.groups])
                for member in members]
    memory = _largest_first([limits.memory for limits in per_user], count)
    cpu = _largest_first([limits.cpu for limits in per_user], count)
    memory_needed = (None if None in memory else sum(memory) + HUB_OVERHEAD)
    cpu_needed = None if None in cpu else round(sum(cpu) * CPU_HEADROOM, 2)
    total = machine_memory()
    cpus = len(os.sched_getaffinity(0))
    return CapacityResult(
        config=str(config), roster=len(members), concurrent=count,
        memory_per_user=tuple(memory), cpu_per_user=tuple(cpu),
        memory_needed=memory_needed, cpu_needed=cpu_needed,
        memory_total=total, cpus=cpus, enforcement=cgroups.detect().describe(),
        memory_ok=None if memory_needed is None else memory_needed <= total,
        cpu_ok=None if cpu_needed is None else cpu_needed <= cpus,
        group=group, idle_memory=count * IDLE_SERVER + HUB_OVERHEAD,
    )
