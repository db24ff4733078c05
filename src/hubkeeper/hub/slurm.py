"""backend slurm: each server is a Slurm job of the user's own account, through batchspawner.

A start, on the hub's machine (the compute nodes see the same filesystem): the environment
chosen and checked, the disk guard, the home, ~/<environment>/ seeded, hooks.as_root and
hooks.as_user, as on the local backend (HubkeeperSpawner.prepare_host_start, run_hooks). Then
the job is submitted as the account (`runuser -u <account> -- sbatch`: sudo is not needed),
asking for the partition, time limit and GPUs of slurm: (per group) and the memory and CPUs
of limits: (per group); see render/slurm_job.py for the request and the script. The job runs
`<environment>/current/bin/python -P .../hubkeeper/proc/slurm_server.py` in ~/<environment>/, which
tells the hub its port and becomes the single-user server (proc/singleuser.py).

While the job waits, the user's progress page shows Slurm's reason and its place in the
queue; after slurm.queue_timeout the job is cancelled and the user told why it did not run.
A job sbatch refuses, or one that ends before its server answers, is a SpawnRefused with
Slurm's words. Stopping cancels the job (scancel); the user's files stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shlex
import sys
import time
from typing import Any

from batchspawner import JobStatus, SlurmSpawner
from traitlets import Dict, Float, List, Unicode, default

from hubkeeper.base.files import package_file
from hubkeeper.config.types import format_duration
from hubkeeper.hub.spawner_base import HubkeeperSpawner, SpawnRefused
from hubkeeper.render.slurm_job import (
    JOB_LOG,
    QUERY_FORMAT,
    RUNUSER,
    JobRequest,
    QueueStatus,
    batch_script,
    describe_reason,
    job_request,
    parse_status,
    pending_message,
)

SERVER_WRAPPER = package_file("proc/slurm_server.py")

QUERY_TIMEOUT = 30.0  # seconds for one squeue


class SlurmJobSpawner(HubkeeperSpawner, SlurmSpawner):
    """backend: slurm (see the module docstring)."""

    slurm_partition = Unicode("", config=True, help="slurm.partition ('' : the default).")
    slurm_time = Float(0, config=True, help="slurm.time in seconds (0: the partition's).")
    slurm_extra_options = List(Unicode(), config=True, help="slurm.extra_options.")
    slurm_groups = Dict(
        config=True, help="slurm.groups: group -> {partition, gpus, time (seconds)}.")
    queue_timeout = Float(
        300.0, config=True,
        help="Seconds a start may wait for its job to leave the queue; then it is cancelled "
        "and the user told Slurm's reason.")

    exec_prefix = Unicode(
        f"{RUNUSER} -u {{username}} --", config=True,
        help="Runs sbatch, squeue and scancel as the user's account (runuser: no sudo).")
    batch_query_cmd = Unicode(f"squeue -h -j {{job_id}} -o '{QUERY_FORMAT}'", config=True,
                              help="squeue: state|batch host|partition|reason.")
    state_exechost_re = Unicode(r"^[A-Z]+\|([^|\s]+)\|", config=True,
                                help="The node of the job's batch step, from the query.")

    @default("req_username")
    def _username_default(self) -> str:
        return self.account  # the Linux account, with users.account_prefix

    @default("req_homedir")
    def _homedir_default(self) -> str:
        return pwd.getpwnam(self.account).pw_dir

    @default("startup_poll_interval")
    def _poll_default(self) -> float:
        return 1.0

    @default("env_keep")
    def _env_keep_default(self) -> list[str]:
        # What sbatch and the job need of the hub's environment: PATH finds sbatch,
        # SLURM_CONF a cluster configuration other than /etc/slurm's.
        return ["JUPYTERHUB_SINGLEUSER_APP", "LANG", "LC_ALL", "PATH", "PYTHONPATH",
                "SLURM_CONF"]

    job_python = ""  # the interpreter the job runs (the environment's build, resolved now)
    request = JobRequest()
    queue_status: QueueStatus | None = None
    queue_note = ""  # what the progress page shows while the job waits
    queue_deadline: float | None = None  # set during a start only

    # --- the start ------------------------------------------------------------------------

    async def start(self):  # type: ignore[override]
        async with self.failures_counted():
            return await self.start_job()

    async def start_job(self) -> tuple[str, int]:
        python = await self.prepare_host_start()
        self.job_python = python or sys.executable  # no environments: hubkeeper's own venv
        if python:
            self.notebook_dir = self.environment_folder
        await self.pull_materials()  # on this machine: the nodes share the homes
        await self.run_hooks()
        limits = self.limits_for_user()
        # Jupyter shows these to the user (MEM_LIMIT, CPU_LIMIT); Slurm enforces them.
        self.mem_limit, self.cpu_limit = limits.memory, limits.cpu
        hub = {"partition": self.slurm_partition, "time": self.slurm_time,
               "extra_options": self.slurm_extra_options}
        self.request = job_request((group.name for group in self.user.groups), hub,
                                   self.slurm_groups, limits)
        self.queue_status, self.queue_note = None, ""
        self.queue_deadline = time.monotonic() + self.queue_timeout
        try:
            return await super().start()
        except RuntimeError as exc:  # batchspawner: no job id, or the job ended early
            raise SpawnRefused(
                "Your server was not started: its Slurm job ended before the server was up. "
                "Tell your instructor.", reason="slurm",
                log_message=f"{self.user.name}: job {self.job_id or '-'}: {exc}; "
                f"{self.job_output()}") from None
        finally:
            self.queue_deadline = None

    def cmd_formatted_for_batch(self) -> str:
        # By path, not `-m`: the environment's python need not import hubkeeper (an
        # editable install is only on hubkeeper's own path); -P keeps the script's folder
        # off sys.path. The file is on the filesystem the nodes share, like the state dir.
        return shlex.join([self.job_python, "-P", SERVER_WRAPPER, *self.get_args()])

    async def _get_batch_script(self, **subvars: Any) -> str:
        account = pwd.getpwnam(self.account)
        return batch_script(
            job_name=f"hubkeeper-{self.hub_name or 'hub'}-{self.user.name}",
            output=os.path.join(account.pw_dir, JOB_LOG),
            folder=self.environment_folder or account.pw_dir,
            export=self.get_env().keys(), options=self.request.sbatch_options(),
            command=shlex.split(subvars["cmd"]))

    async def submit_batch_script(self) -> str:
        try:
            return await super().submit_batch_script()
        except RuntimeError as exc:  # sbatch's stderr
            words = slurm_words(str(exc))
            raise SpawnRefused(
                f"Your server was not started: Slurm refused its job: {words}. Tell your "
                "instructor.", reason="slurm", status_code=503,
                log_message=f"{self.user.name}: sbatch {' '.join(self.request.sbatch_options())}"
                f" failed: {exc}") from None

    async def query_job_status(self) -> JobStatus:
        status = await super().query_job_status()
        self.queue_status = parse_status(self.job_status)
        if status is JobStatus.PENDING and self.queue_deadline is not None \
                and self.queue_status is not None:
            position, total = await self.queue_position(self.queue_status.partition)
            self.queue_note = pending_message(self.queue_status, position, total)
            if time.monotonic() > self.queue_deadline:
                self.log.warning("%s: job %s still pending after %s: %s", self.user.name,
                                 self.job_id, format_duration(self.queue_timeout),
                                 self.job_status)
                place = f" (number {position} of {total} waiting)" if position else ""
                raise SpawnRefused(
                    f"Your server was not started: its Slurm job waited "
                    f"{format_duration(self.queue_timeout)} in the queue of partition "
                    f"{self.queue_status.partition}{place} without starting. Slurm's reason: "
                    f"{describe_reason(self.queue_status.reason)}. Try again later, or tell "
                    "your instructor.", reason="queue", status_code=503,
                    log_message=f"{self.user.name}: job {self.job_id} pending: "
                    f"{self.job_status}")
        return status

    async def queue_position(self, partition: str) -> tuple[int | None, int | None]:
        """(this job's place, how many wait) among the partition's pending jobs in Slurm's
        priority order; (None, None) when squeue does not say. Asked as the hub's account,
        which sees every job even where users see only their own."""
        try:
            proc = await asyncio.create_subprocess_exec(
                "squeue", "-h", "-t", "PENDING", "-p", partition, "-o", "%i",
                "--sort=-p,i", stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            output, _ = await asyncio.wait_for(proc.communicate(), QUERY_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            return None, None
        ids = output.decode(errors="replace").split()
        if self.job_id not in ids:
            return None, None
        return ids.index(self.job_id) + 1, len(ids)

    async def progress(self):  # type: ignore[override]
        """What the spawn page shows: the queue while the job waits, then the node."""
        yield {"progress": 10, "message": "Submitting your server's job to Slurm..."}
        shown = ""
        end = time.monotonic() + self.start_timeout
        while time.monotonic() < end:  # JupyterHub stops iterating when the start ends
            status = self.queue_status
            if status is not None and not status.pending:
                yield {"progress": 60,
                       "message": f"Your server's job runs on {status.host}; waiting for the "
                       "server to answer..."}
                return
            if self.queue_note and self.queue_note != shown:
                shown = self.queue_note
                yield {"progress": 30, "message": shown}
            await asyncio.sleep(1)

    def job_output(self) -> str:
        """The end of the job's output file in the home, for the hub's log (opened without
        following links, and only if the account owns it)."""
        path = os.path.join(self.req_homedir, JOB_LOG)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            return f"no job output ({path}: {exc.strerror})"
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(fd).st_uid != pwd.getpwnam(self.account).pw_uid:
                return f"{path} is not the account's; not read"
            with contextlib.suppress(OSError):
                handle.seek(-3000, os.SEEK_END)
            return f"the job's output ({path}):\n" + handle.read().decode(errors="replace")

    # --- environment ----------------------------------------------------------------------

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(self.environment_jupyter_paths())
        return env

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        account = pwd.getpwnam(self.account)
        env.update(USER=self.account, HOME=account.pw_dir, SHELL=account.pw_shell)
        return env


def slurm_words(stderr: str) -> str:
    """sbatch's error without its prefixes: 'sbatch: error: Batch job submission failed:
    Requested node configuration is not available' -> 'Requested node configuration is not
    available'."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = lines[-1] if lines else "no reason given"
    for prefix in ("sbatch: error:", "Batch job submission failed:", "runuser:"):
        text = text.removeprefix(prefix).strip()
    return text.rstrip(".")
