"""What servers may take and where they run: culling, starts, classes, limits, Slurm, Kubernetes."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from hubkeeper.config.access import GroupName
from hubkeeper.config.environments import AbsolutePath, image_reference
from hubkeeper.config.types import (
    SLURM_PARTITION_PATTERN,
    Duration,
    Period,
    Section,
    Size,
    check_ip_address,
)


class CullingSection(Section):
    """Stop idle servers with jupyterhub-idle-culler, run by the hub as a service."""

    enabled: bool = Field(True, description="Cull idle servers. On by default.")
    idle: Period = Field(
        "1h", validate_default=True,
        description="Stop a server after this long without activity (a kernel running or a "
        "browser tab connected counts as activity).",
    )
    every: Period = Field(
        "10m", validate_default=True, description="How often the culler looks.")
    max_age: Period = Field(
        0,
        description="Stop every server older than this, active or not (8h, 1d); 0: no "
        "limit.",
    )
    users: Literal[False] = Field(
        False,
        description="Always false: hubkeeper's culler stops servers and never deletes hub "
        "users (deleting a user loses its server's state; the roster decides who exists).",
    )


class StartsSection(Section):
    """Admission control: how many servers start at once, the others waiting in line (see
    docs/operations.md, "Class starts")."""

    at_once: Literal["auto"] | Annotated[int, Field(ge=0, le=1000)] = Field(
        "auto",
        description="Server starts at the same time; the others wait in line and see their "
        "place. auto: one per CPU of this machine (fewer when memory is short): a start is "
        "about 3 CPU-seconds, so more at once only makes each one slower. 0: no limit "
        "(JupyterHub's own behaviour: under a login storm starts time out).")
    queue_timeout: Duration = Field(
        "15m", validate_default=True,
        description="How long a start may wait in line (30s, 5m, 1h) before the user is "
        "told to try again. A start's own timeouts count from when it leaves the line.")


CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"
ClockTime = Annotated[str, Field(pattern=CLOCK_TIME,
                                 description="A local time of day, HH:MM (24 h).")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class ClassWindow(Section):
    """A class: its group's servers are started before it and kept from idle culling
    until it ends (see docs/operations.md, "Class starts")."""

    group: GroupName = Field(description="The roster group that has the class.")
    days: list[Weekday] = Field(
        default_factory=list, description="Days of the week (mon ... sun). Empty: every day.")
    start: ClockTime = Field(
        description="When the hub starts the group's servers (local time), e.g. 09:55 for a "
        "class at 10:00: a few minutes before, so that everyone's server is ready.")
    end: ClockTime = Field(
        description="When the class ends: until then idle culling leaves the started "
        "servers alone; after it, culling.idle applies as always.")


class Limit(Section):
    memory: Size | None = Field(
        None, description="Most memory a user's server and its kernels may use (2G); above "
        "it the largest of their processes is killed, usually the kernel that asked. The "
        "JupyterLab server itself needs about 150M: below 512M it may be the largest, and "
        "the whole server stops.")
    cpu: float | None = Field(
        None, gt=0, le=1024,
        description="Most CPUs a user's server may use at once (0.5, 1, 2).")


# A JupyterLab server with three kernels and a terminal runs 46 tasks (measured on 2 CPUs by
# tests/attacks/test_exhaustion.py); a kernel that imports numpy adds one BLAS thread per
# CPU, so four such kernels on a 64-CPU machine make about 300. 1024 leaves room for pip,
# make -j and a small multiprocessing pool, and stops a fork bomb long before the machine's
# pid_max (32768 by default) runs out for everyone else.
DEFAULT_PIDS = 1024
PIDS_HELP = ("Most processes and threads a user's server, its kernels and terminals may "
             "run at once (cgroup pids.max, docker pids_limit, systemd TasksMax): a fork "
             "bomb in one notebook stops there instead of taking every server down. A "
             "JupyterLab server with three kernels and a terminal uses about 50; each kernel that "
             "imports numpy adds one thread per CPU (about 300 for four on 64 CPUs).")


def _pids(value: int) -> int:
    if 0 < value < 64:
        raise ValueError(f"{value} is too few for a JupyterLab server (one with a kernel "
                         "and a terminal runs about 25 tasks): write at least 64, or 0 for "
                         "no limit")
    return value


class GroupLimit(Limit):
    """The limits of one roster group's members."""

    pids: int | None = Field(
        None, ge=64, le=4_194_304, description=PIDS_HELP + " Empty: the hub-wide value.")


