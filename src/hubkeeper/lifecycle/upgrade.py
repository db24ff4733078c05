"""`hubkeeper upgrade` and `rollback`: a new versioned install beside the old one, the hub
moved onto it, checked by the canary, and every step undone on any failure.

The record `<state>/upgrade.json` (0600) is written atomically before each step and after
it, so an upgrade killed at any point is finished by `upgrade` (each step can run again) or
undone by `rollback`. Steps, in order:

    snapshot   the `snapshot` machinery onto hub.yaml's targets (none: noted, skipped)
    build      <prefix>/<new>/ built side by side (host/install.py), never in place
    announce   the banner on every page (hub/announcement.py) when servers must restart
    stop       the running hub stopped (its servers with it: cleanup_servers)
    database   `jupyterhub upgrade-db` of the new version on a copy; the copy swapped in,
               the old database kept byte for byte in <state>/upgrade/<id>/ (host/hubdb.py)
    activate   <prefix>/current -> <new>
    start      the hub started on the new install (`<new>/bin/hubkeeper up`, detached)
    canary     a real login of hubkeeper's canary user, a server, `1+1` (host/canary.py)

Undo, from whatever the record says was done: the hub stopped, `current` back on the old
install, the kept database put back (checked by its SHA-256), the hub started on the old
version when it ran before, the banner removed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from hubkeeper.base import procs
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic
from hubkeeper.context.hub import Hub
from hubkeeper.host import canary, hubdb
from hubkeeper.host import install as installs
from hubkeeper.host.hubapi import HubAPI, HubUnreachable, fetch
from hubkeeper.host.peer import ListenerRefused
from hubkeeper.host.running import running_hub, stop_hub
from hubkeeper.host.systemd import SystemdHost
from hubkeeper.lifecycle.snapshot import take_snapshot
from hubkeeper.lifecycle.sources import hub_contents
from hubkeeper.render.systemd import unit_name
from hubkeeper.state.statedir import StatePaths

log = logging.getLogger(__name__)

RECORD_SCHEMA = 1
STEPS = ("snapshot", "build", "announce", "stop", "database", "activate", "start", "canary")
START_DEADLINE = 120.0
ANNOUNCEMENT = ("This hub is being upgraded: your server will be stopped in {grace} s and "
                "the hub will be back within a minute or two. Save your work now.")
Progress = Callable[[str], None]


def _silent(line: str) -> None:
    pass


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# ---- the record -----------------------------------------------------------------------------

def read_record(paths: StatePaths) -> dict | None:
    try:
        record = json.loads(paths.upgrade_record.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HubkeeperError(f"cannot read {paths.upgrade_record}: {exc}",
                             hint="move it away only once the hub runs as it should") from None
    if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA:
        raise HubkeeperError(f"{paths.upgrade_record} is not an upgrade record this hubkeeper "
                             "reads", hint="run the hubkeeper that wrote it")
    return record


def save_record(paths: StatePaths, record: dict) -> None:
    record["updated"] = utcnow()
    write_atomic(paths.upgrade_record, (json.dumps(record, indent=2) + "\n").encode(),
                 mode=0o600)


def unfinished(record: dict | None) -> bool:
    return bool(record) and record.get("state") in ("running", "rolling-back")


# ---- the hub: stopped, started detached, ready ----------------------------------------------

def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items()
            if key not in installs.DROPPED_ENV}


def hub_answers(url: str) -> bool:
    try:
        return fetch(url + "hub/api/", what="the hub's proxy", timeout=2.0).status == 200
    except (HubUnreachable, ListenerRefused):
        return False


def start_detached(executable: Path, hub: Hub,
                   spawned: Callable[[int], None] = lambda pid: None) -> int:
    """`<install>/bin/hubkeeper --config hub.yaml up` in a session of its own (it outlives
    us), its output appended to <state>/logs/up.log; `spawned` gets its pid at once (the
    record keeps it: a kill now must not leave an `up` nobody knows of). Returns the pid
    once the hub answers through the proxy, or raises with the log's last lines."""
    paths = hub.paths
    paths.logs.mkdir(parents=True, exist_ok=True)
    output = paths.logs / "up.log"
    with open(output, "ab") as sink:
        offset = sink.tell()
        proc = subprocess.Popen([str(executable), "--config", str(hub.path), "up"],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                cwd=hub.directory, env=_clean_env(), start_new_session=True)
    spawned(proc.pid)
    end = time.monotonic() + START_DEADLINE
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise HubkeeperError(f"the hub on {executable.parent.parent.name} exited with "
                                 f"{proc.returncode} before it answered: "
                                 f"{_tail(output, offset)}", hint=f"see {output}")
        if running_hub(paths) is not None and hub_answers(hub.public_url):
            return proc.pid
        time.sleep(0.3)
    procs.stop(proc.pid, deadline=15.0)  # SIGTERM: `up` stops its hub, then SIGKILL
    raise HubkeeperError(f"the hub on {executable.parent.parent.name} did not answer within "
                         f"{START_DEADLINE:.0f} s: {_tail(output, offset)}", hint=f"see {output}")


