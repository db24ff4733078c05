"""`retire`'s facts and the undoing of the files hubkeeper wrote outside its state dir,
through the executor with the same effectors `service uninstall` and `apply` use. The rest
of the removal (accounts, homes, groups, data, state), with its archive check and its
resumable record, is lifecycle/removal.py's."""

from __future__ import annotations

import logging

from hubkeeper.config.loader import LoadedSpec
from hubkeeper.host import site
from hubkeeper.host.systemd import SystemdHost
from hubkeeper.ops import unit
from hubkeeper.ops.execute import execute
from hubkeeper.ops.site import removal_effectors
from hubkeeper.plan.actions import Action
from hubkeeper.plan.retirement import RetirementFacts, plan_installed_removal
from hubkeeper.plan.unit import removal_problems
from hubkeeper.state.journal import Journal

log = logging.getLogger(__name__)


def retirement_facts(loaded: LoadedSpec, journal: Journal, host: SystemdHost) -> RetirementFacts:
    """The unit and the sites as retire's planner needs them. Changes nothing."""
    spec = loaded.spec
    return RetirementFacts(
        unit=unit.observe(journal, host), site=site.observe(loaded, journal, None),
        nginx_main=spec.nginx.main_config,
        serving=frozenset({spec.nginx.main_config} if spec.hub.url else set()))


def undo_installed(loaded: LoadedSpec, journal: Journal, host: SystemdHost | None = None
                   ) -> tuple[Action, ...]:
    """Disable and remove the hub's systemd units, remove its nginx sites and certbot hooks
    and reload nginx: the inverse actions of what the journal lists, run by the executor.
    A hand-edited file is kept (the planner leaves it out). Returns what was done."""
    host = host or SystemdHost.detect()
    facts = retirement_facts(loaded, journal, host)
    for path, problem in removal_problems(facts.unit, journal):
        log.warning("the systemd unit is kept: %s %s", path, problem)
    effectors = {**unit.effectors(journal, host, None, []), **removal_effectors(journal)}
    return execute(plan_installed_removal(journal, facts), effectors, journal)
