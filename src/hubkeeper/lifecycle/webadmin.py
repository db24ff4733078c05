"""What the root helper does for the instructor's page (lifecycle/webhelper.py's admin
requests): who counts as an admin, each action's arguments checked and turned into the
`hubkeeper` command an operator would type, an uploaded roster checked and planned, and the
page's "at a glance".

Nothing a browser sends reaches a shell or a path unchecked: an action is a name from
ACTIONS; a user or group name must pass the roster's policy (and, for lock, unlock and a
password, be on the roster; for prewarm, be a roster group; for a rebuild, an environment
of hub.yaml); the roster is bytes written by root into a file of root's, whose name is its
digest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubkeeper.base import procs
from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.base.files import write_atomic
from hubkeeper.context.hub import Hub
from hubkeeper.host.homesize import homes_of, read_homes
from hubkeeper.host.hubapi import HubAPI, HubUnreachable, fetch
from hubkeeper.host.snapshots import newest_complete
from hubkeeper.lifecycle.userfiles import Refused
from hubkeeper.lifecycle.webjobs import hubkeeper_argv
from hubkeeper.ops.converge import prepare
from hubkeeper.render.schedule import next_start
from hubkeeper.roster.policy import name_problem
from hubkeeper.state.identity import Unbound, journal_account
from hubkeeper.state.snapshot_runs import read_runs

MAX_ROSTER = 1024 * 1024  # bytes of an uploaded roster CSV
UPLOADS = "uploads"


def check_admin(hub: Hub, name: object) -> str:
    """`name`, an active admin of this hub (hub.yaml's users.admins, or made one by the
    identity provider); Refused otherwise. The web service names the user the hub's OAuth
    verified; this is the helper's own second look."""
    if not isinstance(name, str) or name_problem(name) is not None:
        raise Refused("not a user name")
    admins = {member.name for member in hub.roster.active if member.admin}
    if name not in admins:
        raise Refused(f"{name!r} is not an admin of this hub")
    return name


def _roster_user(hub: Hub, name: object, *, on_roster: bool) -> str:
    if not isinstance(name, str) or (why := name_problem(name)) is not None:
        raise Refused(f"not a user name: {why or 'not a string'}")
    if on_roster and name not in hub.roster.by_name():
        raise Refused(f"{name!r} is not on the roster")
    return name


def _group(hub: Hub, name: object) -> str:
    if not isinstance(name, str) or name not in hub.roster.groups:
        raise Refused(f"not a group of the roster: {str(name)[:40]!r}; the groups are "
                      f"{', '.join(hub.roster.groups) or 'none'}")
    return name


