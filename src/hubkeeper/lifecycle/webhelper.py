"""The root helper of the web service: a small, fixed set of requests over a Unix socket.

`hubkeeper up` runs it (in system mode, with `web.enabled`) beside the hub, in threads of its
own process, which is root's. The web service (proc/webpage.py) runs as the unprivileged
web account and asks it for one user's files; the user is the one the hub's OAuth named,
never one taken from a URL or a form. Who may connect: root and the web account, by the
socket's folder (host/helpersock.py) and by SO_PEERCRED on every connection.

The requests (each field checked in lifecycle/userfiles.py, as the CLI checks its input):

    {"op": "snapshots", "user": U}                         the snapshots holding U's home
    {"op": "list", "user": U, "snapshot": S, "path": P}    one folder of U's home in S
    {"op": "read", "user": U, "snapshot": S, "path": P}    one file's bytes (size-capped)
    {"op": "restore", "user": U, "snapshot": S, "path": P, "replace": B}
                                                           back into the home, as U
    {"op": "export", "user": U}                            U's whole work as a zip

and for the instructor's page, from an admin A of the hub (lifecycle/webadmin.py checks A
and each argument; lifecycle/webjobs.py runs the actions):

    {"op": "glance", "admin": A}                           servers, disk, snapshots, ...
    {"op": "roster-check", "admin": A, "csv": C, "filename": F}
                                                           an uploaded roster: problems or plan
    {"op": "start", "admin": A, "action": X, "args": {..}} an action (webadmin.ACTIONS) as a job
    {"op": "job", "admin": A, "id": J}                     one job: state, progress, result
    {"op": "jobs", "admin": A}                             the recent jobs: who, what, when

Anything else (another op, a missing or extra field) is refused. Every request, granted or
refused, is a line of `<state>/logs/web-requests.jsonl`: when, the peer's uid, what, and
the outcome.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.context.hub import Hub
from hubkeeper.host.helpersock import (
    CHUNK,
    MAX_REQUEST,
    read_line,
    send_json,
)
from hubkeeper.host.peer import unix_peer_uid
from hubkeeper.lifecycle import userfiles, webadmin
from hubkeeper.lifecycle.userfiles import Refused
from hubkeeper.lifecycle.webjobs import Job, Jobs
from hubkeeper.state.statedir import StatePaths

log = logging.getLogger(__name__)

# op -> its fields besides "op": exactly these, no more, no fewer
REQUESTS: dict[str, tuple[str, ...]] = {
    "snapshots": ("user",),
    "list": ("user", "snapshot", "path"),
    "read": ("user", "snapshot", "path"),
    "restore": ("user", "snapshot", "path", "replace"),
    "export": ("user",),
    "glance": ("admin",),
    "roster-check": ("admin", "csv", "filename"),
    "start": ("admin", "action", "args"),
    "job": ("admin", "id"),
    "jobs": ("admin",),
}
ADMIN_OPS = frozenset({"glance", "roster-check", "start", "job", "jobs"})
LOG_NAME = "web-requests.jsonl"
MAX_LOG = 16 * 2**20  # bytes; then it becomes web-requests.jsonl.1 and a new one begins


def check_request(request: object) -> dict[str, Any]:
    """The request if its shape is one of REQUESTS; Refused otherwise."""
    if not isinstance(request, dict):
        raise Refused("a request is a JSON object")
    op = request.get("op")
    if not isinstance(op, str) or op not in REQUESTS:
        raise Refused(f"unknown request {str(op)[:40]!r}; the helper answers only "
                      f"{', '.join(REQUESTS)}")
    if set(request) != {"op", *REQUESTS[op]}:
        raise Refused(f"{op} takes exactly {', '.join(REQUESTS[op])}")
    return request


class RequestLog:
    """`<state>/logs/web-requests.jsonl`, 0600, one JSON line per request; past MAX_LOG it
    is renamed `.1` (replacing the one before), so it never fills the disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> None:
        fields = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  **fields}
        line = json.dumps(fields, default=str) + "\n"
        with self._lock:
            with contextlib.suppress(FileNotFoundError):  # one older file kept beside it
                if os.lstat(self.path).st_size > MAX_LOG:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)