def _tail(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-4:])[-600:]


def hub_runner(hub: Hub, host: SystemdHost | None = None) -> str:
    """How the running hub was started, to restart it the same way: `systemd:<unit>` when
    its `up` runs in hubkeeper's unit (`service install`), else `detached` (a `hubkeeper up`
    in a terminal, or none: `upgrade` starts `up` in the background)."""
    pid = running_hub(hub.paths)
    host = host or SystemdHost.detect()
    unit = unit_name(hub.spec)
    if pid and host.booted and host.runs_in_unit(pid, unit):
        return f"systemd:{unit}"
    return "detached"


def running_servers(hub: Hub) -> int | None:
    """How many servers run (None: the hub does not answer)."""
    try:
        users = HubAPI(hub.hub_api_url, hub.read_secret("status-token")).users()
    except (HubkeeperError, HubUnreachable, ListenerRefused, OSError):
        return None
    return sum(len(user.get("servers") or {}) for user in users)


# ---- one upgrade ----------------------------------------------------------------------------

@dataclass
class Upgrade:
    """The steps of one upgrade over its record; `run` does what is not done yet."""

    hub: Hub
    record: dict
    progress: Progress = _silent
    canary_runs: Callable[[Hub], canary.CanaryResult] | None = None
    log_lines: list[str] = field(default_factory=list)

    @property
    def paths(self) -> StatePaths:
        return self.hub.paths

    @property
    def prefix(self) -> Path:
        return Path(self.record["prefix"])

    @property
    def workdir(self) -> Path:
        return self.paths.upgrades / self.record["id"]

    def say(self, line: str) -> None:
        self.log_lines.append(line)
        self.progress(line)

    def run(self) -> None:
        for step in STEPS:
            if step in self.record["done"]:
                continue
            self.record["step"] = step
            save_record(self.paths, self.record)
            getattr(self, f"step_{step}")()
            self.record["done"].append(step)
            save_record(self.paths, self.record)
        self.paths.announcement.unlink(missing_ok=True)
        self.record["state"] = "done"
        self.record["step"] = None
        self.record["finished"] = utcnow()
        save_record(self.paths, self.record)

    def step_snapshot(self) -> None:
        contents = hub_contents(self.hub)
        targets = [Path(t) for t in (self.hub.spec.snapshots.targets or ())]
        if not targets:
            self.record["snapshot"] = None
            self.say("snapshot: hub.yaml names no snapshots.targets; the database is kept by "
                     "the upgrade itself")
            return
        result = take_snapshot(contents, targets)
        self.record["snapshot"] = result.name
        self.say(f"snapshot {result.name} on {len(targets)} target(s)")

    def step_build(self) -> None:
        name = self.record["to"]
        try:
            installs.get(self.prefix, name)
            self.say(f"install {name} is already built")
            return
        except installs.InstallError:
            pass
        self.say(f"building {self.prefix / name}: {' '.join(self.record['requirements'])}")
        built = installs.build(self.prefix, name, self.record["requirements"],
                               python=Path(self.record.get("python") or
                                           installs.DEFAULT_PYTHON))
        self.record["to_versions"] = built.manifest.get("versions", {})

    def step_announce(self) -> None:
        grace = int(self.record.get("grace", 0))
        servers = running_servers(self.hub) if self.record["hub_was_running"] else 0
        if not servers:
            self.say("announce: no server runs; no banner needed")
            return
        write_atomic(self.paths.announcement, ANNOUNCEMENT.format(grace=grace).encode())
        self.say(f"announce: the banner is up for {servers} running server(s); waiting {grace} s")
        time.sleep(grace)

    def step_stop(self) -> None:
        pid = self.stop_the_hub()
        self.say(f"stopped the hub (pid {pid})" if pid is not None else "the hub was not "
                 "running")

    def step_database(self) -> None:
        database = self.paths.database
        kept = self.workdir / "jupyterhub.sqlite.before"
        upgraded = self.workdir / "jupyterhub.sqlite.upgraded"
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        venv = installs.install_path(self.prefix, self.record["to"])
        db = self.record.setdefault("database", {})
        if not database.exists():
            self.say("database: none yet (the hub never started); nothing to upgrade")
            return
        if kept.exists() and hubdb.sha256(database) != db.get("sha256"):
            self.say("database: already replaced by its upgraded copy")
            return
        db["sha256"] = hubdb.sha256(database)
        db["kept"] = str(kept)
        db["from_revision"] = hubdb.revision(database)
        save_record(self.paths, self.record)  # the digest, before anything moves
        db["to_revision"] = hubdb.upgraded_copy(venv, database, upgraded)
        save_record(self.paths, self.record)
        hubdb.replace(database, upgraded, kept)
        db["replaced"] = True
        changed = db["from_revision"] != db["to_revision"]
        self.say(f"database: revision {db['from_revision']} -> {db['to_revision']}"
                 if changed else f"database: revision {db['to_revision']}, unchanged")

    def step_activate(self) -> None:
        previous = installs.activate(self.prefix, self.record["to"])
        self.say(f"{self.prefix / installs.CURRENT} -> {self.record['to']} (was {previous})")

    def _unit(self) -> str | None:
        how = self.record.get("hub_how") or "detached"
        return how.split(":", 1)[1] if how.startswith("systemd:") else None

    def stop_the_hub(self) -> int | None:
        """The hub stopped the way it runs: its unit by systemctl, else its `up` by SIGTERM."""
        unit = self._unit()
        if unit is None:
            return stop_hub(self.paths)
        pid = running_hub(self.paths)
        SystemdHost.detect().systemctl("stop", unit)
        if not procs.wait_until(lambda: running_hub(self.paths) is None, START_DEADLINE):
            raise HubkeeperError(f"`systemctl stop {unit}` returned but the hub still runs")
        return pid

    def start_the_hub(self, venv: Path) -> int:
        """The hub started the way it ran: its unit (which runs <prefix>/current), else
        `<venv>/bin/hubkeeper up` in the background. Returns the `up`'s pid once it answers."""
        unit = self._unit()
        if unit is None:
            return start_detached(venv / "bin" / "hubkeeper", self.hub, self._spawned)
        SystemdHost.detect().systemctl("start", unit)
        if not procs.wait_until(lambda: bool(running_hub(self.paths))
                                and hub_answers(self.hub.public_url), START_DEADLINE):
            raise HubkeeperError(f"the hub of {unit} did not answer within "
                                 f"{START_DEADLINE:.0f} s", hint=f"journalctl -u {unit}")
        return running_hub(self.paths) or 0

    def _spawned(self, pid: int) -> None:
        self.record["start_pid"] = pid
        save_record(self.paths, self.record)

    def _started_up(self) -> int | None:
        """The `up` an earlier (killed) run of a start spawned, while it still runs."""
        pid = self.record.get("start_pid")
        argv = procs.cmdline(pid) if pid else []
        return pid if argv and "up" in argv and any("hubkeeper" in a for a in argv) else None

    def _end_started_up(self) -> None:
        """An `up` spawned by a killed run that may not hold the hub lock yet: it would
        take the hub over later."""
        pid = self._started_up()
        if pid is not None:
            procs.stop(pid, deadline=15.0)

    def step_start(self) -> None:
        venv = installs.install_path(self.prefix, self.record["to"])
        earlier = self._started_up()
        if earlier is not None:  # a killed run's `up`, maybe still starting: let it finish
            end = time.monotonic() + START_DEADLINE
            while (time.monotonic() < end and procs.alive(earlier)
                   and not (running_hub(self.paths) and hub_answers(self.hub.public_url))):
                time.sleep(0.3)
        running = running_hub(self.paths)
        if running:  # a killed upgrade's start: adopt it if it is the new install's
            argv = procs.cmdline(running)
            if argv and argv[0].startswith(str(venv) + "/"):
                end = time.monotonic() + START_DEADLINE
                while time.monotonic() < end and not hub_answers(self.hub.public_url):
                    time.sleep(0.3)
                if hub_answers(self.hub.public_url):
                    self.record["started_pid"] = running
                    self.say(f"the hub answers on {self.record['to']} (pid {running})")
                    return
            self.stop_the_hub()
        pid = self.start_the_hub(venv)
        self.record["started_pid"] = pid
        self.say(f"the hub answers on {self.record['to']} (hubkeeper up, pid {pid})")

    def step_canary(self) -> None:
        runs = self.canary_runs or default_canary
        result = runs(self.hub)
        self.record["canary"] = {"user": result.user, "result": result.result,
                                 "seconds": round(result.seconds, 1)}
        self.say(f"canary: {result.user} logged in, started a server, 1+1 = {result.result}")
        if not self.record["hub_was_running"]:
            self.stop_the_hub()
            self.say("the hub was not running before: stopped again")

    # ---- undo ----

    def undo(self) -> None:
        """Everything done put back; safe to run again after a kill."""
        self.record["state"] = "rolling-back"
        save_record(self.paths, self.record)
        done = set(self.record["done"]) | {self.record.get("step") or ""}
        if done & {"start", "canary", "activate", "database", "stop"}:
            self._end_started_up()
            pid = self.stop_the_hub()
            if pid is not None:
                self.say(f"stopped the hub on the new install (pid {pid})")
        current = installs.current(self.prefix)
        if current is None or current.name != self.record["from"]:
            installs.activate(self.prefix, self.record["from"])
            self.say(f"{self.prefix / installs.CURRENT} -> {self.record['from']} again")
        db = self.record.get("database") or {}
        kept = Path(db["kept"]) if db.get("kept") else None
        if kept is not None and kept.exists():
            hubdb.put_back(self.paths.database, kept, db["sha256"])
            self.say("database: the old one back, byte for byte (SHA-256 checked)")
        if self.record["hub_was_running"] and running_hub(self.paths) is None:
            pid = self.start_the_hub(installs.install_path(self.prefix, self.record["from"]))
            self.say(f"the hub answers on {self.record['from']} again (hubkeeper up, pid {pid})")
        self.paths.announcement.unlink(missing_ok=True)
        self.record["state"] = "rolled-back"
        self.record["finished"] = utcnow()
        save_record(self.paths, self.record)


