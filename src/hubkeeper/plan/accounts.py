"""Roster + observed host + journal (+ the hub's users when it runs) -> the actions to take.

Pure: no I/O. Refuses (InvalidInput) to touch an account or group it did not create.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.base.errors import InvalidInput, Problem
from hubkeeper.host.accounts import HostUsers
from hubkeeper.plan import actions as _actions
from hubkeeper.plan.actions import Action, Kind
from hubkeeper.roster import Member, Roster
from hubkeeper.state.journal import Journal

# The order actions run in: groups before the accounts in them, accounts before passwords.
ORDER: tuple[Kind, ...] = (
    "create-group", "create-account", "create-home", "set-password", "add-to-group",
    "remove-from-group", "unlock", "lock",
    "create-shared-dir", "create-group-folder", "link-in-home", "build-environment",
    "hub-stop-server", "hub-unregister", "hub-register", "hub-grant-admin",
    "hub-revoke-admin", "hub-create-group", "hub-add-to-group", "hub-remove-from-group",
)


@dataclass(frozen=True)
class HubUser:
    name: str
    admin: bool
    groups: frozenset[str]
    server_running: bool


@dataclass(frozen=True)
class HubState:
    users: dict[str, HubUser]
    groups: dict[str, frozenset[str]]


@dataclass(frozen=True)
class UsersPlan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...]

    def count(self, kind: Kind) -> int:
        return sum(1 for action in self.actions if action.kind == kind)


def _problem(member: Member, message: str) -> Problem:
    return member.origin.problem(message)


def host_problems(roster: Roster, host: HostUsers, journal: Journal) -> list[Problem]:
    """Names that belong to accounts or groups hubkeeper did not create."""
    problems = []
    for member in roster.members:
        account = host.accounts.get(member.account)
        if account is not None and not journal.owns_account(member.account):
            problems.append(_problem(member, (
                f"{member.account!r} is an existing account (uid {account.uid}) that "
                "hubkeeper did not create; it will not manage it: choose another name")))
        group = host.groups.get(member.account)
        if account is None and group is not None and not journal.owns_group(member.account):
            problems.append(_problem(member, (
                f"a group {member.account!r} already exists (gid {group.gid}); the account's "
                "own group would clash: choose another name")))
    accounts = {member.account for member in roster.members}
    for group in roster.groups:
        linux = roster.prefix + group
        existing = host.groups.get(linux)
        if existing is None or journal.owns_group(linux) or linux in accounts:
            continue
        message = (f"group {linux!r} already exists on this machine (gid {existing.gid}) and "
                   "hubkeeper did not create it; choose another group name")
        members = [member for member in roster.members if group in member.groups]
        problems.append(_problem(members[0], message) if members else
                        Problem(roster.source, None, None, f"users.groups.{group}", message))
    return problems


def plan_host(roster: Roster, host: HostUsers, journal: Journal) -> list[Action]:
    """System mode: accounts, homes, passwords, Linux groups and locks."""
    problems = host_problems(roster, host, journal)
    if problems:
        raise InvalidInput(problems, hint="nothing was changed")
    actions: list[Action] = []
    for group in roster.groups:
        linux = roster.prefix + group
        if linux not in host.groups:
            actions.append(Action("create-group", linux))
    for member in roster.members:
        record = journal.accounts.get(member.account)
        account = host.accounts.get(member.account)
        wanted = {roster.prefix + g for g in member.groups}
        if account is None:
            uid = f"uid {record.uid}" if record and record.uid is not None else ""
            actions.append(Action("create-account", member.account, uid or _origin(member)))
            if member.provider is None:  # first-login users log in at their provider
                actions.append(Action("set-password", member.account))
            if member.locked:
                actions.append(Action("lock", member.account))
            continue
        if not host.home(member.account).exists:
            actions.append(Action("create-home", member.account, account.home))
        # A first-login account has no password (`!` in shadow: they log in at their
        # provider), so the journal says whether hubkeeper locked it, not the `!`.
        is_locked = account.locked if member.provider is None else bool(record and
                                                                         record.locked)
        if member.provider is None and (record is None or not record.password_set):
            actions.append(Action("set-password", member.account))
        elif is_locked and not member.locked:
            actions.append(Action("unlock", member.account))
        if member.locked and not is_locked:
            actions.append(Action("lock", member.account))
        have = {name for name, group in host.groups.items()
                if member.account in group.members and journal.owns_group(name)}
        for group in sorted(wanted - have):
            actions.append(Action("add-to-group", member.account, group))
        for group in sorted(have - wanted):
            actions.append(Action("remove-from-group", member.account, group))
    on_roster = {member.account for member in roster.members}
    for name in sorted(journal.accounts):
        account = host.accounts.get(name)
        if name not in on_roster and account is not None and not account.locked:
            actions.append(Action("lock", name, "removed from the roster"))
    return actions


def _origin(member: Member) -> str:
    return f"first login ({member.provider})" if member.provider else ""


def plan_hub(roster: Roster, hub: HubState, removed: set[str]) -> list[Action]:
    """The running hub's users, admins and groups in step with the roster."""
    actions: list[Action] = []
    active = {member.name: member for member in roster.active}
    leaving = set(hub.users) & ({m.name for m in roster.members if m.locked} | removed)
    for name in sorted(leaving):
        if hub.users[name].server_running:
            actions.append(Action("hub-stop-server", name))
        actions.append(Action("hub-unregister", name, "data stays"))
    for name, member in active.items():
        user = hub.users.get(name)
        if user is None:
            actions.append(Action("hub-register", name))
        if member.admin and user is not None and not user.admin:  # register sets admin
            actions.append(Action("hub-grant-admin", name))
        if user is not None and user.admin and not member.admin:
            actions.append(Action("hub-revoke-admin", name))
    for group in roster.groups:
        wanted = {name for name in roster.group_members(group) if name in active}
        have = set(hub.groups.get(group, frozenset()))
        if group not in hub.groups:
            actions.append(Action("hub-create-group", group))
        for name in sorted(wanted - have):
            actions.append(Action("hub-add-to-group", name, group))
        for name in sorted(have - wanted - leaving):  # unregistering removes them anyway
            actions.append(Action("hub-remove-from-group", name, group))
    return actions


def ordered(actions: list[Action]) -> tuple[Action, ...]:
    return _actions.ordered(actions, ORDER)
