"""`hubkeeper users admit NAME`: the account of a person an identity provider admitted, made
at their first login (users.accounts: first_login).

The hub runs it (as root) when a login the provider accepted has no account yet, or when
the provider's groups or admin role for an admitted person changed. It records the person in
<state>/admitted.json, then makes what `apply` makes for a roster member (account, home,
Linux groups, group folder links), journaled the same way, so snapshot, archive, lock and
retire treat them the same. Only the accounts' part of `apply` runs: no environment build,
no change to the running hub (the login itself carries the groups and the admin flag).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import PidLock, apply_lock
from hubkeeper.config.access import PROVIDERS, provider_groups
from hubkeeper.context.hub import Hub
from hubkeeper.ops.converge import execute, prepare
from hubkeeper.plan.actions import Action
from hubkeeper.roster.policy import MAX_ACCOUNT, name_problem
from hubkeeper.state import admitted
from hubkeeper.state.statedir import ensure_layout

LOCK_WAIT = 120.0  # seconds a first login waits for a running apply (or another admission)


@dataclass(frozen=True)
class AdmitResult:
    user: str
    account: str
    provider: str
    groups: tuple[str, ...]
    admin: bool
    roster: bool  # on hub.yaml's roster: its account is apply's, nothing was recorded
    actions: tuple[Action, ...]


def admit(hub: Hub, name: str, *, provider: str, subject: str, groups: tuple[str, ...],
          admin: bool, wait: float = LOCK_WAIT) -> AdmitResult:
    spec = hub.spec
    _check(hub, name, provider, subject, groups)
    hub.resolved()
    hub.check_not_retired()
    if hub.mode != "system":
        raise HubkeeperError("users admit makes Linux accounts, which only system mode has",
                             hint="in personal mode a first login needs no account")
    ensure_layout(hub.paths)
    with _waiting(apply_lock(hub.paths), wait):
        hub = hub.reopen()
        member = hub.roster.by_name().get(name)
        if member is not None and member.provider is None:
            return AdmitResult(name, member.account, provider, tuple(sorted(member.groups)),
                               member.admin, True, ())
        if member is not None and member.subject != subject:
            raise HubkeeperError(
                f"{name} was admitted at first login as {member.subject!r}, not {subject!r}",
                hint="the provider gave this name to another person; the login is refused")
        admitted.record(admitted.path_in(hub.paths.root), admitted.Admitted(
            name, provider, subject, tuple(sorted(set(groups))), admin, ""))
        hub = hub.reopen()
        prepared = prepare(hub.loaded, hub.roster, hub.mode, hub.paths, accounts_only=True)
        execute(prepared, lambda done, total, action: None)
    return AdmitResult(name, spec.users.account_prefix + name, provider,
                       tuple(sorted(set(groups))), admin, False, prepared.plan.actions)


def _check(hub: Hub, name: str, provider: str, subject: str, groups: tuple[str, ...]) -> None:
    """Refuse what the hub.yaml does not allow before anything is read or changed."""
    spec = hub.spec
    if spec.users.accounts != "first_login":
        raise HubkeeperError(f"{hub.path}: users.accounts is {spec.users.accounts!r}; only "
                             "first_login admits people at their first login",
                             hint="set users.accounts: first_login, or add them to the roster")
    kind = spec.auth.kind
    if provider not in PROVIDERS or provider != kind:
        raise HubkeeperError(f"{provider!r} is not this hub's identity provider "
                             f"(auth.kind is {kind!r})")
    if not subject.startswith(provider + ":") or len(subject) > 1024:
        raise HubkeeperError(f"subject {subject!r} is not one of {provider}'s")
    reason = name_problem(name)
    if reason is None and len(spec.users.account_prefix + name) > MAX_ACCOUNT:
        reason = f"account {spec.users.account_prefix + name!r} is too long"
    if reason:
        raise HubkeeperError(f"{name!r} cannot be admitted: {reason}")
    group_map, _ = provider_groups(spec.auth)
    unknown = sorted(set(groups) - set(group_map.values()))
    if unknown:
        raise HubkeeperError(f"group(s) {', '.join(unknown)} are not groups auth.{kind} maps "
                             "the provider's groups to")


class _waiting:
    """Hold `lock`, waiting up to `seconds` for its holder (an apply, another admission)."""

    def __init__(self, lock: PidLock, seconds: float) -> None:
        self.lock, self.seconds = lock, seconds

    def __enter__(self) -> PidLock:
        deadline = time.monotonic() + self.seconds
        while True:
            try:
                self.lock.acquire()
                return self.lock
            except HubkeeperError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