def _names(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Refused("groups is a list of names")
    return value


# action -> (its fields, what it becomes on the command line)
Builder = Callable[[Hub, dict[str, Any], Path], list[str]]


def _add(hub: Hub, args: dict[str, Any], _: Path) -> list[str]:
    name = _roster_user(hub, args["name"], on_roster=False)
    if name in hub.roster.by_name():
        raise Refused(f"{name!r} is already on the roster")
    groups = _names(args["groups"])
    for group in groups:
        if (why := name_problem(group, "group name")) is not None:
            raise Refused(why)
    return ["users", "add", name, *[arg for group in groups for arg in ("-g", group)], "--json"]


def _user_verb(verb: str) -> Builder:
    def build(hub: Hub, args: dict[str, Any], _: Path) -> list[str]:
        return ["users", verb, _roster_user(hub, args["name"], on_roster=True), "--json"]
    return build


def _roster(hub: Hub, args: dict[str, Any], uploads: Path) -> list[str]:
    return ["apply", "--roster-csv", str(uploaded(uploads, args["upload"])), "--json"]


def _prewarm(hub: Hub, args: dict[str, Any], _: Path) -> list[str]:
    return ["prewarm", "--group", _group(hub, args["group"]), "--json"]


def _rebuild(hub: Hub, args: dict[str, Any], _: Path) -> list[str]:
    name = args["environment"]
    if not isinstance(name, str) or name not in hub.spec.environments:
        raise Refused(f"not an environment of hub.yaml: {str(name)[:40]!r}")
    return ["env", "rebuild", name, "--json"]


def _archive(hub: Hub, args: dict[str, Any], _: Path) -> list[str]:
    if not hub.spec.archive.dir:
        raise Refused("hub.yaml names no archive.dir to write the archive into")
    return ["archive", "--json"]


ACTIONS: dict[str, tuple[tuple[str, ...], Builder]] = {
    "roster": (("upload",), _roster),
    "add": (("name", "groups"), _add),
    "lock": (("name",), _user_verb("lock")),
    "unlock": (("name",), _user_verb("unlock")),
    "password": (("name",), _user_verb("password")),
    "prewarm": (("group",), _prewarm),
    "snapshot": ((), lambda hub, args, _: ["snapshot", "--json"]),
    "archive": ((), _archive),
    "rebuild": (("environment",), _rebuild),
}


def command_for(hub: Hub, action: object, args: object, uploads: Path) -> list[str]:
    """The hubkeeper arguments of an admin's action; Refused for anything else."""
    if not isinstance(action, str) or action not in ACTIONS:
        raise Refused(f"unknown action {str(action)[:40]!r}; the page's actions are "
                      f"{', '.join(ACTIONS)}")
    fields, build = ACTIONS[action]
    if not isinstance(args, dict) or set(args) != set(fields):
        raise Refused(f"{action} takes exactly {', '.join(fields) or 'nothing'}")
    return build(hub, args, uploads)


def credentials_in(state: Path, file: object) -> list[dict[str, str]]:
    """The rows of a credentials CSV `apply` or `users password` wrote (<state>/credentials/,
    0600), for the admin who ran the action to see once; [] for any other path."""
    import csv as csvlib

    folder = (state / "credentials").resolve()
    if not isinstance(file, str) or Path(file).resolve().parent != folder:
        return []
    try:
        with open(Path(file), newline="") as handle:
            return [dict(row) for row in csvlib.DictReader(handle)]
    except OSError:
        return []


# -- the roster: upload, check, plan ---------------------------------------------------------

def uploaded(uploads: Path, digest: object) -> Path:
    """The uploaded roster named by its digest; Refused for anything else."""
    if not isinstance(digest, str) or len(digest) != 64 or \
            not all(c in "0123456789abcdef" for c in digest):
        raise Refused("not an uploaded roster")
    path = uploads / f"{digest}.csv"
    if not path.is_file():
        raise Refused("that roster was not uploaded (or is gone): upload it again")
    return path


def check_roster(hub: Hub, csv: object, uploads: Path, shown_as: object) -> dict[str, Any]:
    """Keep an uploaded roster (root's, 0600, named by its digest) and check it as
    `plan --roster-csv` would: its problems by line, or what applying it changes."""
    if not isinstance(csv, str) or len(csv.encode()) > MAX_ROSTER:
        raise Refused(f"a roster is text of at most {MAX_ROSTER // 1024} KiB")
    if not isinstance(shown_as, str) or len(shown_as) > 200:
        raise Refused("filename is a short string")
    if not hub.spec.users.roster.csv:
        raise Refused("hub.yaml names no roster CSV (users.roster.csv) to replace; the "
                      "roster is written in hub.yaml")
    data = csv.encode()
    digest = hashlib.sha256(data).hexdigest()
    uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = uploads / f"{digest}.csv"
    write_atomic(path, data, mode=0o600)
    _prune_uploads(uploads)
    try:
        candidate = hub.with_roster_csv(path)
        prepared = prepare(candidate.loaded, candidate.roster, candidate.mode, candidate.paths)
    except InvalidInput as exc:
        return {"upload": digest, "problems": [
            {"line": problem.line, "field": problem.field,
             "message": problem.message.replace(str(path), shown_as or "the CSV"),
             "file": "roster" if problem.file == str(path.resolve()) else problem.file}
            for problem in exc.problems], "hint": exc.hint}
    return {"upload": digest, "problems": [], "users": len(prepared.roster.members),
            "actions": [{"kind": action.kind, "subject": action.subject,
                         "detail": action.detail} for action in prepared.plan.actions],
            "notes": list(prepared.plan.notes)}


def _prune_uploads(uploads: Path, keep_seconds: float = 86400) -> None:
    for entry in uploads.iterdir():
        try:
            if time.time() - entry.stat().st_mtime > keep_seconds:
                entry.unlink()
        except OSError:
            continue


# -- at a glance -----------------------------------------------------------------------------

def _servers(hub: Hub) -> tuple[list[dict[str, Any]], str | None]:
    api = HubAPI(hub.hub_api_url, hub.read_secret("status-token"), timeout=10)
    try:
        users = api.users()
    except (HubUnreachable, HubkeeperError) as exc:
        return [], str(exc)
    rows = []
    for user in sorted(users, key=lambda u: u["name"]):
        server = (user.get("servers") or {}).get("")
        if server is None and not user.get("pending"):
            continue
        state = "running" if server and server.get("ready") else \
            f"waiting: {(server or {}).get('pending') or user.get('pending') or 'start'}"
        rows.append({"name": user["name"], "state": state,
                     "started": (server or {}).get("started"),
                     "last_activity": (server or {}).get("last_activity")})
    return rows, None


def _account_uid(hub: Hub, name: str) -> int | None:
    import pwd

    try:
        account = journal_account(str(hub.paths.journal), name).account
        return pwd.getpwnam(account).pw_uid
    except (Unbound, KeyError, OSError):
        return None


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def live_use(uids: dict[str, int], interval: float = 0.5) -> dict[str, dict[str, float]]:
    """Memory (resident bytes) and CPU (% of one core, over `interval`) of each user's
    processes, from /proc."""
    first = {name: {pid: _cpu_seconds(pid) for pid in procs.processes_of(uid)}
             for name, uid in uids.items()}
    time.sleep(interval)
    use = {}
    for name, uid in uids.items():
        pids = procs.processes_of(uid)
        cpu = sum(_cpu_seconds(pid) - first[name].get(pid, 0.0) for pid in pids)
        use[name] = {"memory": sum(_rss(pid) for pid in pids),
                     "cpu": round(max(0.0, cpu) / interval * 100, 1)}
    return use


def _metrics(hub: Hub) -> dict[str, list[tuple[dict[str, str], float]]]:
    """hubkeeper's and JupyterHub's metrics as the hub serves them (/hub/metrics, with the
    read:metrics token): name -> [(labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = fetch(hub.hub_api_url.rstrip("/") + "/hub/metrics", what="the hub's metrics",
                   headers={"Authorization": f"token {hub.read_secret('metrics-token')}"},
                   timeout=10)
    if answer.status != 200:
        raise HubkeeperError(f"the hub's metrics answered {answer.status}")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _cli_json(hub: Hub, *argv: str) -> tuple[Any, str]:
    """(the JSON result, the messages) of `hubkeeper <argv> --json`, run as root."""
    import json

    done = subprocess.run(hubkeeper_argv(hub.path, [*argv, "--json"]), capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, cwd="/")
    try:
        return json.loads(done.stdout), done.stderr.strip()
    except ValueError:
        return None, done.stderr.strip() or f"exit {done.returncode}"


def _snapshots(hub: Hub, now: float) -> list[dict[str, Any]]:
    runs = read_runs(hub.paths.snapshot_runs)
    rows = []
    for target in hub.spec.snapshots.targets:
        path = hub.relative(target)
        try:
            newest = newest_complete(path)
        except OSError:
            newest = None
        run = runs.get(str(path))
        age = now - newest.timestamp() if newest else None
        failed = run is not None and not run.ok
        rows.append({"target": str(path), "age": age, "failed": failed,
                     "why": getattr(run, "error", None) if failed else None,
                     "stale": failed or age is None or age > 86400})
    return rows


def _next_class(hub: Hub) -> dict[str, str] | None:
    now = dt.datetime.now()
    upcoming = []
    for window in hub.spec.schedule:
        when = next_start({"days": list(window.days), "start": window.start,
                           "end": window.end}, now)
        if when is not None:
            upcoming.append((when, window.group, window.end))
    if not upcoming:
        return None
    when, group, end = min(upcoming)
    return {"group": group, "start": when.strftime("%a %Y-%m-%d %H:%M"), "end": end}


def glance(hub: Hub) -> dict[str, Any]:
    """The instructor's page's first look: servers (with live memory and CPU), the line of
    starts, the next class, disk use per user, snapshots per target, environment builds and
    doctor's findings. Each part that cannot be read says why instead."""
    results: dict[str, Any] = {}

    def in_thread(key: str, *argv: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.__setitem__(key, _cli_json(hub, *argv)))
        thread.start()
        return thread

    threads = [in_thread("doctor", "doctor")]
    if hub.spec.environments:
        threads.append(in_thread("envs", "env", "list"))
    servers, servers_error = _servers(hub)
    uids = {row["name"]: uid for row in servers if row["state"] == "running"
            if (uid := _account_uid(hub, row["name"])) is not None}
    use = live_use(uids) if uids else {}
    for row in servers:
        row.update(use.get(row["name"], {}))
    try:
        metrics, metrics_error = _metrics(hub), None
    except (HubkeeperError, HubUnreachable) as exc:
        metrics, metrics_error = {}, str(exc)
    homes = [(labels.get("user", ""), value)
             for labels, value in metrics.get("hubkeeper_home_bytes", [])]
    free = [(labels.get("path", ""), value)
            for labels, value in metrics.get("hubkeeper_disk_free_bytes", [])]
    if not homes:  # the hub's first reading is not there yet: measure now, once
        sizes, folders = read_homes(homes_of(hub)(), deadline_seconds=2)
        homes = [(user, float(size)) for user, size in sizes.items()]
        free = [(folder, float(size)) for folder, size in sorted(folders.items())]
    homes.sort(key=lambda item: -item[1])
    waiting = sum(value for _, value in metrics.get("hubkeeper_start_queue_waiting", []))
    for thread in threads:
        thread.join(timeout=150)
    doctor, doctor_error = results.get("doctor", (None, "doctor did not answer"))
    envs, envs_error = results.get("envs", ([], None))
    return {
        "roster": [{"name": m.name, "groups": sorted(m.groups), "admin": m.admin,
                    "locked": m.locked} for m in sorted(hub.roster.members,
                                                        key=lambda m: m.name)],
        "groups": list(hub.roster.groups),
        "environment_names": sorted(hub.spec.environments),
        "can_archive": bool(hub.spec.archive.dir),
        "roster_csv": hub.spec.users.roster.csv,
        "servers": servers, "servers_error": servers_error,
        "waiting": waiting, "next_class": _next_class(hub),
        "homes": [{"user": user, "bytes": value} for user, value in homes],
        "free": [{"path": path, "bytes": value} for path, value in free],
        "metrics_error": metrics_error,
        "snapshots": _snapshots(hub, time.time()),
        "environments": envs, "environments_error": envs_error if envs is None else None,
        "doctor": doctor, "doctor_error": doctor_error if doctor is None else None,
    }
