"""`hubkeeper check`: validate hub.yaml, and its fit to this machine, without changing it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import InvalidInput
from hubkeeper.config.loader import load
from hubkeeper.context.runtime import auth_kind, resolve_mode
from hubkeeper.host.preflight import cluster_problems, preflight_problems
from hubkeeper.roster import build_roster
from hubkeeper.state.statedir import state_paths


@dataclass(frozen=True)
class CheckResult:
    config: str
    hub: str
    mode: str
    backend: str
    auth: str
    users: int
    admins: int


def check(config: Path) -> CheckResult:
    loaded = load(config)
    roster = build_roster(loaded)
    spec = loaded.spec
    if spec.backend == "kubernetes":
        # Nothing of it runs here: hub.yaml and the roster are all there is to check.
        problems = cluster_problems(loaded, roster)
        if problems:
            raise InvalidInput(problems)
        return CheckResult(config=str(loaded.path), hub=spec.hub.name, mode="cluster",
                           backend=spec.backend, auth=spec.auth.kind or "",
                           users=len(roster.members),
                           admins=sum(1 for member in roster.members if member.admin))
    is_root = os.geteuid() == 0
    mode = resolve_mode(loaded, is_root)
    problems = preflight_problems(loaded, roster, mode, state_paths(loaded, is_root),
                                  starting=False)
    if problems:
        raise InvalidInput(problems)
    return CheckResult(
        config=str(loaded.path),
        hub=spec.hub.name,
        mode=mode,
        backend=spec.backend,
        auth=auth_kind(spec, mode),
        users=len(roster.members),
        admins=sum(1 for member in roster.members if member.admin),
    )
