"""The local spawner's side of the warm parents (proc/warmparent.py, `servers.warm: true`).

The hub process runs one warm parent per environment build in use (keyed by the build's
python, so a rebuild gets a new parent), started the first time a server of that build
starts and again whenever it is found dead; that start, and any start the parent cannot
serve, runs the server as today and says why in the log. The parent dies with the hub
(PR_SET_PDEATHSIG); its children, like servers started today, do not.

The spawner is not the server's parent, so it keeps the pidfd the warm parent sends: `poll`
is "is the pidfd readable", signals go through pidfd_send_signal, and a pid reused after
the server's death can never be signalled. After a hub restart the pid in the database is
opened again as a pidfd only if the process still has the start time recorded with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any

from traitlets.config import Config

log = logging.getLogger(__name__)

ANSWER_LIMIT = 1 << 16
ASK_SECONDS = 10.0
STATUS_SECONDS = 1.0
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with its NUL


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WarmUnavailable(Exception):
    """Why this start does not go through a warm parent (the server starts as today)."""


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (/proc/<pid>/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read()
    except OSError:
        return None
    return int(text[text.rindex(b")") + 2:].split()[19])


def ask(path: str, op: bytes, request: dict[str, Any],
        fds: list[int] = (),  # type: ignore[assignment]
        timeout: float = ASK_SECONDS) -> tuple[dict[str, Any], list[int]]:
    """One request to a warm parent: its op byte alone (the parent reads only that of a
    fork request), then the request; the answer and the descriptors that came with it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(path)
        # the parent checks us; we check that the parent is the hub's own account too
        creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        if int.from_bytes(creds[4:8], "little") != os.geteuid():
            raise WarmUnavailable(f"{path} is held by another account")
        connection.sendall(op)
        socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], list(fds))
        data, received, _flags, _addr = socket.recv_fds(connection, ANSWER_LIMIT, 1)
        while data and not data.endswith(b"\n") and len(data) < ANSWER_LIMIT:
            more = connection.recv(ANSWER_LIMIT)
            if not more:
                break
            data += more
    try:
        answer = json.loads(data)
    except ValueError:
        for fd in received:
            os.close(fd)
        raise WarmUnavailable(f"the warm parent at {path} gave no answer") from None
    return answer, received


