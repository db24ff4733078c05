"""`hubkeeper plan`: what `apply` would change on this machine, in the hub and in nginx.
Changes nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.config.loader import load
from hubkeeper.context.runtime import resolve_mode
from hubkeeper.ops.converge import Prepared, prepare
from hubkeeper.ops.site import site_plan
from hubkeeper.ops.unit import unit_plan
from hubkeeper.plan.actions import Action
from hubkeeper.roster import build_roster
from hubkeeper.state.statedir import check_not_retired, state_paths


@dataclass(frozen=True)
class PlanResult:
    config: str
    mode: str
    users: int
    actions: tuple[Action, ...]  # what `apply` does: accounts, data, the hub, the nginx site
    notes: tuple[str, ...]
    service: tuple[Action, ...] = ()  # what `service install` would do (apply does not)


def prepare_from(config: Path) -> Prepared:
    loaded = load(config)
    roster = build_roster(loaded)
    is_root = os.geteuid() == 0
    mode = resolve_mode(loaded, is_root)
    paths = state_paths(loaded, is_root)
    check_not_retired(paths)  # a retired hub is not planned back into being
    return prepare(loaded, roster, mode, paths)


def plan(config: Path) -> PlanResult:
    prepared = prepare_from(config)
    site = site_plan(prepared.loaded, prepared.journal)  # hub.url: nginx, certificate
    service = unit_plan(prepared.loaded, prepared.journal, prepared.mode)
    return PlanResult(str(prepared.loaded.path), prepared.mode, len(prepared.roster.members),
                      prepared.plan.actions + site.actions, prepared.plan.notes + site.notes,
                      tuple(service))
