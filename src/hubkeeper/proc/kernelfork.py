"""hubkeeper's kernel provisioner `hubkeeper-forked`: IPython kernels forked from a warm parent.

A new IPython kernel costs about a CPU-second, nearly all of it importing ipykernel and
IPython; the work that belongs to one kernel is small. With `servers.warm_kernels: true` a
server starts its kernels through this provisioner: the first kernel of a kernel python starts
a warm parent (proc/kernelfork_parent.py) as a child of the server, the same account, in the
same cgroup; every kernel is then a fork of it, with its own process, session, descriptors,
environment, seeds and zmq context (docs/environments.md, "Warm kernels").

Only kernelspecs that run `PYTHON -m ipykernel_launcher -f {connection_file}` are forked;
any other (IRkernel, a user's own) starts as jupyter_client's LocalProvisioner starts it. So
does a kernel whose parent cannot start, refuses (threads after import), or cannot fork:
the server logs why and starts it the normal way.

The forked kernel is the parent's child, not the server's: its pid comes with a pidfd (sent
over the socket), so polling, waiting and signalling never hit a reused pid; the exit code
comes from the parent, which reaps. Interrupts go to the kernel's process group as
LocalProvisioner sends them.

Loaded in the single-user server: from the hub's venv through the entry point in
pyproject.toml, or by path by proc/singleuser.py (an environment's python cannot import
hubkeeper). Imports nothing of hubkeeper.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner

NAME = "hubkeeper-forked"
PARENT_SCRIPT = Path(__file__).with_name("kernelfork_parent.py")
READY_DEADLINE = 90.0  # seconds for a parent to import ipykernel (a class start's load)
FORK_DEADLINE = 15.0
EXIT_STATUS_DEADLINE = 2.0  # the parent reports an exit right after the kernel ends
PACKET = 1 << 16
UNKNOWN_EXIT = 1  # the parent died before it could say how a kernel ended


class ForkRefused(Exception):
    """The warm parent cannot give this kernel; start it the normal way."""


class ParentGone(ForkRefused):
    """The parent closed its end of the socket: it exited."""


class ParentRefused(ForkRefused):
    """The parent found it unsafe to fork (it will every time): not asked again."""


def fork_plan(cmd: list[str]) -> tuple[str, str, list[str]] | None:
    """(python, connection file, extra arguments) when `cmd` is ipykernel's launcher as a
    kernelspec runs it, else None (that kernel starts the normal way)."""
    if len(cmd) >= 5 and cmd[1:3] == ["-m", "ipykernel_launcher"] and cmd[3] == "-f":
        return cmd[0], cmd[4], cmd[5:]
    return None


def parent_key(python: str, spec_env: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Kernels of one python and one kernelspec environment share a parent: the environment
    (PYTHONPATH, ...) decides what the parent imported."""
    return python, tuple(sorted(spec_env.items()))


