"""`retire`'s facts and the undoing of the files hubkeeper wrote outside its state dir,
through the executor with the same effectors `service uninstall` and `apply` use. The rest
of the removal (accounts, homes, groups, data, state), with its archive check and its
resumable record, is lifecycle/removal.py's."""

from __future__ import annotations

import grp
import logging
import os
import pwd

from hubkeeper.config.loader import LoadedSpec
from hubkeeper.host import site
from hubkeeper.host.running import orphan_proxy, running_hub
from hubkeeper.host.systemd import SystemdHost
from hubkeeper.ops import unit
from hubkeeper.ops.execute import execute
from hubkeeper.ops.site import removal_effectors
from hubkeeper.plan.actions import Action
from hubkeeper.plan.retirement import RetirementFacts, plan_installed_removal
from hubkeeper.plan.unit import removal_problems
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import StatePaths

log = logging.getLogger(__name__)


def _home(name: str, recorded: str | None) -> str | None:
    try:
        home = recorded or pwd.getpwnam(name).pw_dir
    except KeyError:
        return None
    return home if os.path.lexists(home) else None


def retirement_facts(loaded: LoadedSpec, journal: Journal, paths: StatePaths | None,
                     host: SystemdHost) -> RetirementFacts:
    """The machine as retire's planner needs it. Changes nothing."""
    spec = loaded.spec
    accounts, homes = set(), {}
    for name, record in journal.accounts.items():
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        accounts.add(name)
        home = _home(name, record.home)
        if home:
            homes[name] = home
    groups = set()
    for name in journal.groups:
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        groups.add(name)
    envs: tuple[str, ...] = ()
    state = None
    hub_pid = proxy_pid = None
    if paths is not None:
        if paths.envs.is_dir():
            envs = tuple(e.name for e in sorted(paths.envs.iterdir())
                         if e.is_dir() and not e.is_symlink())
        state = str(paths.root) if paths.root.is_dir() else None
        hub_pid = running_hub(paths)
        proxy_pid = None if hub_pid is not None else orphan_proxy(paths, spec.proxy.api_port)
    return RetirementFacts(
        unit=unit.observe(journal, host), site=site.observe(loaded, journal, None),
        nginx_main=spec.nginx.main_config,
        serving=frozenset({spec.nginx.main_config} if spec.hub.url else set()),
        hub_pid=hub_pid, proxy_pid=proxy_pid, accounts=frozenset(accounts), homes=homes,
        groups=frozenset(groups),
        dirs=frozenset(path for path in journal.dirs if os.path.lexists(path)),
        environments=envs, state=state)


def undo_installed(loaded: LoadedSpec, journal: Journal, host: SystemdHost | None = None
                   ) -> tuple[Action, ...]:
    """Disable and remove the hub's systemd units, remove its nginx sites and certbot hooks
    and reload nginx: the inverse actions of what the journal lists, run by the executor.
    A hand-edited file is kept (the planner leaves it out). Returns what was done."""
    host = host or SystemdHost.detect()
    facts = retirement_facts(loaded, journal, None, host)
    for path, problem in removal_problems(facts.unit, journal):
        log.warning("the systemd unit is kept: %s %s", path, problem)
    effectors = {**unit.effectors(journal, host, None, []), **removal_effectors(journal)}
    return execute(plan_installed_removal(journal, facts), effectors, journal)
