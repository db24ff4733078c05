"""`hubkeeper materials publish [--user NAME]`: pull hub.yaml's course material now for every
user whose server runs (or the users named), as each user, and say per user and folder
what happened: cloned, updated, up to date, the student's edit kept, or failed and why.

The running servers come from the hub's REST API (hubkeeper's service token), with each
server's environment; each pull is the one a start runs (host/materials.py), as the account
the server runs as (the journal's, state/identity.py), never as root.
"""

from __future__ import annotations

import getpass
import pwd
from dataclasses import dataclass
from typing import Any

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.config.model import HubSpec, default_environment
from hubkeeper.context.hub import Hub
from hubkeeper.host.asuser import Identity
from hubkeeper.host.hubapi import HubAPI, HubUnreachable
from hubkeeper.host.materials import Pull, PullReport, applies, pull_as
from hubkeeper.state.identity import Unbound, journal_account


@dataclass(frozen=True)
class UserPull:
    user: str
    account: str
    environment: str  # "" when the hub has no environments
    report: PullReport


@dataclass(frozen=True)
class PublishResult:
    hub: str
    pulls: tuple[UserPull, ...]
    not_running: tuple[str, ...]  # users named with --user whose server does not run
    failed_users: tuple[tuple[str, str], ...]  # (user, why) before any pull could run

    @property
    def ok(self) -> bool:
        return not self.failed_users and all(pull.report.ok for pull in self.pulls)


def server_environment(spec: HubSpec, model: dict[str, Any]) -> str:
    """The environment a running server started with: the user's choice, or the first
    their groups allow with the default first (as hub/spawner_steps.py chooses)."""
    if not spec.environments:
        return ""
    server = (model.get("servers") or {}).get("") or {}
    chosen = (server.get("user_options") or {}).get("environment")
    if isinstance(chosen, str) and chosen in spec.environments:
        return chosen
    groups = set(model.get("groups") or ())
    default = default_environment(spec)
    allowed = sorted((name for name, env in spec.environments.items()
                      if not env.groups or groups & set(env.groups)),
                     key=lambda name: (name != default, name))
    return allowed[0] if allowed else ""


def _home(hub: Hub, name: str) -> tuple[Identity | None, str, str]:
    """(who the pull runs as, the account's name, its home), as the user's server runs."""
    if hub.mode == "personal":
        return None, getpass.getuser(), str(hub.paths.users / name)
    bound = journal_account(str(hub.paths.journal), name)
    entry = pwd.getpwnam(bound.account)
    return Identity.of(bound.account), bound.account, entry.pw_dir


def publish(hub: Hub, users: tuple[str, ...] = ()) -> PublishResult:
    spec = hub.spec
    if not spec.materials:
        raise HubkeeperError(f"{hub.loaded.path} has no materials: nothing to publish",
                             hint="add materials: [{repo: ..., target: ...}] "
                             "(docs/materials.md)")
    known = {member.name for member in hub.roster.members}
    problems = [Problem("command line", None, None, "--user",
                        f"{name!r} is not on the roster") for name in users
                if name not in known]
    if problems:
        raise InvalidInput(problems)
    api = HubAPI(hub.hub_api_url, hub.read_secret("api-token"))
    try:
        models = {model["name"]: model for model in api.users()}
    except HubUnreachable as exc:
        raise HubkeeperError(f"the hub does not answer at 127.0.0.1:{spec.hub.api_port} "
                             f"({exc})", hint="is it running? `hubkeeper status`") from None
    running = sorted(name for name, model in models.items()
                     if ((model.get("servers") or {}).get("") or {}).get("ready"))
    wanted = [name for name in running if not users or name in users]
    pulls: list[UserPull] = []
    failed: list[tuple[str, str]] = []
    for name in wanted:
        environment = server_environment(spec, models[name])
        try:
            identity, account, home = _home(hub, name)
        except (Unbound, KeyError) as exc:
            failed.append((name, f"no account to run the pull as: {exc}"))
            continue
        base = f"{home}/{environment}" if environment else home
        for material in spec.materials:
            if not applies(material.environments, environment):
                continue
            pull = Pull(material.repo, material.branch, f"{base}/{material.target}",
                        material.timeout)
            pulls.append(UserPull(name, account, environment,
                                  pull_as(identity, account, home, pull)))
    return PublishResult(
        hub=spec.hub.name, pulls=tuple(pulls),
        not_running=tuple(name for name in users if name not in running),
        failed_users=tuple(failed))