class Helper:
    """What one connection is answered with; `open_hub` opens the hub afresh for each
    request (a roster changed by `apply` counts at once)."""

    def __init__(self, open_hub: Callable[[], Hub], allowed: frozenset[int],
                 requests: RequestLog, max_read: int, jobs: Jobs, uploads: Path) -> None:
        self.open_hub, self.allowed, self.log, self.max_read = \
            open_hub, allowed, requests, max_read
        self.jobs, self.uploads = jobs, uploads

    def serve(self, sock: socket.socket) -> None:
        uid = unix_peer_uid(sock)
        record: dict[str, Any] = {"peer_uid": uid}
        try:
            if uid not in self.allowed:
                raise Refused(f"uid {uid} may not use the helper")
            try:
                request = json.loads(read_line(sock, MAX_REQUEST)[0])
            except ValueError as exc:
                raise Refused(f"malformed request: {exc}") from None
            request = check_request(request)
            record.update(_logged(request), op=request["op"])
            hub = self.open_hub()
            if request["op"] in ADMIN_OPS:
                webadmin.check_admin(hub, request["admin"])
                self.answer_admin(sock, hub, request)
            else:
                self.answer(sock, hub, request)
            self.log.record(**record, ok=True)
        except HubkeeperError as exc:
            self.log.record(**record, ok=False, error=exc.message)
            log.warning("web helper refused %s: %s", record, exc.message)
            with contextlib.suppress(OSError):
                send_json(sock, {"ok": False, "error": exc.message})
        except OSError as exc:  # the web service left mid-answer
            self.log.record(**record, ok=False, error=f"connection: {exc}")
        except Exception as exc:
            log.exception("web helper failed on %s", record)
            self.log.record(**record, ok=False, error=f"internal error: {exc!r}")
            with contextlib.suppress(OSError):
                send_json(sock, {"ok": False, "error": "internal error (see the hub's log)"})

    def answer(self, sock: socket.socket, hub: Hub, request: dict[str, Any]) -> None:
        op, user = request["op"], request["user"]
        userfiles.check_user(hub, user)
        if op == "snapshots":
            found = userfiles.snapshots(hub, user)
            send_json(sock, {"ok": True, "snapshots": [asdict(s) for s in found]})
        elif op == "list":
            entries = userfiles.list_folder(hub, user, request["snapshot"], request["path"])
            send_json(sock, {"ok": True, "entries": [asdict(e) for e in entries]})
        elif op == "read":
            with userfiles.open_file(hub, user, request["snapshot"], request["path"],
                                     self.max_read) as (handle, size):
                send_json(sock, {"ok": True, "size": size})
                _send_bytes(sock, handle, size)
        elif op == "restore":
            restored = userfiles.restore(hub, user, request["snapshot"], request["path"],
                                         request["replace"])
            home = userfiles.check_user(hub, user).path
            send_json(sock, {"ok": True, "files": restored.files,
                             "written": os.path.relpath(restored.destination, home)})
        elif op == "export":
            with userfiles.export_zip(hub, user) as (handle, size):
                send_json(sock, {"ok": True, "size": size})
                _send_bytes(sock, handle, size)


    def answer_admin(self, sock: socket.socket, hub: Hub, request: dict[str, Any]) -> None:
        op, admin = request["op"], request["admin"]
        if op == "glance":
            send_json(sock, {"ok": True, **webadmin.glance(hub)})
        elif op == "roster-check":
            send_json(sock, {"ok": True, **webadmin.check_roster(
                hub, request["csv"], self.uploads, request["filename"])})
        elif op == "start":
            argv = webadmin.command_for(hub, request["action"], request["args"], self.uploads)
            job = self.jobs.start(request["action"], argv, admin)
            log.info("%s started %s: %s", admin, job.action, job.command)
            send_json(sock, {"ok": True, "job": _job_view(self.jobs, job, hub)})
        elif op == "job":
            job = self.jobs.get(request["id"] if isinstance(request["id"], str) else "")
            send_json(sock, {"ok": True, "job": _job_view(self.jobs, job, hub)})
        elif op == "jobs":
            send_json(sock, {"ok": True, "jobs": [asdict(job) | {"command": job.command}
                                                  for job in self.jobs.list()]})


def _job_view(jobs: Jobs, job: Job, hub: Hub) -> dict[str, Any]:
    """A job as the page shows it: its record, its command and its messages; the passwords
    it generated (apply's new accounts, users password), read from the 0600 file the
    command wrote them to."""
    view = asdict(job) | {"command": job.command, "messages": jobs.messages(job)}
    result = job.result if isinstance(job.result, dict) else {}
    written = result.get("credentials") or result.get("file")
    view["credentials"] = webadmin.credentials_in(hub.paths.root, written) \
        if job.state == "done" else []
    return view


def _logged(request: dict[str, Any]) -> dict[str, Any]:
    """The request's fields for the log; an uploaded roster by its digest and size only
    (it may hold passwords)."""
    fields = {key: request[key] for key in REQUESTS[request["op"]]}
    if request["op"] == "roster-check" and isinstance(fields["csv"], str):
        data = fields.pop("csv").encode()
        fields["csv_sha256"], fields["csv_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    return fields


def _send_bytes(sock: socket.socket, handle: Any, size: int) -> None:
    """Exactly `size` bytes of `handle` (padded with zeros if it shrank: the size is sent)."""
    left = size
    while left > 0:
        chunk = handle.read(min(CHUNK, left)) or b"\0" * min(CHUNK, left)
        sock.sendall(chunk)
        left -= len(chunk)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    helper: Helper

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(600)
        self.helper.serve(request)


def prepare_folder(paths: StatePaths, web_gid: int) -> Path:
    """`<state>/web`, root's, group `web_gid`, 0750 (re-made if it is anything else), with
    no old socket in it; the socket's path."""
    folder = paths.web
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise HubkeeperError(f"{folder} is not a folder of root's",
                                 hint="remove it; `hubkeeper up` makes it")
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chown(folder, os.geteuid(), web_gid)
    os.chmod(folder, 0o750)
    path = paths.helper_socket
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return path


class RunningHelper:
    """The helper serving in a thread until `close()`."""

    def __init__(self, server: _Server, thread: threading.Thread, path: Path) -> None:
        self.server, self.thread, self.path = server, thread, path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def start_helper(open_hub: Callable[[], Hub], paths: StatePaths, web_uid: int, web_gid: int,
                 max_read: int) -> RunningHelper:
    """Listen on `<state>/web/helper.sock` for root and `web_uid`; serve in a thread."""
    path = prepare_folder(paths, web_gid)
    config = open_hub().path
    helper = Helper(open_hub, frozenset({0, os.geteuid(), web_uid}),
                    RequestLog(paths.logs / LOG_NAME), max_read,
                    Jobs(paths.web / "jobs", config), paths.web / webadmin.UPLOADS)
    server = _Server(os.fspath(path), socketserver.BaseRequestHandler)
    server.helper = helper
    os.chown(path, os.geteuid(), web_gid)
    os.chmod(path, 0o660)
    thread = threading.Thread(target=server.serve_forever, name="web-helper", daemon=True)
    thread.start()
    log.info("web helper listening on %s (root and uid %s)", path, web_uid)
    return RunningHelper(server, thread, path)