class WarmParent:
    """A warm kernel parent of this server, and the socket to it."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.lock = threading.Lock()
        self.exits: dict[int, int] = {}
        self.ids = itertools.count(1)
        try:
            self.process = subprocess.Popen(
                [python, "-P", str(PARENT_SCRIPT), str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
        except OSError as error:
            ours.close()
            raise ForkRefused(f"cannot start {python}: {error}") from error
        finally:
            theirs.close()
        self.channel = ours
        try:
            hello = self._receive(time.monotonic() + READY_DEADLINE)[0]
        except ParentGone as error:
            # it exits before it is ready (no ipykernel, a python older than 3.11 without
            # -P, ...): it would every time
            self.close()
            raise ParentRefused(f"the warm parent exited with {self.process.returncode} "
                                "before it was ready") from error
        except ForkRefused:
            self.close()  # not in time: perhaps the next time
            raise
        if "ready" not in hello:
            self.close()
            raise ParentRefused(f"the warm parent refused: {hello.get('refused', hello)}")
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Close our end: the parent exits, and its kernels after it."""
        self.channel.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _receive(self, deadline: float) -> tuple[dict[str, Any], list[int]]:
        """The next message that is not an exit report (those are recorded), waiting until
        `deadline`."""
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.channel], [], [], max(left, 0))
            if not ready:
                raise ForkRefused("the warm parent did not answer in time")
            data, fds, _, _ = socket.recv_fds(self.channel, PACKET, 1)
            if not data:
                raise ParentGone("the warm parent exited")
            message = json.loads(data)
            if "exited" in message:
                self.exits[message["exited"]] = message["status"]
                continue
            return message, fds

    def fork(self, connection_file: str, env: dict[str, str], cwd: str,
             extra: list[str]) -> ForkedKernel:
        with self.lock:
            request = {"id": next(self.ids), "connection_file": connection_file, "env": env,
                       "cwd": cwd, "extra": extra}
            try:
                self.channel.send(json.dumps(request).encode())
            except OSError as error:
                raise ForkRefused(f"the warm parent is gone: {error}") from error
            reply, fds = self._receive(time.monotonic() + FORK_DEADLINE)
        if "pid" not in reply or not fds:
            for fd in fds:
                os.close(fd)
            raise ForkRefused(f"the warm parent could not fork: {reply.get('error', reply)}")
        return ForkedKernel(self, reply["pid"], fds[0])

    def exit_status(self, pid: int) -> int:
        """How kernel `pid` (ended) ended, as the parent reports it."""
        deadline = time.monotonic() + EXIT_STATUS_DEADLINE
        with self.lock:
            while pid not in self.exits and self.alive():
                try:
                    self._receive(deadline)  # an exit report is all the parent sends unasked
                except (ForkRefused, OSError):
                    break
            return self.exits.pop(pid, UNKNOWN_EXIT)


class ForkedKernel:
    """A forked kernel as jupyter_client's LocalProvisioner uses a Popen: poll, wait,
    send_signal, kill, terminate; through its pidfd, never by a pid that may be reused."""

    stdin = stdout = stderr = None

    def __init__(self, parent: WarmParent, pid: int, pidfd: int) -> None:
        self.parent = parent
        self.pid = pid
        self.pidfd = pidfd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.wait(timeout=0) if self.returncode is None else self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        ended, _, _ = select.select([self.pidfd], [], [], timeout)
        if not ended:
            if timeout:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            return None
        self.returncode = self.parent.exit_status(self.pid)
        os.close(self.pidfd)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            signal.pidfd_send_signal(self.pidfd, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class WarmParents:
    """This server's warm parents, one per kernel python and kernelspec environment; a
    parent that died is started again, one that refused is not asked again."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parents: dict[tuple[str, tuple[tuple[str, str], ...]], WarmParent] = {}
        self.refused: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def fork(self, python: str, spec_env: dict[str, str], connection_file: str,
             env: dict[str, str], cwd: str, extra: list[str]) -> ForkedKernel:
        key = parent_key(python, spec_env)
        with self.lock:
            if key in self.refused:
                raise ForkRefused(self.refused[key])
            parent = self.parents.get(key)
            if parent is None or not parent.alive():
                try:
                    parent = WarmParent(python, {**os.environ, **spec_env})
                except ParentRefused as error:
                    self.refused[key] = str(error)
                    raise
                self.parents[key] = parent
        return parent.fork(connection_file, env, cwd, extra)


PARENTS = WarmParents()


class ForkedProvisioner(LocalProvisioner):
    """LocalProvisioner whose IPython kernels are forks of a warm parent."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        plan = fork_plan(cmd)
        if plan is None:
            return await super().launch_kernel(cmd, **kwargs)
        python, connection_file, extra = plan
        env = dict(kwargs.get("env") or os.environ)
        cwd = str(kwargs.get("cwd") or os.getcwd())
        spec_env = {k: str(v) for k, v in (self.kernel_spec.env or {}).items()}
        try:
            kernel = await asyncio.to_thread(PARENTS.fork, python, spec_env, connection_file,
                                             env, cwd, extra)
        except ForkRefused as error:
            self.log.warning("kernel %s: started the normal way, not forked: %s",
                             self.kernel_id, error)
            return await super().launch_kernel(cmd, **kwargs)
        self.log.info("kernel %s: forked from the warm parent %s as pid %s",
                      self.kernel_id, kernel.parent.pid, kernel.pid)
        self.process = kernel  # type: ignore[assignment]
        self.pid = self.pgid = kernel.pid  # the child made its own session
        self.cwd = cwd
        return self.connection_info
