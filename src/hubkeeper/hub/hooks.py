"""Start-up hooks: run one script with a deadline, as a given identity, output to a log.

Used by the spawner at every server start. Nothing here blocks the hub's event loop: the
script is an asyncio subprocess, and at its deadline (or when the start is cancelled) its
whole process group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO

from hubkeeper.base import procs
from hubkeeper.config.types import format_duration

# The environment is built from nothing: the hub's own holds what scripts must not see.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG_ROTATE_BYTES = 1024 * 1024  # a user's log beyond this is moved to <user>.log.1
HOOK_OUTPUT_BYTES = 256 * 1024  # of one run of a hook run as the user, kept in the log
OUTPUT_GRACE = 2.0  # seconds the output may still arrive after the script ended


@dataclass(frozen=True)
class HookScript:
    script: str  # absolute path
    name: str  # as written in hub.yaml: what users and the log are told
    timeout: float  # seconds
    phase: str  # "as_root" or "as_user"


@dataclass(frozen=True)
class Identity:
    """Who a hook runs as. uid None: as the hub's own account (no change)."""

    env: dict[str, str]
    cwd: str
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = field(default=())


@dataclass(frozen=True)
class HookOutcome:
    hook: HookScript
    returncode: int | None
    seconds: float
    timed_out: bool = False
    error: str | None = None  # the script could not be started

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.error is None

    def describe(self) -> str:
        """What happened, for the user and the log; never the script's output."""
        if self.error is not None:
            return f"could not be run ({self.error})"
        if self.timed_out:
            return (f"did not finish within its timeout of {format_duration(self.hook.timeout)} "
                    "and was stopped")
        if self.returncode is not None and self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = str(-self.returncode)
            return f"was killed by signal {name}"
        if self.returncode == 0:
            return "succeeded"
        return f"failed with exit status {self.returncode}"


def open_log(directory: str, user: str) -> int:
    """Append-only fd of <directory>/<user>.log; the directory is made 0700, the file 0600."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)  # documented as kept 0700: users must not read hook output
    path = os.path.join(directory, f"{user}.log")
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_size > LOG_ROTATE_BYTES:
            os.replace(path, path + ".1")
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def note(fd: int, text: str) -> None:
    """A dated line of hubkeeper's own in the hook log."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    os.write(fd, f"--- {stamp} {text}\n".encode())


def _kill_group(pgid: int) -> None:
    procs.send_group(pgid, signal.SIGKILL)


async def run_hook(hook: HookScript, identity: Identity, log_fd: int) -> HookOutcome:
    """Run `hook` as `identity` with its deadline; its output is appended to `log_fd`.

    A hook run as another account never gets `log_fd` (root's log, which it could keep,
    seek in and write over for ever): it writes to a pipe that this process copies into the
    log, at most HOOK_OUTPUT_BYTES per run, and closes once the hook is done."""
    note(log_fd, f"{hook.phase} {hook.name} (timeout {format_duration(hook.timeout)})")
    began = time.monotonic()
    kwargs: dict = {}
    piped = identity.uid is not None
    if piped:
        kwargs = {"user": identity.uid, "group": identity.gid,
                  "extra_groups": list(identity.groups)}
    # our own pipe, not asyncio's PIPE: proc.wait() must not wait for a pipe that a process
    # the hook left behind keeps open
    read_end, write_end = os.pipe2(os.O_CLOEXEC) if piped else (-1, log_fd)
    pipe = os.fdopen(read_end, "rb", buffering=0) if piped else None
    try:
        proc = await asyncio.create_subprocess_exec(
            hook.script, stdin=asyncio.subprocess.DEVNULL, stdout=write_end,
            stderr=asyncio.subprocess.STDOUT, env=identity.env, cwd=identity.cwd,
            start_new_session=True,  # its own process group: killed whole at the deadline
            **kwargs,
        )
    except OSError as exc:
        outcome = HookOutcome(hook, None, time.monotonic() - began,
                              error=exc.strerror or str(exc))
        note(log_fd, f"{hook.name} {outcome.describe()}")
        if pipe is not None:
            pipe.close()
        return outcome
    finally:
        if piped:
            os.close(write_end)
    copying = asyncio.ensure_future(_copy_output(pipe, log_fd)) if pipe else None
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), hook.timeout)
    except asyncio.TimeoutError:
        timed_out = True
        _kill_group(proc.pid)
        await proc.wait()
    except BaseException:  # the start was cancelled (JupyterHub's own deadline): leave nothing
        _kill_group(proc.pid)
        if copying is not None:
            copying.cancel()
        raise
    finally:
        if copying is not None and pipe is not None:
            await _finish_copy(copying, log_fd)
            pipe.close()  # also when the copy was cancelled before it began
    outcome = HookOutcome(hook, proc.returncode, time.monotonic() - began, timed_out)
    note(log_fd, f"{hook.name} {outcome.describe()} in {outcome.seconds:.1f}s")
    return outcome


async def _copy_output(pipe: BinaryIO, log_fd: int) -> None:
    """The hook's output into the log, up to HOOK_OUTPUT_BYTES; the rest is read and
    dropped (a hook never blocks on a full pipe, and never fills the disk)."""
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), pipe)
    kept = 0
    try:
        while chunk := await stream.read(1 << 16):
            if kept < HOOK_OUTPUT_BYTES:
                part = chunk[:HOOK_OUTPUT_BYTES - kept]
                os.write(log_fd, part)
                kept += len(part)
                if kept >= HOOK_OUTPUT_BYTES:
                    note(log_fd, f"output cut here: more than {HOOK_OUTPUT_BYTES} bytes")
    finally:
        transport.close()


async def _finish_copy(copying: asyncio.Future, log_fd: int) -> None:
    """Let the copy reach the end of the output; a process the hook left behind that keeps
    the pipe open is not waited for (the pipe is closed: its next write fails)."""
    if not copying.done():
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(copying), OUTPUT_GRACE)
    if not copying.done():
        copying.cancel()
        note(log_fd, "output after the script ended is not logged")
    with contextlib.suppress(asyncio.CancelledError):
        await copying
