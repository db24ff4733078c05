"""`hubkeeper check`: validate hub.yaml, and its fit to this machine, without changing it."""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.context.hub import Hub
from hubkeeper.errors import InvalidInput
from hubkeeper.host.preflight import cluster_problems, preflight_problems


@dataclass(frozen=True)
class CheckResult:
    config: str
    hub: str
    mode: str
    backend: str
    auth: str
    users: int
    admins: int


def check(hub: Hub) -> CheckResult:
    loaded = hub.loaded
    roster = hub.roster
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
    mode = hub.mode
    problems = preflight_problems(loaded, roster, mode, hub.paths, starting=False)
    if problems:
        raise InvalidInput(problems)
    return CheckResult(
        config=str(loaded.path),
        hub=spec.hub.name,
        mode=mode,
        backend=spec.backend,
        auth=hub.auth_kind,
        users=len(roster.members),
        admins=sum(1 for member in roster.members if member.admin),
    )
