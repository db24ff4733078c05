"""`hubkeeper plan`: what `apply` would change on this machine, in the hub and in nginx.
Changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.context.hub import Hub
from hubkeeper.ops.converge import Prepared, prepare
from hubkeeper.ops.site import site_plan
from hubkeeper.ops.unit import unit_plan
from hubkeeper.plan.actions import Action


@dataclass(frozen=True)
class PlanResult:
    config: str
    mode: str
    users: int
    actions: tuple[Action, ...]  # what `apply` does: accounts, data, the hub, the nginx site
    notes: tuple[str, ...]
    service: tuple[Action, ...] = ()  # what `service install` would do (apply does not)


def prepare_from(hub: Hub) -> Prepared:
    hub.resolved()
    hub.check_not_retired()  # a retired hub is not planned back into being
    return prepare(hub.loaded, hub.roster, hub.mode, hub.paths)


def plan(hub: Hub) -> PlanResult:
    prepared = prepare_from(hub)
    site = site_plan(prepared.loaded, prepared.journal)  # hub.url: nginx, certificate
    service = unit_plan(prepared.loaded, prepared.journal, prepared.mode)
    return PlanResult(str(prepared.loaded.path), prepared.mode, len(prepared.roster.members),
                      prepared.plan.actions + site.actions, prepared.plan.notes + site.notes,
                      tuple(service))
