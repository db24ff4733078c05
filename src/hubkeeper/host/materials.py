"""Course material pulled as the user (`materials:`): the one command both the spawner (at
every start) and `hubkeeper materials publish` run, the environment it gets, and the report
it answers with.

The pull is `python -m hubkeeper.proc.materials REPO BRANCH FOLDER` (nbgitpuller's
GitPuller does the merge), always run with the user's uid, gid and groups and never as root
in a home: git reads the repository's own .git/config and the user's ~/.gitconfig, both the
user's to write, and either could make git run a program (core.fsmonitor, core.hooksPath).
As the user that program can only do what the user can.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hubkeeper.base import procs
from hubkeeper.host.asuser import Identity, command_as

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OUTPUT_KEPT = 4000  # characters of git's output kept for the log when a pull fails


@dataclass(frozen=True)
class Pull:
    repo: str
    branch: str | None  # None: the repository's default branch
    folder: str  # absolute: ~/<environment>/<target> or ~/<target>
    timeout: float


@dataclass(frozen=True)
class PullReport:
    """What one pull did. status: cloned (the first time), updated (the instructor's
    changes arrived), unchanged (nothing new), failed (`error` says why)."""

    folder: str
    status: str
    updated: tuple[str, ...] = ()  # files that now follow the instructor
    kept: tuple[str, ...] = ()  # files the instructor changed where the student's edit won
    error: str = ""
    output: str = field(default="", repr=False)  # git's output (the log's, on failure)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        if self.status == "failed":
            return f"failed: {self.error}"
        words = {"cloned": f"cloned ({len(self.updated)} files)", "unchanged": "up to date"}
        text = words.get(self.status, f"updated {len(self.updated)} files")
        if self.kept:
            text += f"; kept the student's edit of {', '.join(self.kept)}"
        return text


def pull_argv(pull: Pull) -> list[str]:
    """The command of one pull (run it as the user): this interpreter, isolated from the
    user's PYTHONPATH and their ~/.local site-packages."""
    return [sys.executable, "-I", "-m", "hubkeeper.proc.materials", pull.repo,
            pull.branch or "", pull.folder]


def pull_env(account: str, home: str) -> dict[str, str]:
    """Built from nothing: what git needs, and no prompt for a password that nobody sees."""
    return {"PATH": SAFE_PATH, "HOME": home, "USER": account, "LOGNAME": account,
            "LANG": "C.UTF-8", "GIT_TERMINAL_PROMPT": "0",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}


def parse_report(pull: Pull, returncode: int | None, stdout: bytes, stderr: bytes,
                 timed_out: bool = False) -> PullReport:
    """The report the pull printed as its last line, or a failure saying why there is
    none."""
    output = stderr.decode(errors="replace")[-OUTPUT_KEPT:]
    if timed_out:
        return PullReport(pull.folder, "failed", error="did not finish within its timeout "
                          f"of {pull.timeout:.0f} s and was stopped", output=output)
    lines = stdout.decode(errors="replace").strip().splitlines()
    try:
        answer: Mapping[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if returncode != 0 or answer.get("status") not in ("cloned", "updated", "unchanged",
                                                       "failed"):
        last = output.strip().splitlines()[-1:] or [f"exit status {returncode}"]
        return PullReport(pull.folder, "failed", error=last[0][:300], output=output)
    return PullReport(pull.folder, str(answer["status"]),
                      tuple(str(name) for name in answer.get("updated", ())),
                      tuple(str(name) for name in answer.get("kept", ())),
                      str(answer.get("error", ""))[:500], output=output)


def pull_as(identity: Identity | None, account: str, home: str, pull: Pull) -> PullReport:
    """Run one pull now, as `identity` (None: as this process's own account, personal
    mode), with its deadline; at the deadline its whole process group is killed."""
    argv = pull_argv(pull)
    if identity is not None:
        argv = command_as(identity, argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=pull_env(account, home),
                                cwd="/", start_new_session=True)
    except OSError as exc:
        return PullReport(pull.folder, "failed", error=f"could not run the pull: {exc}")
    try:
        stdout, stderr = proc.communicate(timeout=pull.timeout)
    except subprocess.TimeoutExpired:
        procs.send_group(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return parse_report(pull, proc.returncode, stdout, stderr, timed_out=True)
    return parse_report(pull, proc.returncode, stdout, stderr)


def applies(environments: Sequence[str], environment: str) -> bool:
    """Whether a material naming `environments` is pulled for a start of `environment`
    ("" when the hub has none)."""
    return not environments or environment in environments