class LimitsSection(Limit):
    """Per-user limits for servers: for everyone, and per roster group."""

    pids: Annotated[int, AfterValidator(_pids)] = Field(
        DEFAULT_PIDS, ge=0, le=4_194_304,
        description=PIDS_HELP + " 0 turns the limit off (not recommended where students "
        "have a terminal). Below 64 a server may not start at all.")

    groups: dict[GroupName, GroupLimit] = Field(
        default_factory=dict,
        description="Per roster group, replacing the hub-wide values for its members. A user "
        "in several groups gets the largest of each.",
    )


# --- backend: slurm -----------------------------------------------------------------------

SLURM_OPTION = re.compile(r"^--([a-z][a-z0-9-]*)(=\S+)?$")
# sbatch options hubkeeper writes itself, and the hub.yaml field that decides each. sbatch
# also takes any unambiguous abbreviation (--part=), so a prefix of one of these is refused too.
SLURM_OWN_OPTIONS = {
    "partition": "slurm.partition", "time": "slurm.time",
    "mem": "limits.memory", "mem-per-cpu": "limits.memory", "mem-per-gpu": "limits.memory",
    "cpus-per-task": "limits.cpu", "gres": "slurm.groups.<group>.gpus",
    "gpus": "slurm.groups.<group>.gpus", "gpus-per-node": "slurm.groups.<group>.gpus",
    "output": "hubkeeper", "error": "hubkeeper", "chdir": "hubkeeper",
    "export": "hubkeeper", "job-name": "hubkeeper", "uid": "hubkeeper", "gid": "hubkeeper",
    "get-user-env": "hubkeeper", "wrap": "hubkeeper", "parsable": "hubkeeper",
}


def _slurm_option(value: str) -> str:
    match = SLURM_OPTION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an sbatch option: write one long option per item, "
                         "'--name' or '--name=value' without spaces, e.g. --account=physics "
                         "or --qos=interactive")
    name = match.group(1)
    for own, field in SLURM_OWN_OPTIONS.items():
        if own.startswith(name):
            where = ("hubkeeper writes it itself" if field == "hubkeeper"
                     else f"set {field} instead")
            raise ValueError(f"{value!r}: --{own} is not an extra option, {where}")
    return value


SlurmName = Annotated[str, Field(pattern=SLURM_PARTITION_PATTERN,
                                 description="A Slurm partition name (or several, "
                                 "comma-separated: the job starts in whichever is first).")]
SlurmOption = Annotated[str, AfterValidator(_slurm_option)]


class SlurmGroup(Section):
    """What one roster group's members get from Slurm, replacing the hub-wide values."""

    partition: SlurmName | None = Field(
        None, description="Their servers' partition. A user in several groups gets the "
        "partition of the first of their groups listed under slurm.groups.")
    gpus: int = Field(0, ge=0, le=64, description="GPUs per server (--gres=gpu:N); 0: none.")
    time: Period = Field(
        0, description="Their servers' time limit (8h, 2d); the largest of a user's groups "
        "wins. 0: the hub's slurm.time.")