class WarmProcess:
    """A server forked by a warm parent, as much of subprocess.Popen as the spawner uses."""

    def __init__(self, pid: int, pidfd: int, socket_path: str) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.socket_path = socket_path
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if self.pidfd < 0:
            self.returncode = 0
            return 0
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        if not readable:
            return None
        self.returncode = self._exit_status()
        return self.returncode

    def _exit_status(self) -> int:
        """What the warm parent saw when it reaped the server (0 when it cannot say)."""
        with contextlib.suppress(OSError, WarmUnavailable):
            answer, _ = ask(self.socket_path, b"S", {"pid": self.pid},
                            timeout=STATUS_SECONDS)
            if isinstance(answer.get("exit"), int):
                return answer["exit"]
        return 0

    def send_signal(self, signum: int) -> bool:
        """Signal the server; False when it is gone (never anyone else: a pidfd)."""
        if self.pidfd < 0:
            return False
        try:
            signal.pidfd_send_signal(self.pidfd, signum)
        except ProcessLookupError:
            return False
        return True

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def __enter__(self) -> WarmProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reopen(pid: int, started: int, socket_path: str) -> WarmProcess | None:
    """After a hub restart: the server recorded as (pid, start time), if it still runs."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    if start_time(pid) != started:  # checked after opening: the pidfd holds what we checked
        os.close(pidfd)
        return None
    return WarmProcess(pid, pidfd, socket_path)


@dataclass
class WarmParents:
    """The warm parents this hub process runs, one per build's python."""

    folder: str  # <state>/run/warm, 0700, the hub's account's
    script: str  # proc/warmparent.py
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def socket_for(self, python: str) -> str:
        """<build key>-<this hub's pid>.sock: another process that loads the hub's config
        never takes over the running hub's socket."""
        key = hashlib.sha256(os.path.realpath(python).encode()).hexdigest()[:16]
        return os.path.join(self.folder, f"{key}-{os.getpid()}.sock")

    def ensure_folder(self) -> None:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        info = os.lstat(self.folder)
        if info.st_uid != os.geteuid():
            raise WarmUnavailable(f"{self.folder} is not the hub account's")
        if info.st_mode & 0o077:
            os.chmod(self.folder, 0o700, follow_symlinks=False)
        for entry in os.listdir(self.folder):  # the sockets of hubs that are gone
            owner = entry.removesuffix(".sock").rpartition("-")[2]
            if entry.endswith(".sock") and owner.isdigit() and not _running(int(owner)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.folder, entry))

    def serving(self, python: str) -> str:
        """The socket of this build's parent, started (for the next start) when it is not
        running; raises WarmUnavailable with the reason when this start must go cold."""
        path = self.socket_for(python)
        if len(path) > SOCKET_PATH_MAX:
            raise WarmUnavailable(f"the socket path {path} is too long for a Unix socket")
        process = self.running.get(python)
        if process is not None and process.poll() is None:
            return path
        why = ("not running yet" if process is None
               else f"it exited with status {process.returncode}; started again")
        self.launch(python, path)
        raise WarmUnavailable(f"the warm parent of {python} is {why}")

    def prestart(self, python: str) -> None:
        """At the hub's start: the default environment's parent, so the first start is warm."""
        path = self.socket_for(python)
        if len(path) <= SOCKET_PATH_MAX and python not in self.running:
            self.launch(python, path)

    def launch(self, python: str, path: str) -> None:
        self.ensure_folder()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a dead parent's socket: the new one answers only when ready
        env = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL")
               if name in os.environ}
        env["HOME"] = self.folder  # nothing of the hub's account's home is read at import
        # From this (the event loop's) thread: PR_SET_PDEATHSIG follows the forking thread.
        self.running[python] = subprocess.Popen(
            [python, "-P", self.script, path], env=env, stdin=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        log.info("warm parent for %s: started (pid %s, %s)", python,
                 self.running[python].pid, path)

    def stop_all(self) -> None:
        for process in self.running.values():
            with contextlib.suppress(OSError):
                process.terminate()


PARENTS: dict[str, WarmParents] = {}  # this hub process's, by socket folder


def parents_at(folder: str, script: str) -> WarmParents:
    if folder not in PARENTS:
        PARENTS[folder] = WarmParents(folder, script)
    return PARENTS[folder]


def prestart_default(config: Config) -> None:
    """servers.warm: start the parent of the build a user gets when they do not choose (the
    default environment's current build, or hubkeeper's own python without environments)."""
    if not config.LocalSpawner.get("warm"):
        return
    spawner = config.HubkeeperSpawner
    environments = spawner.get("environments") or {}
    default = spawner.get("default_environment") or ""
    if default in environments:
        build = os.path.realpath(os.path.join(environments[default]["path"], "current"))
        python = os.path.join(build, "bin", "python")  # as the spawner names it
        if not os.path.exists(python):
            return
    else:
        python = config.Spawner.cmd[0]
    parents_at(config.LocalSpawner.warm_folder, config.LocalSpawner.warm_script
               ).prestart(python)


def fork_server(path: str, request: dict[str, Any],
                output: tuple[int, int] = (1, 2)) -> WarmProcess:
    """Ask the parent at `path` for a server; its stdout and stderr are `output` (by default
    where the hub's go, as for a server the hub starts itself)."""
    try:
        answer, fds = ask(path, b"F", {"op": "fork", **request}, list(output))
    except OSError as exc:
        raise WarmUnavailable(f"the warm parent at {path} did not answer: {exc}") from None
    if "pid" not in answer or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise WarmUnavailable(f"the warm parent refused: {answer.get('error', answer)}")
    return WarmProcess(int(answer["pid"]), fds[0], path)
