"""A user's resource limits: the hub-wide values, each replaced by the largest its groups give.

Pure values, shared by the cgroup enforcer (host/cgroups.py), the Slurm job (render/slurm_job.py)
and `capacity`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    memory: int | None = None  # bytes
    cpu: float | None = None  # CPUs
    pids: int | None = None  # tasks (processes and threads); None or 0: no limit

    def __bool__(self) -> bool:
        return self.memory is not None or self.cpu is not None or bool(self.pids)


def merged(default: Limits, groups: list[Limits]) -> Limits:
    """The limits of a user: the hub-wide ones, each replaced by the largest value their
    groups give (a group that does not set a value leaves the hub-wide one)."""

    def largest(values: list, fallback):
        given = [value for value in values if value is not None]
        return max(given) if given else fallback

    return Limits(largest([g.memory for g in groups], default.memory),
                  largest([g.cpu for g in groups], default.cpu),
                  largest([g.pids for g in groups], default.pids))
