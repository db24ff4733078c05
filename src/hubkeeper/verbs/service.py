"""`hubkeeper service install | uninstall | status`: the hub as a systemd service. The
engine is ops/unit.py (observe, plan/unit.py, the executor)."""

from __future__ import annotations

import os
from pathlib import Path

from hubkeeper.config.loader import LoadedSpec, load
from hubkeeper.context.runtime import resolve_mode
from hubkeeper.host.systemd import SystemdHost
from hubkeeper.ops import unit
from hubkeeper.ops.execute import apply_lock
from hubkeeper.ops.unit import (
    ServiceInstall,
    ServiceState,
    ServiceUninstall,
    hubkeeper_executable,
    not_running_message,
    uninstall_service,
)
from hubkeeper.roster import build_roster
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import check_not_retired, state_paths

__all__ = ["ServiceInstall", "ServiceState", "ServiceUninstall", "hubkeeper_executable",
           "install", "not_running_message", "service_state", "status", "uninstall",
           "uninstall_service"]


def install(config: Path, host: SystemdHost | None = None) -> ServiceInstall:
    """Write the unit (journaled) and, where systemd runs, enable and start it."""
    loaded = load(config)
    roster = build_roster(loaded)
    is_root = os.geteuid() == 0
    mode = resolve_mode(loaded, is_root)
    paths = state_paths(loaded, is_root)
    check_not_retired(paths)
    return unit.install_service(loaded, roster, mode, paths, host)


def uninstall(config: Path, host: SystemdHost | None = None) -> ServiceUninstall:
    loaded = load(config)
    paths = state_paths(loaded, os.geteuid() == 0)
    if not paths.journal.exists():  # no journal, nothing of ours: create nothing either
        return uninstall_service(loaded, Journal(paths.journal), host)
    with apply_lock(paths):
        return uninstall_service(loaded, Journal.load(paths.journal), host)


def service_state(loaded: LoadedSpec, host: SystemdHost | None = None) -> ServiceState:
    """What the unit file holds and what systemd says of it (changes nothing)."""
    return unit.service_state(loaded, state_paths(loaded, os.geteuid() == 0), host)


def status(config: Path, host: SystemdHost | None = None) -> ServiceState:
    return service_state(load(config), host)