class SlurmSection(Section):
    """backend slurm: servers run as Slurm jobs of the users' accounts (batchspawner)."""

    partition: SlurmName | None = Field(
        None, description="The partition servers run in. Empty: the cluster's default "
        "partition.")
    time: Period = Field(
        0,
        description="Time limit of a server's job (8h, 1d; written for sbatch as "
        "D-HH:MM:SS). When it is reached Slurm ends the server; the user's files stay. "
        "0: the partition's default limit.")
    extra_options: list[SlurmOption] = Field(
        default_factory=list,
        description="More sbatch options for every server's job, each '--name=value' (e.g. "
        "--account=physics, --qos=interactive, --constraint=skylake). Memory and CPUs come "
        "from limits:, partition, time and GPUs from this section.")
    queue_timeout: Duration = Field(
        "5m", validate_default=True,
        description="How long a start may wait for its job to leave the queue (30s, 5m, "
        "1h). Meanwhile the user sees Slurm's reason and the job's place in the queue; at "
        "the deadline the job is cancelled and the user is told why it did not run.")
    hub_ip: Annotated[str, AfterValidator(check_ip_address)] = Field(
        "127.0.0.1",
        description="The address of this machine the compute nodes reach the hub's API on "
        "(hub.api_port). 127.0.0.1 only works when servers run on the hub's own machine "
        "(a one-node cluster).")
    groups: dict[GroupName, SlurmGroup] = Field(
        default_factory=dict,
        description="Per roster group: partition, GPUs, time limit.")


# --- backend: kubernetes ------------------------------------------------------------------

# The Zero to JupyterHub chart release `export z2jh` writes for (its schema is in the tests).
Z2JH_CHART_VERSION = "4.4.0"  # appVersion 5.5.0: JupyterHub 5.5, KubeSpawner 7.1
KUBERNETES_NAME = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"  # an object name (RFC 1123)
ClaimName = Annotated[str, Field(pattern=KUBERNETES_NAME,
                                 description="A PersistentVolumeClaim name in the hub's "
                                 "namespace.")]


class KubernetesSection(Section):
    """What only a Kubernetes cluster needs: `hubkeeper export z2jh` turns hub.yaml into
    values for the Zero to JupyterHub chart (see docs/kubernetes.md). Read with any backend,
    so a single-machine hub.yaml can be exported for its move to a cluster."""

    chart_version: str = Field(
        Z2JH_CHART_VERSION, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$",
        description="The Zero to JupyterHub chart release to install (helm --version); it "
        "decides the hub's JupyterHub version. The export is checked against "
        f"{Z2JH_CHART_VERSION}'s schema.")
    hub_image: Annotated[str, AfterValidator(image_reference)] | None = Field(
        None,
        description="A hub image of your own (name:tag), e.g. one with another "
        "authenticator installed. Empty: the chart's own.")
    home_size: Size = Field(
        "10G", validate_default=True,
        description="Each user's home volume (a PersistentVolumeClaim per user).")
    storage_class: str | None = Field(
        None, pattern=KUBERNETES_NAME,
        description="The StorageClass of the home volumes. Empty: the cluster's default. "
        "Use one with reclaimPolicy: Retain, so that a deleted claim does not delete the "
        "disk under it (docs/kubernetes.md).")
    home_mount: AbsolutePath = Field(
        "/home/jovyan",
        description="Where the home volume is mounted: the image user's home.")
    uid: int = Field(1000, ge=1, le=2**31 - 1,
                     description="The user id servers run as (the image's user; not root).")
    fs_gid: int = Field(100, ge=0, le=2**31 - 1,
                        description="The group id that owns the home volume's files.")
    memory_guarantee: float = Field(
        1.0, gt=0, le=1,
        description="The share of limits.memory each server is guaranteed (its memory "
        "request). 1: no overcommit, so no server is killed because others grew; lower "
        "packs more servers on a node.")
    cpu_guarantee: float = Field(
        0.1, gt=0, le=1,
        description="The share of limits.cpu each server is guaranteed (its CPU request). "
        "Notebooks are idle most of the time, so a small share fits a class on few nodes.")
    placeholders: int | None = Field(
        None, ge=0, le=10000,
        description="Placeholder pods that keep room for this many servers, so that a "
        "class logging in at once does not wait for new nodes (z2jh#987). Empty: one per "
        "roster user (not admins, not locked); lower it between classes with helm "
        "--set scheduling.userPlaceholder.replicas=N.")
    data_claims: dict[AbsolutePath, ClaimName] = Field(
        default_factory=dict,
        description="data.shared and data.group_folders path -> the PersistentVolumeClaim "
        "that holds it on the cluster (shared data: ReadOnlyMany; group folders: "
        "ReadWriteMany). Default claim name: <hub.name>-<last part of the path>.")
