"""`retire`'s undoing of the files hubkeeper wrote outside its state dir, as actions: the
inverse of what the journal lists. Pure.

The systemd unit is disabled and removed (so a retired hub does not start at the next
boot), the nginx sites and certbot hooks removed and each nginx that served one reloaded;
a hand-edited file is kept. The same actions `service uninstall` and a removed hub.url
run. The rest of retirement (stopping the hub, accounts with their homes, groups, data
folders, environments, the state directory) is lifecycle/retirement.py's plan and
lifecycle/removal.py's guarded, resumable removal, after the archive check.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def plan_installed_removal(journal: Journal, facts: RetirementFacts) -> list[Action]:
    """The unit (nothing when one was changed by hand: it is kept), then the sites and
    hooks (a hand-edited one is kept, the others go) and a reload of each nginx that served
    one."""
    actions = plan_unit_removal(facts.unit, journal)
    site, _ = removals(journal, facts.site, set())
    return actions + site + reloads_after(site, facts.site, set(facts.serving),
                                          facts.nginx_main)
