"""The warm parent: single-user servers forked from a process that has imported them already.

Run by path, `python -P .../hubkeeper/proc/warmparent.py <socket>`, with the python of the
environment build its servers run from (like proc/singleuser.py, and for the same reason it
imports nothing of hubkeeper: an environment's python cannot). It runs as the hub's account:
root in system mode, the invoking account in personal mode.

At start it imports what a server imports (jupyterhub.singleuser, Jupyter Server, JupyterLab
and the environment's enabled server extensions), then `gc.freeze()` so that children do not
dirty the shared pages when they collect. It opens no event loop, no connection to the hub
and reads no secret: the only thing it holds is its listening socket.

It listens on a Unix socket in a folder only the hub's account can enter (0700), and serves
only a peer whose SO_PEERCRED uid is its own. A request starts with one byte, its op:

    F  fork: the parent forks at once and reads nothing more; the child reads the request,
       one JSON line {"op": "fork", "uid", "gid", "groups", "cwd", "env", "argv",
       "cgroup_procs", "as_root"} with the two descriptors the server's output goes to (the
       hub's log, as for a server started today) by SCM_RIGHTS, and answers {"pid": N} with
       a pidfd of itself (or {"error": why}). So no user's environment, with their token,
       ever enters the parent, whose memory every later child starts with.
    S  status: {"pid": N} -> {"exit": code or null} (null: running, or not known)
    P  ping -> {"ok": true, "pid": the parent's}

The spawner polls and signals the server through the pidfd (pidfd_send_signal), so a pid
reused after the server's death can never be signalled by mistake; the parent reaps its
children and keeps their exit codes for `S`.

The child, before anything of the user's runs: joins the user's cgroups (as root), starts a
new session, gets /dev/null as stdin and the two given descriptors as stdout and stderr,
closes every other descriptor (the listening socket, the connection), sets the supplementary
groups, gid and uid (real, effective and saved), checks it cannot get root back, sets
no_new_privs, enters its folder, takes exactly the given environment, reseeds `random`, and
runs the server as proc/singleuser.py would.
"""

import contextlib
import ctypes
import gc
import importlib
import importlib.util
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import traceback

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
MAX_REQUEST = 1 << 20
OP_FORK, OP_STATUS, OP_PING = b"F", b"S", b"P"  # the first byte; the parent reads no more
KEPT_STATUSES = 4096
# Read by jupyterhub.singleuser when it is imported: a child cannot change them any more.
IMPORT_TIME_ENV = ("JUPYTERHUB_SINGLEUSER_APP", "JUPYTERHUB_SINGLEUSER_EXTENSION")
HERE = os.path.dirname(os.path.abspath(__file__))

LIBC = ctypes.CDLL(None, use_errno=True)


def load_singleuser():
    """proc/singleuser.py, beside this file, as a module (-P keeps this folder off sys.path)."""
    spec = importlib.util.spec_from_file_location("hubkeeper_warm_singleuser",
                                                  os.path.join(HERE, "singleuser.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def enabled_extensions() -> list[str]:
    """The server extensions this environment enables (its jupyter_server_config.d)."""
    names: list[str] = []
    folder = os.path.join(sys.prefix, "etc", "jupyter", "jupyter_server_config.d")
    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir(folder)):
            if not entry.endswith(".json"):
                continue
            with contextlib.suppress(OSError, ValueError, AttributeError):
                with open(os.path.join(folder, entry)) as file:
                    found = json.load(file).get("ServerApp", {}).get("jpserver_extensions", {})
                names += [name for name, on in found.items() if on]
    return names


def preload() -> None:
    """Import what a server imports, so that children start with it done."""
    for name in IMPORT_TIME_ENV:
        os.environ.pop(name, None)
    sys.modules.setdefault("rfc3987_syntax", None)  # as proc/singleuser.py does
    for name in ("jupyterhub.singleuser", "jupyterhub.singleuser.extension",
                 "jupyter_server.serverapp", "jupyter_client.kernelspec",
                 "jupyter_client.ioloop", "jupyterlab", "jupyterlab.labapp",
                 *enabled_extensions()):
        try:
            importlib.import_module(name)
        except Exception as exc:  # an extension that does not import here fails in the child
            print(f"warm parent: not preloaded {name}: {exc}", file=sys.stderr, flush=True)


class Refused(Exception):
    """A request this parent does not serve; the spawner starts the server itself."""


def _ints(value, what: str) -> list[int]:
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise Refused(f"{what} must be a list of ids")
    return value


def checked_fork_request(request: dict) -> dict:
    """The fork request's fields, each checked for its type."""
    uid, gid = _ints([request.get("uid"), request.get("gid")], "uid and gid")
    groups = _ints(request.get("groups"), "groups")
    env, argv, cwd = request.get("env"), request.get("argv"), request.get("cwd")
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "=" not in k and "\0" not in k + v
            for k, v in env.items()):
        raise Refused("env must map names to strings")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise Refused("argv must be a list of strings")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise Refused("cwd must be an absolute path")
    procs = request.get("cgroup_procs") or []
    if not isinstance(procs, list) or not all(
            isinstance(p, str) and p.startswith("/sys/fs/cgroup/")
            and p.endswith("/cgroup.procs") and "/../" not in p for p in procs):
        raise Refused("cgroup_procs must be cgroup.procs files under /sys/fs/cgroup")
    for name in IMPORT_TIME_ENV:
        if env.get(name):
            raise Refused(f"{name} is read when the server is imported; start it anew")
    if uid != os.geteuid() and os.geteuid() != 0:
        raise Refused("only root can start a server as another account")
    if uid == 0 and os.geteuid() == 0 and request.get("as_root") is not True:
        raise Refused("a server as root only when asked for (personal mode as root)")
    return {"uid": uid, "gid": gid, "groups": groups, "env": env, "argv": argv, "cwd": cwd,
            "procs": procs}


