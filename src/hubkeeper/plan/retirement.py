"""`retire` as actions: the inverse of everything the journal lists, in the order it is
undone. Pure.

The hub and every process of its accounts are stopped first; then the files outside the
state dir go (the systemd unit disabled and removed, so a retired hub does not start at the
next boot; the nginx site and certbot hook removed and nginx reloaded); then the accounts
with their homes, groups, data folders, environments and the state directory. What may not
be removed (a hand-edited file, another account's home inside ours, ...) is judged by
lifecycle/retirement.py, which keeps it with the reason; the archive check comes before any
of this runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hubkeeper.host.site import SiteFacts
from hubkeeper.plan.actions import Action
from hubkeeper.plan.site import reloads_after, removals
from hubkeeper.plan.unit import UnitFacts, plan_unit_removal
from hubkeeper.state.journal import Journal

# The actions that undo the files hubkeeper wrote outside its state dir.
FILE_KINDS = ("disable-systemd-unit", "remove-systemd-unit", "daemon-reload",
              "remove-nginx-site", "remove-certbot-hook", "reload-nginx")


@dataclass(frozen=True)
class RetirementFacts:
    unit: UnitFacts
    site: SiteFacts
    nginx_main: str  # nginx.main_config: a site whose header names none was served by it
    serving: frozenset[str] = frozenset()  # nginx main configs to reload besides (hub.url's)
    hub_pid: int | None = None  # the running `hubkeeper up` (0: pid unknown)
    proxy_pid: int | None = None  # a proxy a killed hub left behind
    accounts: frozenset[str] = frozenset()  # journal accounts that exist
    homes: dict[str, str] = field(default_factory=dict)  # account -> its home, if it exists
    groups: frozenset[str] = frozenset()  # journal groups that exist
    dirs: frozenset[str] = frozenset()  # journal data folders that exist
    environments: tuple[str, ...] = ()
    state: str | None = None  # the state directory, when it holds anything


def plan_installed_removal(journal: Journal, facts: RetirementFacts) -> list[Action]:
    """The unit (nothing when one was changed by hand: it is kept), then the sites and
    hooks (a hand-edited one is kept, the others go) and a reload of each nginx that served
    one."""
    actions = plan_unit_removal(facts.unit, journal)
    site, _ = removals(journal, facts.site, set())
    return actions + site + reloads_after(site, facts.site, set(facts.serving),
                                          facts.nginx_main)


def plan_retirement(journal: Journal, facts: RetirementFacts) -> list[Action]:
    """Everything retire undoes, in order: the inverse of the journal."""
    actions: list[Action] = []
    if facts.hub_pid is not None:
        actions.append(Action("stop-hub", str(facts.hub_pid or "unknown"), "SIGTERM"))
    elif facts.proxy_pid is not None:
        actions.append(Action("stop-proxy", str(facts.proxy_pid)))
    actions += [Action("stop-processes", name) for name in sorted(facts.accounts)]
    actions += plan_installed_removal(journal, facts)
    for name in sorted(facts.accounts):
        actions.append(Action("remove-account", name, f"hub user {journal.accounts[name].user}"))
        if name in facts.homes:
            actions.append(Action("remove-home", facts.homes[name], f"of {name}"))
    actions += [Action("remove-group", name) for name in sorted(facts.groups)]
    actions += [Action("remove-data", path, journal.dirs[path].kind)
                for path in sorted(facts.dirs)]
    actions += [Action("remove-environment", name) for name in facts.environments]
    if facts.state:
        actions.append(Action("remove-state", facts.state))
    return actions
