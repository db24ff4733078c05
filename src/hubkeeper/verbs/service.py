"""`hubkeeper service install | uninstall | status`: the hub as a systemd service.

The unit file is journaled like every file hubkeeper writes outside its state dir, so that a
file someone else wrote, or one changed by hand, is never replaced or removed. Where systemd
is not PID 1 the unit is written and the operator is told plainly that nothing started it.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.locks import apply_lock
from hubkeeper.config.loader import LoadedSpec, load
from hubkeeper.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.host.installed import (
    current_sha256,
    file_state,
    install_file,
    remove_file,
    sha256_of,
)
from hubkeeper.host.journal import Journal
from hubkeeper.host.preflight import preflight_problems
from hubkeeper.host.statedir import (
    check_not_retired,
    ensure_layout,
    state_paths,
)
from hubkeeper.host.systemd import SystemdHost, render_unit, unit_name, unit_path, unsafe_for_unit
from hubkeeper.hub.runtime import resolve_mode
from hubkeeper.lifecycle.removal import running_hub
from hubkeeper.roster import build_roster

UNIT_KIND = "systemd-unit"
RUNNING = ("active", "activating", "reloading")


@dataclass(frozen=True)
class ServiceState:
    """The hub's unit on this machine, for `service status` and `doctor`."""

    hub: str
    unit: str
    path: str
    file: str  # absent | installed | outdated | hand-edited | foreign | missing
    detail: str  # one sentence on `file`, with what to do
    systemd: bool  # systemd is PID 1 here
    pid1: str
    active: str | None  # `systemctl is-active`; None without systemd
    enabled: str | None  # `systemctl is-enabled`; None without systemd
    hub_pid: int | None  # a hub of this state dir runs (holds the hub lock); 0: pid unknown


@dataclass(frozen=True)
class ServiceInstall:
    hub: str
    unit: str
    path: str
    config: str
    written: bool  # False: the file already held what hubkeeper writes
    systemd: bool
    pid1: str
    commands: tuple[str, ...]  # the systemctl command lines run, in order
    active: str | None
    enabled: str | None
    restart_needed: bool  # the unit changed under a running hub, which keeps the old one
    hub_pid: int | None  # a hub already runs outside systemd (systemd not PID 1)


@dataclass(frozen=True)
class ServiceUninstall:
    hub: str
    unit: str
    removed: tuple[str, ...]  # unit files removed (their journal records too)
    left_alone: str | None  # a file at the unit's path that is not hubkeeper's
    systemd: bool
    pid1: str
    commands: tuple[str, ...]


def hubkeeper_executable() -> Path:
    """The `hubkeeper` command of this installation (beside its Python, in the venv)."""
    beside = Path(sys.executable).parent / "hubkeeper"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("hubkeeper")
    if found:
        return Path(found).absolute()
    raise HubkeeperError(
        f"cannot find the hubkeeper command beside {sys.executable} or on PATH; the unit "
        "must name it", hint="run hubkeeper from the venv it is installed in (./run setup)")


def not_running_message(pid1: str) -> str:
    return (f"systemd is not running on this machine (PID 1 is {pid1}): the unit is written "
            "but not enabled or started; start the hub with `hubkeeper up`")


def _unit_dir_problems(loaded: LoadedSpec) -> list[Problem]:
    """The unit directory exists and is writable, or can be made."""
    directory = Path(loaded.spec.service.unit_dir)
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = ("service", "unit_dir")
    if not existing.is_dir():
        return [loaded.problem(where, f"{existing} is not a directory, so {directory} cannot "
                               "hold the unit")]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [loaded.problem(where, f"{existing} is not writable by this account; install "
                               "the service as root")]
    return []


def _path_problems(loaded: LoadedSpec, executable: Path) -> list[Problem]:
    problems = []
    for what, path in (("hub.yaml", loaded.path), ("hubkeeper", executable)):
        why = unsafe_for_unit(str(path))
        if why:
            problems.append(Problem(str(loaded.path), None, None, "",
                                    f"the unit cannot name {what}: {why}"))
    return problems