def default_canary(hub: Hub) -> canary.CanaryResult:
    if hub.mode == "system":
        canary.ensure_account(hub.paths.journal, hub.name)
    return canary.run_canary(hub.hub_api_url, hub.public_url, hub.read_secret("api-token"))


def new_record(hub: Hub, prefix: Path, old: str, new: str, requirements: list[str],
               grace: int, hub_was_running: bool, from_versions: dict) -> dict:
    return {"schema": RECORD_SCHEMA, "id": utcnow(), "state": "running", "step": None,
            "hub_how": hub_runner(hub),
            "done": [], "prefix": str(prefix), "from": old, "to": new,
            "requirements": requirements, "grace": grace, "hub_was_running": hub_was_running,
            "from_versions": from_versions, "config": str(hub.path), "started": utcnow(),
            "error": None}


def fail(upgrade: Upgrade, exc: HubkeeperError) -> None:
    """Record the failed step, then undo; an error while undoing is recorded too."""
    upgrade.record["error"] = {"step": upgrade.record.get("step"), "message": exc.message,
                               "hint": exc.hint}
    save_record(upgrade.paths, upgrade.record)
    try:
        upgrade.undo()
    except HubkeeperError as undo_exc:
        upgrade.record["state"] = "failed"
        upgrade.record["undo_error"] = undo_exc.message
        save_record(upgrade.paths, upgrade.record)
        raise
