"""`hubkeeper upgrade [--to REQUIREMENT ...] [--plan]` and `hubkeeper rollback`.

The plan resolves the new install's versions with `pip install --dry-run --report` (nothing
installed) and compares them with the current install's manifest; the upgrade itself and its
undo are lifecycle/upgrade.py's steps over the record <state>/upgrade.json.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import PidLock
from hubkeeper.context.hub import Hub
from hubkeeper.host import hubdb
from hubkeeper.host import install as installs
from hubkeeper.host.running import running_hub
from hubkeeper.lifecycle import upgrade as steps
from hubkeeper.state.statedir import STATE_SCHEMA, StatePaths

SHOWN = ("hubkeeper", "jupyterhub", "jupyterlab", "jupyter-server", "configurable-http-proxy",
         "oauthenticator", "jupyterhub-nativeauthenticator", "jupyterhub-ldapauthenticator",
         "jupyterhub-ltiauthenticator", "jupyterhub-idle-culler", "sqlalchemy", "alembic")
DEFAULT_REQUIREMENTS = ("hubkeeper",)


def upgrade_lock(paths: StatePaths) -> PidLock:
    """One upgrade or rollback at a time; not apply's lock, which the hub it starts may take
    (`up` migrates the state dir under it)."""
    return PidLock(paths.run / "upgrade.lock", "another `hubkeeper upgrade` or `rollback` is "
                   "running on this hub", hint="wait for it to finish")


@dataclass(frozen=True)
class Change:
    package: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class UpgradePlan:
    hub: str
    prefix: str
    current: str
    target: str  # the new install's name
    requirements: tuple[str, ...]
    changes: tuple[Change, ...]  # only what differs
    database_revision: str | None
    database_head: str | None  # the revision the new JupyterHub runs on (None: unknown)
    schema_may_change: bool  # the new JupyterHub's head differs (or is unknown): upgrade-db
    # runs on a copy
    state_schema: int
    hub_running: bool
    servers_running: int | None
    servers_restart: bool
    downtime: str
    unfinished: str | None  # an earlier upgrade the record says did not finish


@dataclass(frozen=True)
class UpgradeResult:
    hub: str
    ok: bool
    state: str  # done | rolled-back | failed
    current: str
    target: str
    steps: tuple[str, ...]  # what was said, in order
    failed_step: str | None
    error: str | None
    record: str


def _this_install(prefix: Path | None) -> tuple[Path, installs.Installed]:
    found = installs.install_of(Path(sys.executable).parent / "hubkeeper")
    if prefix is not None:
        current = installs.current(prefix)
        if current is None:
            raise HubkeeperError(f"{prefix} has no current install",
                                 hint="docs/install.md: build and activate one first")
        return prefix, current
    if found is None:
        raise HubkeeperError(
            "this hubkeeper is not a versioned install (a clone's venv or a pip install): "
            "upgrade moves a hub between installs under a prefix",
            hint="install hubkeeper as docs/install.md says (/opt/hubkeeper/<version>), or "
            "upgrade a clone with git pull and ./run setup")
    return found


def resolve(venv: Path, requirements: tuple[str, ...]) -> dict[str, str]:
    """The versions a fresh install of `requirements` would get: pip's resolver, dry run."""
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet",
         "--ignore-installed", "--disable-pip-version-check", "--report", "-", *requirements],
        capture_output=True, text=True, timeout=600, cwd="/")
    if done.returncode != 0:
        raise HubkeeperError(f"pip cannot resolve {' '.join(requirements)}: "
                             f"{done.stderr.strip()[-600:]}",
                             hint="check the requirements (a version that exists, a wheel "
                             "path that exists); nothing was changed")
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise HubkeeperError(f"pip's report is not JSON: {done.stdout[-300:]}") from None
    return {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower():
            item["metadata"]["version"] for item in report.get("install", [])}