# --- the child ---------------------------------------------------------------------------

def become(job: dict, out_fd: int, err_fd: int) -> None:
    """Everything before the user's code, in this order (see the module's text)."""
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    pid = str(os.getpid()).encode()
    for path in job["procs"]:  # as root, before the server can do anything
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    uid, gid = job["uid"], job["gid"]
    if os.geteuid() == 0 and uid != 0:
        os.setgroups(job["groups"])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
            raise OSError("the ids did not change")
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise OSError("root came back after setresuid")
        # as after today's exec: the user's own process is the user's (ptrace, /proc); safe
        # because the parent holds nothing of anyone's (WarmParent.fork)
        LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    os.chdir(job["cwd"])  # as the user: a link in a home leads only where they may go
    os.environ.clear()
    os.environ.update(job["env"])
    random.seed()  # from os.urandom: no two children share the parent's state
    sys.argv = list(job["argv"])


def send(connection: socket.socket, answer: dict, fds: list[int] = ()) -> None:
    with contextlib.suppress(OSError):
        socket.send_fds(connection, [json.dumps(answer).encode() + b"\n"], list(fds))


def read_request(connection: socket.socket, fds: int = 0) -> tuple[object, list[int]]:
    """One JSON line (None when it is not one) and the descriptors sent with it."""
    data, received, _flags, _addr = socket.recv_fds(connection, MAX_REQUEST, fds)
    while data and not data.endswith(b"\n") and len(data) < MAX_REQUEST:
        more = connection.recv(MAX_REQUEST)
        if not more:
            break
        data += more
    try:
        return json.loads(data), received
    except ValueError:
        return None, received


def serve_one(connection: socket.socket, singleuser) -> None:
    """In the new child, still root: read and check the request, answer with our pid and
    a pidfd of ourselves, then become the user's server. Never returns."""
    try:
        request, fds = read_request(connection, 2)
        if not isinstance(request, dict) or request.get("op") != "fork":
            raise Refused("a request is one JSON object with op fork")
        job = checked_fork_request(request)
        if len(fds) != 2:
            raise Refused("send the server's stdout and stderr")
        pidfd = os.pidfd_open(os.getpid())  # we are alive: it names no other process
    except (Refused, OSError) as exc:
        send(connection, {"error": str(exc)})
        os._exit(2)
    send(connection, {"pid": os.getpid()}, [pidfd])
    run_child(job, fds, singleuser)


def run_child(job: dict, fds: list[int], singleuser) -> None:
    code = 1
    try:
        become(job, *fds)
        singleuser.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# --- the parent --------------------------------------------------------------------------

class WarmParent:
    def __init__(self, listener: socket.socket, singleuser) -> None:
        self.listener = listener
        self.singleuser = singleuser
        self.exits: dict[int, int] = {}

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exits[pid] = os.waitstatus_to_exitcode(status)
            while len(self.exits) > KEPT_STATUSES:
                del self.exits[next(iter(self.exits))]

    def serve_forever(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        while True:
            ready, _, _ = select.select([self.listener, wake_r], [], [])
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                self.reap()
            if self.listener in ready:
                with contextlib.suppress(OSError):
                    connection, _ = self.listener.accept()
                    with connection:
                        self.answer(connection)

    def answer(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                      struct.calcsize("3i"))
        _pid, peer_uid, _gid = struct.unpack("3i", creds)
        if peer_uid != os.geteuid():
            return  # only the hub's own account (root in system mode) is served
        op = connection.recv(1)  # of a fork request the parent reads nothing more
        if op == OP_FORK:
            self.fork(connection)
        elif op == OP_STATUS:
            request = read_request(connection)[0]
            self.reap()
            pid = request.get("pid") if isinstance(request, dict) else None
            send(connection, {"exit": self.exits.get(pid)})
        elif op == OP_PING:
            send(connection, {"ok": True, "pid": os.getpid()})

    def fork(self, connection: socket.socket) -> None:
        """Fork first, then the child reads the request: no user's environment (their
        token) ever enters this process, whose memory every later child starts with."""
        try:
            pid = os.fork()
        except OSError as exc:
            send(connection, {"error": f"fork failed: {exc}"})
            return
        if pid == 0:
            serve_one(connection, self.singleuser)


def listen(path: str) -> socket.socket:
    folder = os.path.dirname(path)
    info = os.lstat(folder)
    if info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise SystemExit(f"warm parent: {folder} must be ours and 0700")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    return listener


def main() -> None:
    os.umask(0o077)
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -P warmparent.py <socket>")
    parent = os.getppid()
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # go with the hub
    if os.getppid() != parent:
        raise SystemExit(0)
    singleuser = load_singleuser()
    preload()
    gc.collect()
    gc.freeze()  # children share these pages: their collections must not write to them
    listener = listen(sys.argv[1])
    print(f"warm parent {os.getpid()}: ready at {sys.argv[1]} ({sys.prefix})",
          file=sys.stderr, flush=True)
    WarmParent(listener, singleuser).serve_forever()


if __name__ == "__main__":
    main()
