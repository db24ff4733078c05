"""The instructor's page's actions, run as `hubkeeper` commands by the root helper.

An admin's action (lifecycle/webhelper.py checked who asks and lifecycle/webadmin.py the
action's arguments) becomes one `hubkeeper --config <hub.yaml> <verb> ... --json` run as
root, exactly what the operator would type: the same checks, locks and journal. One at a
time per hub. Each run is a folder `<state>/web/jobs/<id>/` (root's, 0700):

    job.json      who asked, what, when it started and ended, the exit code, the result
    stdout        the command's JSON result
    stderr        its messages, and a `hubkeeper-progress D T what` line per step
                  (base/progress.py), which the page shows as a progress bar

A job whose helper died with it (the hub stopped mid-action) is marked "interrupted" the
next time the jobs are read; what the command did is in the journal, as with a Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hubkeeper.base import procs
from hubkeeper.base import progress as progress_lines
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic

KEEP = 50  # jobs kept on disk (and listed); older folders are removed
TAIL = 16 * 1024  # bytes of a job's stderr shown


@dataclass
class Job:
    id: str
    action: str  # the page's name for it: roster, add, lock, prewarm, snapshot, ...
    argv: list[str]  # the hubkeeper arguments, after --config
    admin: str  # who asked (the hub's OAuth said so; the helper checked they are an admin)
    started: str
    pid: int = 0
    ended: str | None = None
    exit: int | None = None  # the command's exit code; None while it runs
    state: str = "running"  # running | done | failed | interrupted
    result: Any = None  # the command's JSON result, when it printed one
    progress: list[Any] = field(default_factory=list)  # [done, total, what] while it runs

    @property
    def command(self) -> str:
        return "hubkeeper " + " ".join(self.argv)


def hubkeeper_argv(config: Path, argv: list[str], python: str = sys.executable) -> list[str]:
    """`hubkeeper --config <hub.yaml> <argv>` as root runs it for the web page."""
    return [python, "-m", "hubkeeper", "--config", str(config), *argv]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Jobs:
    """The jobs of one hub, in `folder` (<state>/web/jobs)."""

    def __init__(self, folder: Path, config: Path, python: str = sys.executable) -> None:
        self.folder, self.config, self.python = folder, config, python
        self._lock = threading.Lock()
        self._waiting: set[str] = set()  # jobs a thread of this helper waits for

    def start(self, action: str, argv: list[str], admin: str) -> Job:
        """Run `hubkeeper <argv>` in the background, unless another job runs."""
        with self._lock:
            running = [job for job in self.list() if job.state == "running"]
            if running:
                raise HubkeeperError(f"{running[0].admin}'s {running[0].action} "
                                     f"({running[0].command}) is still running; wait for it")
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S-%f")  # sorts
            job = Job(f"{stamp}-{secrets.token_hex(3)}", action, argv, admin, _now())
            place = self.folder / job.id
            place.mkdir(mode=0o700)
            env = {**os.environ, progress_lines.LINES_ENV: "1"}
            with open(place / "stdout", "wb") as out, open(place / "stderr", "wb") as err:
                child = subprocess.Popen(
                    hubkeeper_argv(self.config, argv, self.python),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd="/",
                    start_new_session=True)  # a Ctrl-C of `up` does not cut an apply short
            job.pid = child.pid
            self._waiting.add(job.id)
            self._save(job)
            self._prune()
        threading.Thread(target=self._finish, args=(job, child), name=f"job-{job.id}",
                         daemon=True).start()
        return job

    def _finish(self, job: Job, child: subprocess.Popen) -> None:
        code = child.wait()
        place = self.folder / job.id
        try:
            job.result = json.loads((place / "stdout").read_text() or "null")
        except (OSError, ValueError):
            job.result = None
        job.exit, job.ended = code, _now()
        job.state = "done" if code == 0 else "failed"
        self._save(job)
        self._waiting.discard(job.id)

    def _save(self, job: Job) -> None:
        write_atomic(self.folder / job.id / "job.json",
                     json.dumps(asdict(job), indent=1).encode(), mode=0o600)

    def _prune(self) -> None:
        for old in sorted(self._ids())[:-KEEP]:
            shutil.rmtree(self.folder / old, ignore_errors=True)

    def _ids(self) -> list[str]:
        try:
            return [entry.name for entry in self.folder.iterdir()
                    if (entry / "job.json").is_file()]
        except FileNotFoundError:
            return []

    def get(self, job_id: str) -> Job:
        if job_id not in self._ids():
            raise HubkeeperError(f"no job {job_id[:40]!r}")
        record = json.loads((self.folder / job_id / "job.json").read_text())
        job = Job(**record)
        if job.state == "running":
            if not procs.alive(job.pid) and not self._waited(job):
                job.state, job.ended = "interrupted", job.ended or _now()
                self._save(job)
            else:
                step = progress_lines.last_step(self.stderr(job))
                job.progress = list(step) if step else []
        return job

    def _waited(self, job: Job) -> bool:
        """Whether this helper started the job and will record its end itself."""
        return job.id in self._waiting

    def list(self) -> list[Job]:
        """The jobs, newest first."""
        return [self.get(job_id) for job_id in sorted(self._ids(), reverse=True)]

    def stderr(self, job: Job) -> str:
        """The end of the job's messages, without its progress lines."""
        try:
            with open(self.folder / job.id / "stderr", "rb") as handle:
                handle.seek(max(0, os.fstat(handle.fileno()).st_size - TAIL))
                text = handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return text

    def messages(self, job: Job) -> str:
        return "\n".join(line for line in self.stderr(job).splitlines()
                         if not line.startswith(progress_lines.PREFIX))
