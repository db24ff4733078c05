"""The warm kernel parent: a process that has imported ipykernel and forks kernels on request.

Run by path by the provisioner of hubkeeper's forked kernels (proc/kernelfork.py), one per
single-user server and kernel python, as the server's own account:

    python -P .../hubkeeper/proc/kernelfork_parent.py FD

FD is one end of a SOCK_SEQPACKET socketpair to the server. The parent imports what
`python -m ipykernel_launcher` imports before it reads its connection file (ipykernel's
kernel application, IPython, tornado, zmq's bindings) and what the kernel application imports
when it starts (the kernel, its shell, the debugger's debugpy), freezes the garbage collector's
generations (`gc.freeze()`: the children then do not write to the shared pages when they
collect), and checks that it holds no thread besides its own and no zmq context: a fork
copies only the calling thread, so a lock another thread held would stay locked in every
child. If it is not safe it says so (`refused`) and exits; the provisioner then starts
kernels the normal way.

Messages are JSON, one a packet. To the parent: {"id", "connection_file", "env", "cwd",
"extra"}. From it: {"ready": pid} or {"refused": why} once; {"id", "pid"} with a pidfd of the
child attached, or {"id", "error"}; {"exited": pid, "status": code} when a child ends (the
parent reaps its children). When the server's end closes, the parent exits; its kernels
notice that their parent is gone (ipykernel's parent poller) and end too.

The child is what `python -m ipykernel_launcher -f FILE` would be: a new session (its own
process group, so an interrupt reaches it and what it starts), stdin on /dev/null, every
other inherited descriptor closed, exactly the environment and folder the server gave the
kernel, fresh random seeds, then ipykernel's launcher module run as __main__. Imports nothing
of hubkeeper (an environment's python cannot).
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import sys
import threading
from typing import Any

PACKET = 1 << 20  # a request carries the kernel's whole environment


def unsafe_to_fork() -> str | None:
    """Why forking this process now would not be safe, or None."""
    tasks = len(os.listdir("/proc/self/task"))
    if threading.active_count() > 1 or tasks > 1:
        names = ", ".join(t.name for t in threading.enumerate())
        return f"{tasks} threads after importing ipykernel ({names})"
    zmq = sys.modules.get("zmq")
    if zmq is not None and getattr(zmq.Context, "_instance", None) is not None:
        return "a zmq context exists after importing ipykernel"
    return None


def send(channel: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(channel, [data], fds)
    else:
        channel.send(data)


def reap(channel: socket.socket) -> None:
    """Collect every child that ended and tell the server how."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        send(channel, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})


def fork_kernel(channel: socket.socket, request: dict[str, Any]) -> dict[str, Any] | None:
    """Fork a kernel for `request`. In the child, return the request; in the parent, answer
    the server and return None."""
    try:
        pid = os.fork()
    except OSError as error:
        send(channel, {"id": request["id"], "error": f"fork: {error}"})
        return None
    if pid == 0:
        return request
    try:
        pidfd = os.pidfd_open(pid)  # not reaped yet, so this pid is still our child
    except OSError as error:
        os.kill(pid, signal.SIGKILL)
        send(channel, {"id": request["id"], "error": f"pidfd_open: {error}"})
        return None
    try:
        send(channel, {"id": request["id"], "pid": pid}, [pidfd])
    finally:
        os.close(pidfd)
    return None


def serve(channel: socket.socket) -> dict[str, Any] | None:
    """Answer the server until it goes away (None) or until this process is a new kernel
    (its request)."""
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    try:
        while True:
            ready, _, _ = select.select([channel, wake_read], [], [])
            if wake_read in ready:
                while os.read(wake_read, 512) == 512:
                    pass
                reap(channel)
            if channel in ready:
                data = channel.recv(PACKET)
                if not data:
                    return None
                request = fork_kernel(channel, json.loads(data))
                if request is not None:
                    return request
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(wake_read)
        os.close(wake_write)


def become_kernel(channel: socket.socket, request: dict[str, Any]) -> None:
    """In the forked child: leave the parent's session, descriptors, environment and seeds
    behind, then run ipykernel's launcher as `python -m ipykernel_launcher` would."""
    import random

    parent = os.getppid()
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    channel.close()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # /dev/null's own descriptor too
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["JPY_PARENT_PID"] = str(parent)
    os.chdir(request["cwd"])
    random.seed()  # from os.urandom: no two kernels share a sequence
    sys.path.insert(0, os.getcwd())  # as `python -m` puts it; the launcher takes it off
    # ipykernel read JPY_PARENT_PID when the parent imported it, so it is given again: the
    # kernel ends when its parent goes (its parent poller)
    sys.argv = ["", "-f", request["connection_file"], f"--IPKernelApp.parent_handle={parent}",
                *request["extra"]]
    import runpy

    runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)


def main() -> None:
    channel = socket.socket(fileno=int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C of `hubkeeper up` is the server's
    # what the launcher imports before it reads its file, and what the kernel app imports
    # when it starts (the kernel, its shell, the debugger's debugpy, IPython's core): about
    # 600 modules, none of which starts a thread or opens a socket on import
    import ipykernel.ipkernel  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import ipykernel.zmqshell  # noqa: F401

    why = unsafe_to_fork()
    if why:
        send(channel, {"refused": why})
        return
    gc.collect()
    gc.freeze()
    send(channel, {"ready": os.getpid()})
    request = serve(channel)
    if request is not None:
        become_kernel(channel, request)


if __name__ == "__main__":
    main()
