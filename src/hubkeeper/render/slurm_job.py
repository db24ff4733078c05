"""backend slurm, the pure part: what a server's job asks Slurm for, its batch script, and
what squeue says about it, in words for the user. No I/O here: golden-tested whole
(tests/unit/test_slurm_backend.py); hub/slurm.py does the submitting and the waiting.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hubkeeper.context.limits import Limits

MIB = 1024 * 1024
# What the spawner asks squeue for: state, the node of the batch step, partition, reason.
# The reason goes last: it may hold spaces ("ReqNodeNotAvail, UnavailableNodes:n1").
QUERY_FORMAT = "%T|%B|%P|%r"
RUNUSER = "/usr/sbin/runuser"  # runs sbatch, squeue, scancel as the account (no sudo)
JOB_LOG = ".hubkeeper-slurm.log"  # in the home: the job's own output, replaced at each start

# Slurm's pending reasons users meet most (squeue(1), "JOB REASON CODES"), in their words.
REASONS = {
    "Resources": "the cluster is busy: it waits for CPUs, memory or GPUs to be free",
    "Priority": "jobs with a higher priority are ahead of it",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is not accepting jobs now",
    "Nodes_required_for_job_are_DOWN,_DRAINED_or_reserved_for_jobs_in_higher_priority_"
    "partitions": "the nodes it needs are down, drained or reserved",
    "ReqNodeNotAvail": "the nodes it needs are not available",
    "PartitionTimeLimit": "its time limit is longer than the partition allows",
    "PartitionNodeLimit": "it asks for more nodes than the partition allows",
    "QOSMaxJobsPerUserLimit": "you already run as many jobs as your QOS allows",
    "AssocGrpCpuLimit": "your account's CPU limit is reached",
    "AssocGrpMemLimit": "your account's memory limit is reached",
    "JobHeldAdmin": "an administrator holds it",
    "JobHeldUser": "it is held",
    "BeginTime": "it may not start yet",
    "Reservation": "it waits for its reservation",
    "None": "the scheduler has not looked at it yet",
}


def slurm_time(seconds: float) -> str:
    """A time limit as sbatch --time takes it: D-HH:MM:SS (8h -> 0-08:00:00)."""
    total = math.ceil(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


@dataclass(frozen=True)
class JobRequest:
    """What one user's server asks of Slurm."""

    partition: str | None = None
    time: float | None = None  # seconds; None or 0: the partition's default
    memory: int | None = None  # bytes
    cpus: float | None = None
    gpus: int = 0
    extra: tuple[str, ...] = ()

    def sbatch_options(self) -> list[str]:
        """The request as sbatch options; memory in whole MiB and CPUs in whole CPUs,
        rounded up (Slurm allocates nothing smaller)."""
        options = []
        if self.partition:
            options.append(f"--partition={self.partition}")
        if self.time:
            options.append(f"--time={slurm_time(self.time)}")
        if self.memory:
            options.append(f"--mem={math.ceil(self.memory / MIB)}M")
        if self.cpus:
            options.append(f"--cpus-per-task={math.ceil(self.cpus)}")
        if self.gpus:
            options.append(f"--gres=gpu:{self.gpus}")
        return options + list(self.extra)


def job_request(user_groups: Iterable[str], hub: Mapping[str, Any],
                groups: Mapping[str, Mapping[str, Any]], limits: Limits) -> JobRequest:
    """The hub's slurm settings with the user's groups' values in their place: the
    partition of the first of the user's groups (in slurm.groups' order) that sets one, the
    largest time limit and GPU count; memory and CPUs are `limits` (already merged)."""
    mine = set(user_groups)
    theirs = [values for name, values in groups.items() if name in mine]
    partitions = [values["partition"] for values in theirs if values.get("partition")]
    times = [values["time"] for values in theirs if values.get("time")]
    return JobRequest(
        partition=partitions[0] if partitions else hub.get("partition") or None,
        time=max(times) if times else hub.get("time") or None,
        memory=limits.memory, cpus=limits.cpu,
        gpus=max([int(values.get("gpus") or 0) for values in theirs], default=0),
        extra=tuple(hub.get("extra_options") or ()))


def batch_script(*, job_name: str, output: str, folder: str, export: Iterable[str],
                 options: Iterable[str], command: list[str]) -> str:
    """The script sbatch gets on stdin: sbatch's options, then the server, exec'd (scancel's
    SIGTERM reaches it, and the job ends with it)."""
    lines = ["#!/bin/sh",
             f"#SBATCH --job-name={job_name}",
             f"#SBATCH --output={output}",
             "#SBATCH --open-mode=truncate",
             f"#SBATCH --chdir={folder}",
             f"#SBATCH --export={','.join(sorted(export))}",
             "#SBATCH --nodes=1",
             "#SBATCH --ntasks=1"]
    lines += [f"#SBATCH {option}" for option in options]
    lines += ["", f"exec {shlex.join(command)}", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class QueueStatus:
    """One line of `squeue -o QUERY_FORMAT`."""

    state: str
    host: str
    partition: str
    reason: str

    @property
    def pending(self) -> bool:
        return self.state in ("PENDING", "CONFIGURING")


def parse_status(text: str) -> QueueStatus | None:
    """squeue's line for the job, or None when it printed none (the job is gone) or
    something else (an error message)."""
    for line in text.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) == 4 and parts[0].isupper():
            return QueueStatus(*parts)
    return None


def describe_reason(reason: str) -> str:
    """'PartitionDown' -> 'PartitionDown: the partition is down'."""
    code = reason.strip("()")
    words = REASONS.get(code) or REASONS.get(code.split(",")[0])
    return f"{code}: {words}" if words else code


def pending_message(status: QueueStatus, position: int | None, total: int | None) -> str:
    """What a user sees while their server's job waits."""
    where = f"in the Slurm queue of partition {status.partition}"
    place = (f", number {position} of {total} waiting there" if position and total
             else "")
    return (f"Your server is waiting {where}{place}. Slurm's reason: "
            f"{describe_reason(status.reason)}.")
