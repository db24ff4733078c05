"""The hub as a systemd service, carried out: observe the unit, plan (plan/unit.py), and run
the actions through the executor (`service install | uninstall`, `retire`, `doctor`).

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

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.base.locks import apply_lock
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.host.install import CURRENT, install_of
from hubkeeper.host.preflight import preflight_problems
from hubkeeper.host.running import running_hub
from hubkeeper.host.systemd import SystemdHost
from hubkeeper.ops.execute import Effector, Effectors, execute
from hubkeeper.plan.actions import Action
from hubkeeper.plan.unit import (
    RUNNING,
    UNIT_KIND,
    UnitDesired,
    UnitFacts,
    UnitFile,
    journaled_units,
    plan_unit,
    plan_unit_removal,
    removal_problems,
    unit_state,
)
from hubkeeper.render.systemd import render_unit, unit_name, unit_path, unsafe_for_unit
from hubkeeper.roster import Roster
from hubkeeper.state.installed import (
    current_sha256,
    file_state,
    install_file,
    remove_file,
    sha256_of,
)
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import StatePaths, ensure_layout


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


def hubkeeper_executable(python: Path | None = None) -> Path:
    """The `hubkeeper` command of this installation (beside its Python, in the venv).

    From a versioned install (docs/install.md) it is `<prefix>/current/bin/hubkeeper`, not
    the versioned path this process runs from: the unit then follows `activate`, so an
    upgrade or a rollback needs only a restart, not a new unit. A clone's .venv (or any
    other venv) is named as it is. `python`: the interpreter (default: this process's)."""
    beside = Path(python or sys.executable).parent / "hubkeeper"
    if beside.is_file() and os.access(beside, os.X_OK):
        versioned = install_of(beside)
        if versioned is not None:
            prefix, _ = versioned
            via_current = prefix / CURRENT / "bin" / "hubkeeper"
            if via_current.is_file() and os.access(via_current, os.X_OK):
                return via_current
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


def unit_dir_problems(loaded: LoadedSpec) -> list[Problem]:
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


def path_problems(loaded: LoadedSpec, executable: Path) -> list[Problem]:
    problems = []
    for what, path in (("hub.yaml", loaded.path), ("hubkeeper", executable)):
        why = unsafe_for_unit(str(path))
        if why:
            problems.append(Problem(str(loaded.path), None, None, "",
                                    f"the unit cannot name {what}: {why}"))
    return problems


def rendered(loaded: LoadedSpec) -> bytes | None:
    """The unit hubkeeper would write, or None when it cannot be rendered here."""
    try:
        return render_unit(loaded.spec, loaded.path, hubkeeper_executable()).encode()
    except (HubkeeperError, ValueError):
        return None


def desired(loaded: LoadedSpec, content: bytes | None) -> UnitDesired:
    spec = loaded.spec
    return UnitDesired(unit_name(spec), str(unit_path(spec)),
                       sha256_of(content) if content is not None else None)


def observe(journal: Journal, host: SystemdHost, want: UnitDesired | None = None,
            query: bool = False) -> UnitFacts:
    """The desired unit's file and every journaled one; with `query`, what systemd says of
    the desired unit (where systemd runs)."""
    paths = set(journaled_units(journal)) | ({want.path} if want else set())
    files = {path: UnitFile(path, current_sha256(path), file_state(journal, path).problem)
             for path in sorted(paths)}
    active = enabled = None
    if query and want is not None and host.booted:
        active = host.query("is-active", want.name)
        enabled = host.query("is-enabled", want.name)
    return UnitFacts(files, host.booted, active, enabled)


def unit_plan(loaded: LoadedSpec, journal: Journal, mode: str,
              host: SystemdHost | None = None) -> tuple[Action, ...]:
    """What `service install` would do now (for `plan`): shown in system mode, where the
    hub is meant to run as a service, and wherever a unit was installed."""
    if mode != "system" and not journaled_units(journal):
        return ()
    host = host or SystemdHost.detect()
    want = desired(loaded, rendered(loaded))
    if want.sha256 is None:
        return ()
    return tuple(plan_unit(want, observe(journal, host, want, query=True), journal))


def effectors(journal: Journal, host: SystemdHost, content: bytes | None,
              commands: list[str]) -> Effectors:
    """install-systemd-unit and remove-systemd-unit journal themselves (state/installed.py);
    each systemctl command line run is appended to `commands`."""
    def install(action: Action) -> None:
        assert content is not None
        install_file(journal, action.subject, content, UNIT_KIND, mode=0o644)

    def remove(action: Action) -> None:
        remove_file(journal, action.subject)

    def systemctl(*args: str, check: bool = True) -> None:
        host.systemctl(*args, check=check)
        commands.append("systemctl " + " ".join(args))

    return {
        "install-systemd-unit": Effector(install),
        "remove-systemd-unit": Effector(remove),
        "daemon-reload": Effector(lambda action: systemctl("daemon-reload")),
        "enable-systemd-unit": Effector(lambda action: systemctl("enable", "--now",
                                                                 action.subject)),
        "disable-systemd-unit": Effector(lambda action: systemctl(
            "disable", "--now", action.subject, check=action.detail != "file gone")),
    }


def check_installable(journal: Journal, path: Path) -> None:
    state = file_state(journal, path)
    if state.problem:
        hint = (f"settings of your own belong in a drop-in (`systemctl edit {path.name}`), "
                "which hubkeeper never touches; put the file back as it was, or remove it, "
                "and install again" if str(path) in journal.files else
                "if it is an older hand-made unit for this hub, stop and disable it, move it "
                "away, and install again")
        raise HubkeeperError(f"{path} {state.problem}; nothing was changed", hint=hint)
    others = [key for key in journaled_units(journal) if key != str(path)]
    if others:
        raise HubkeeperError(
            f"hubkeeper installed {', '.join(others)} for this hub before its hub.name or "
            f"service.unit_dir changed; a second unit would start a second hub",
            hint="run `hubkeeper service uninstall` first (it removes every unit hubkeeper "
            "installed for this hub), then install again")


def install_service(loaded: LoadedSpec, roster: Roster, mode: str, paths: StatePaths,
                    host: SystemdHost | None = None) -> ServiceInstall:
    """Write the unit (journaled) and, where systemd runs, enable and start it."""
    executable = hubkeeper_executable()
    problems = preflight_problems(loaded, roster, mode, paths, starting=False)
    problems += unit_dir_problems(loaded) + path_problems(loaded, executable)
    if problems:
        raise InvalidInput(problems)
    host = host or SystemdHost.detect()
    spec = loaded.spec
    name, path = unit_name(spec), unit_path(spec)
    content = render_unit(spec, loaded.path, executable).encode()
    want = desired(loaded, content)

    check_installable(Journal.load(paths.journal), path)
    running = running_hub(paths)
    if host.booted and running is not None and not host.runs_in_unit(running, name):
        raise HubkeeperError(
            f"a hub of {paths.root} already runs outside systemd (pid {running or '?'}, "
            "`hubkeeper up`); systemd would start a second one; nothing was changed",
            hint=f"stop it first (Ctrl-C in its terminal, or kill -TERM {running or '<pid>'}),"
            " then run `hubkeeper service install` again: systemd then runs the hub")

    ensure_layout(paths)
    commands: list[str] = []
    with apply_lock(paths):  # the journal has one writer at a time
        journal = Journal.load(paths.journal)
        check_installable(journal, path)
        facts = observe(journal, host, want, query=True)
        actions = plan_unit(want, facts, journal)
        run = effectors(journal, host, content, commands)
        written = bool(execute([a for a in actions if a.kind == "install-systemd-unit"],
                               run, journal))
    # systemd starts the hub (which may want the lock): outside it
    execute([a for a in actions if a.kind != "install-systemd-unit"], run, journal)
    active = enabled = None
    if host.booted:
        active = host.query("is-active", name)
        enabled = host.query("is-enabled", name)
    return ServiceInstall(
        hub=spec.hub.name, unit=name, path=str(path), config=str(loaded.path),
        written=written, systemd=host.booted, pid1=host.pid1, commands=tuple(commands),
        active=active, enabled=enabled, restart_needed=written and facts.active in RUNNING,
        hub_pid=None if host.booted else running)


def uninstall_service(loaded: LoadedSpec, journal: Journal,
                      host: SystemdHost | None = None) -> ServiceUninstall:
    """Stop, disable and remove every unit hubkeeper installed for this hub (for `service
    uninstall` and `retire`; the caller holds the apply lock). Refuses, before any change,
    when one was changed by hand."""
    host = host or SystemdHost.detect()
    spec = loaded.spec
    name, path = unit_name(spec), unit_path(spec)
    facts = observe(journal, host)
    for key, problem in removal_problems(facts, journal):
        unit = Path(key).name
        raise HubkeeperError(
            f"{key} {problem}; nothing was changed",
            hint=f"to remove it anyway: `systemctl disable --now {unit}`, `rm {key}`, "
            "`systemctl daemon-reload`, then `hubkeeper service uninstall` drops its "
            "journal record")
    ours = journaled_units(journal)
    left_alone = str(path) if str(path) not in ours and current_sha256(path) else None
    commands: list[str] = []
    execute(plan_unit_removal(facts, journal), effectors(journal, host, None, commands),
            journal)
    removed = tuple(key for key in ours if key not in journal.files)
    return ServiceUninstall(hub=spec.hub.name, unit=name, removed=removed,
                            left_alone=left_alone, systemd=host.booted, pid1=host.pid1,
                            commands=tuple(commands))


def service_state(loaded: LoadedSpec, paths: StatePaths, host: SystemdHost | None = None
                  ) -> ServiceState:
    """What the unit file holds and what systemd says of it (changes nothing)."""
    host = host or SystemdHost.detect()
    spec = loaded.spec
    journal = Journal.load(paths.journal)
    want = desired(loaded, rendered(loaded))
    facts = observe(journal, host, want, query=True)
    file, detail = unit_state(want, facts, journal)
    return ServiceState(hub=spec.hub.name, unit=want.name, path=want.path, file=file,
                        detail=detail, systemd=host.booted, pid1=host.pid1,
                        active=facts.active, enabled=facts.enabled,
                        hub_pid=running_hub(paths))
