"""`hubkeeper service install | uninstall | status`: the hub as a systemd service. The
engine is ops/unit.py (observe, plan/unit.py, the executor)."""

from __future__ import annotations

from hubkeeper.base.locks import apply_lock
from hubkeeper.context.hub import Hub
from hubkeeper.host.systemd import SystemdHost
from hubkeeper.ops import unit
from hubkeeper.ops.unit import (
    ServiceInstall,
    ServiceState,
    ServiceUninstall,
    hubkeeper_executable,
    not_running_message,
    uninstall_service,
)
from hubkeeper.state.journal import Journal

__all__ = ["ServiceInstall", "ServiceState", "ServiceUninstall", "hubkeeper_executable",
           "install", "not_running_message", "status", "uninstall"]


def install(hub: Hub, host: SystemdHost | None = None) -> ServiceInstall:
    """Write the unit (journaled) and, where systemd runs, enable and start it."""
    hub.resolved()
    hub.check_not_retired()
    return unit.install_service(hub.loaded, hub.roster, hub.mode, hub.paths, host)


def uninstall(hub: Hub, host: SystemdHost | None = None) -> ServiceUninstall:
    paths = hub.paths
    if not paths.journal.exists():  # no journal, nothing of ours: create nothing either
        return uninstall_service(hub.loaded, Journal(paths.journal), host)
    with apply_lock(paths):
        return uninstall_service(hub.loaded, hub.load_journal(), host)


def status(hub: Hub, host: SystemdHost | None = None) -> ServiceState:
    """What the unit file holds and what systemd says of it (changes nothing)."""
    return unit.service_state(hub.loaded, hub.paths, host)