def _expected(loaded: LoadedSpec) -> bytes | None:
    try:
        return render_unit(loaded.spec, loaded.path, hubkeeper_executable()).encode()
    except (HubkeeperError, ValueError):
        return None


def _other_units(journal: Journal, path: Path) -> list[str]:
    return sorted(key for key, record in journal.files.items()
                  if record.kind == UNIT_KIND and key != str(path))


def install(config: Path, host: SystemdHost | None = None) -> ServiceInstall:
    """Write the unit (journaled) and, where systemd runs, enable and start it."""
    loaded = load(config)
    roster = build_roster(loaded)
    is_root = os.geteuid() == 0
    mode = resolve_mode(loaded, is_root)
    paths = state_paths(loaded, is_root)
    check_not_retired(paths)
    executable = hubkeeper_executable()
    problems = preflight_problems(loaded, roster, mode, paths, starting=False)
    problems += _unit_dir_problems(loaded) + _path_problems(loaded, executable)
    if problems:
        raise InvalidInput(problems)
    host = host or SystemdHost.detect()
    spec = loaded.spec
    name, path = unit_name(spec), unit_path(spec)
    content = render_unit(spec, loaded.path, executable).encode()

    _check_installable(Journal.load(paths.journal), path)
    running = running_hub(paths)
    if host.booted and running is not None and not host.runs_in_unit(running, name):
        raise HubkeeperError(
            f"a hub of {paths.root} already runs outside systemd (pid {running or '?'}, "
            "`hubkeeper up`); systemd would start a second one; nothing was changed",
            hint=f"stop it first (Ctrl-C in its terminal, or kill -TERM {running or '<pid>'}),"
            " then run `hubkeeper service install` again: systemd then runs the hub")

    ensure_layout(paths)
    with apply_lock(paths):  # the journal has one writer at a time
        journal = Journal.load(paths.journal)
        _check_installable(journal, path)
        written = install_file(journal, path, content, UNIT_KIND, mode=0o644)

    commands: list[str] = []
    active = enabled = None
    restart_needed = False
    if host.booted:
        was_active = host.query("is-active", name)
        was_enabled = host.query("is-enabled", name)
        if written:
            host.systemctl("daemon-reload")
            commands.append("systemctl daemon-reload")
        if written or was_enabled != "enabled" or was_active not in RUNNING:
            host.systemctl("enable", "--now", name)
            commands.append(f"systemctl enable --now {name}")
        active = host.query("is-active", name)
        enabled = host.query("is-enabled", name)
        restart_needed = written and was_active in RUNNING
    return ServiceInstall(
        hub=spec.hub.name, unit=name, path=str(path), config=str(loaded.path),
        written=written, systemd=host.booted, pid1=host.pid1, commands=tuple(commands),
        active=active, enabled=enabled, restart_needed=restart_needed,
        hub_pid=None if host.booted else running)


def _check_installable(journal: Journal, path: Path) -> None:
    state = file_state(journal, path)
    if state.problem:
        hint = (f"settings of your own belong in a drop-in (`systemctl edit {path.name}`), "
                "which hubkeeper never touches; put the file back as it was, or remove it, "
                "and install again" if str(path) in journal.files else
                "if it is an older hand-made unit for this hub, stop and disable it, move it "
                "away, and install again")
        raise HubkeeperError(f"{path} {state.problem}; nothing was changed", hint=hint)
    others = _other_units(journal, path)
    if others:
        raise HubkeeperError(
            f"hubkeeper installed {', '.join(others)} for this hub before its hub.name or "
            f"service.unit_dir changed; a second unit would start a second hub",
            hint="run `hubkeeper service uninstall` first (it removes every unit hubkeeper "
            "installed for this hub), then install again")