def new_database_head(venv: Path, jupyterhub: str) -> str | None:
    """The database revision JupyterHub `jupyterhub` runs on, read from its wheel (pip
    download, no install); None when it cannot be fetched or read: the plan then says the
    schema may change."""
    with tempfile.TemporaryDirectory(prefix="hubkeeper-plan-") as work:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary", ":all:", "--disable-pip-version-check", "--dest", work,
             f"jupyterhub=={jupyterhub}"], capture_output=True, text=True, timeout=600,
            cwd="/")
        wheels = list(Path(work).glob("jupyterhub-*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            return None
        return hubdb.head_in_wheel(wheels[0])


def default_name(versions: dict[str, str]) -> str:
    hub = versions.get("hubkeeper", "unknown")
    jupyterhub = versions.get("jupyterhub")
    return f"{hub}-jupyterhub{jupyterhub}" if jupyterhub else hub


def plan(hub: Hub, requirements: tuple[str, ...] = (), name: str | None = None,
         prefix: Path | None = None) -> UpgradePlan:
    """What an upgrade would change; changes nothing."""
    requirements = requirements or DEFAULT_REQUIREMENTS
    prefix, current = _this_install(prefix)
    new = resolve(current.path, requirements)
    old = current.manifest.get("packages") or current.manifest.get("versions", {})
    changes = tuple(Change(key, old.get(key), new.get(key)) for key in SHOWN
                    if old.get(key) != new.get(key) and (old.get(key) or new.get(key)))
    target = name or default_name(new)
    installs.check_name(target)
    running = running_hub(hub.paths) is not None
    servers = steps.running_servers(hub) if running else 0
    record = steps.read_record(hub.paths)
    database = hubdb.revision(hub.paths.database)
    jupyterhub_changes = old.get("jupyterhub") != new.get("jupyterhub")
    head = database
    if jupyterhub_changes and new.get("jupyterhub"):
        head = new_database_head(current.path, new["jupyterhub"])
    return UpgradePlan(
        hub=hub.name, prefix=str(prefix), current=current.name, target=target,
        requirements=requirements, changes=changes,
        database_revision=database, database_head=head,
        schema_may_change=jupyterhub_changes and (head is None or head != database),
        state_schema=STATE_SCHEMA, hub_running=running, servers_running=servers,
        servers_restart=bool(servers),
        downtime=("the hub is down from its stop until the new one answers: the database "
                  "upgrade plus a start, usually under a minute" if running else
                  "none: the hub is not running (it is started for the canary, then stopped)"),
        unfinished=record["id"] if steps.unfinished(record) else None)


def upgrade(hub: Hub, requirements: tuple[str, ...] = (), name: str | None = None,
            grace: int = 60, prefix: Path | None = None,
            progress: steps.Progress = steps._silent) -> UpgradeResult:
    """Finish an unfinished upgrade, or plan and run a new one; any failure is undone."""
    with upgrade_lock(hub.paths):
        record = steps.read_record(hub.paths)
        if steps.unfinished(record):
            assert record is not None
            progress(f"finishing the upgrade {record['id']} ({record['from']} -> "
                     f"{record['to']}) that did not finish")
            if record["state"] == "rolling-back":
                return _undo(hub, record, progress)
            return _run(steps.Upgrade(hub, record, progress))
        planned = plan(hub, requirements, name, prefix)
        if planned.target == planned.current:
            raise HubkeeperError(f"{planned.target} is already the current install",
                                 hint="name another version with --to (or --name)")
        current = installs.get(Path(planned.prefix), planned.current)
        record = steps.new_record(hub, Path(planned.prefix), planned.current, planned.target,
                                  list(planned.requirements), grace, planned.hub_running,
                                  current.manifest.get("versions", {}))
        steps.save_record(hub.paths, record)
        return _run(steps.Upgrade(hub, record, progress))


def rollback(hub: Hub, progress: steps.Progress = steps._silent) -> UpgradeResult:
    """Undo the last upgrade (finished or not): the old install current, the old database,
    the hub on the old version if it ran before."""
    with upgrade_lock(hub.paths):
        record = steps.read_record(hub.paths)
        if record is None:
            raise HubkeeperError(f"no upgrade to roll back ({hub.paths.upgrade_record} does "
                                 "not exist)")
        if record["state"] == "rolled-back":
            raise HubkeeperError(f"the upgrade {record['id']} was already rolled back; "
                                 f"{record['from']} is current")
        return _undo(hub, record, progress)


def _undo(hub: Hub, record: dict, progress: steps.Progress) -> UpgradeResult:
    upgrade = steps.Upgrade(hub, record, progress)
    upgrade.undo()
    return _result(upgrade)


def _run(upgrade: steps.Upgrade) -> UpgradeResult:
    try:
        upgrade.run()
    except HubkeeperError as exc:
        steps.fail(upgrade, exc)
    except Exception as exc:  # an upgrade half done must be undone whatever broke
        steps.fail(upgrade, HubkeeperError(f"{type(exc).__name__}: {exc}"))
    return _result(upgrade)


def _result(upgrade: steps.Upgrade) -> UpgradeResult:
    record = upgrade.record
    error = record.get("error") or {}
    current = installs.current(upgrade.prefix)
    return UpgradeResult(
        hub=upgrade.hub.name, ok=record["state"] == "done", state=record["state"],
        current=current.name if current else "", target=record["to"],
        steps=tuple(upgrade.log_lines), failed_step=error.get("step"),
        error=error.get("message"), record=str(upgrade.paths.upgrade_record))
