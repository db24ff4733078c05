"""`hubkeeper plan`: what `apply` would change on this machine, in the hub and in nginx.
Changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.context.hub import Hub
from hubkeeper.host.site import plan_site
from hubkeeper.plan.users import Action
from hubkeeper.roster.converge import Prepared, prepare


@dataclass(frozen=True)
class PlanResult:
    config: str
    mode: str
    users: int
    actions: tuple[Action, ...]
    notes: tuple[str, ...]


def prepare_from(hub: Hub) -> Prepared:
    hub.resolved()
    hub.check_not_retired()  # a retired hub is not planned back into being
    return prepare(hub.loaded, hub.roster, hub.mode, hub.paths)


def plan(hub: Hub) -> PlanResult:
    prepared = prepare_from(hub)
    site = plan_site(prepared.loaded, prepared.journal)  # hub.url: nginx, certificate
    return PlanResult(str(prepared.loaded.path), prepared.mode, len(prepared.roster.members),
                      prepared.plan.actions + site.actions, prepared.plan.notes + site.notes)