def uninstall_service(loaded: LoadedSpec, journal: Journal,
                      host: SystemdHost | None = None) -> ServiceUninstall:
    """Stop, disable and remove every unit hubkeeper installed for this hub (for `service
    uninstall` and `retire`; the caller holds the apply lock). Refuses, before any change,
    when one was changed by hand."""
    host = host or SystemdHost.detect()
    spec = loaded.spec
    name, path = unit_name(spec), unit_path(spec)
    ours = sorted(key for key, record in journal.files.items() if record.kind == UNIT_KIND)
    for key in ours:
        state = file_state(journal, key)
        if state.problem:
            unit = Path(key).name
            raise HubkeeperError(
                f"{key} {state.problem}; nothing was changed",
                hint=f"to remove it anyway: `systemctl disable --now {unit}`, `rm {key}`, "
                "`systemctl daemon-reload`, then `hubkeeper service uninstall` drops its "
                "journal record")
    left_alone = str(path) if str(path) not in ours and current_sha256(path) else None
    commands: list[str] = []
    if host.booted:
        for key in ours:
            unit = Path(key).name
            # A file deleted by hand may still be loaded: try, and let a failure pass.
            host.systemctl("disable", "--now", unit, check=Path(key).exists())
            commands.append(f"systemctl disable --now {unit}")
    removed = tuple(key for key in ours if remove_file(journal, key))
    if host.booted and ours:
        host.systemctl("daemon-reload")
        commands.append("systemctl daemon-reload")
    return ServiceUninstall(hub=spec.hub.name, unit=name, removed=removed,
                            left_alone=left_alone, systemd=host.booted, pid1=host.pid1,
                            commands=tuple(commands))


def uninstall(config: Path, host: SystemdHost | None = None) -> ServiceUninstall:
    loaded = load(config)
    paths = state_paths(loaded, os.geteuid() == 0)
    if not paths.journal.exists():  # no journal, nothing of ours: create nothing either
        return uninstall_service(loaded, Journal(paths.journal), host)
    with apply_lock(paths):
        return uninstall_service(loaded, Journal.load(paths.journal), host)


def service_state(loaded: LoadedSpec, host: SystemdHost | None = None) -> ServiceState:
    """What the unit file holds and what systemd says of it (changes nothing)."""
    host = host or SystemdHost.detect()
    spec = loaded.spec
    name, path = unit_name(spec), unit_path(spec)
    paths = state_paths(loaded, os.geteuid() == 0)
    journal = Journal.load(paths.journal)
    record = journal.files.get(str(path))
    found = current_sha256(path)
    if record is None and found is None:
        file, detail = "absent", "not installed: `hubkeeper service install` writes it"
    elif record is None:
        file, detail = "foreign", ("exists and was not written by hubkeeper (it is not in "
                                   "the journal); hubkeeper leaves it alone")
    elif found is None:
        file, detail = "missing", ("hubkeeper wrote it but it was deleted; `hubkeeper "
                                   "service install` writes it again")
    elif found != record.sha256 and record.state != "creating":
        file, detail = "hand-edited", ("was changed by hand since hubkeeper wrote it; "
                                       "hubkeeper leaves it alone")
    else:
        expected = _expected(loaded)
        if expected is not None and sha256_of(expected) != found:
            file, detail = "outdated", ("as hubkeeper wrote it, but hub.yaml (or hubkeeper's "
                                        "place) changed since: `hubkeeper service install`")
        else:
            file, detail = "installed", "as hubkeeper writes it"
    active = enabled = None
    if host.booted:
        active = host.query("is-active", name)
        enabled = host.query("is-enabled", name)
    return ServiceState(hub=spec.hub.name, unit=name, path=str(path), file=file,
                        detail=detail, systemd=host.booted, pid1=host.pid1, active=active,
                        enabled=enabled, hub_pid=running_hub(paths))


def status(config: Path, host: SystemdHost | None = None) -> ServiceState:
    return service_state(load(config), host)
