"""`hubkeeper users list | add | lock | unlock | credentials`: the roster from the command
line.

Edits go into hub.yaml (comments and order kept), are validated, then applied.
`credentials` issues native sign-up's invite codes again (a lost code).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.base.locks import apply_lock
from hubkeeper.config.edit import edit_config, section
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.hub import Hub
from hubkeeper.host.accounts import observe
from hubkeeper.ops.converge import issue_invites
from hubkeeper.plan.accounts import Action
from hubkeeper.roster.policy import name_problem
from hubkeeper.state.statedir import ensure_layout
from hubkeeper.verbs.apply import ApplyResult, apply


@dataclass(frozen=True)
class UserRow:
    name: str
    account: str
    groups: tuple[str, ...]
    admin: bool
    locked: bool
    uid: int | None
    managed: bool  # created by hubkeeper (in the journal)
    declared_at: str


@dataclass(frozen=True)
class UsersList:
    config: str
    users: tuple[UserRow, ...]


@dataclass(frozen=True)
class Credentials:
    config: str
    file: str | None  # the 0600 CSV with the new codes; None: nobody needed one
    users: tuple[str, ...]


@dataclass(frozen=True)
class UsersChange:
    change: str
    applied: ApplyResult | None


def list_users(hub: Hub) -> UsersList:
    loaded = hub.loaded
    roster = hub.roster
    journal = hub.journal
    host = observe()
    rows = tuple(
        UserRow(
            name=m.name, account=m.account, groups=tuple(sorted(m.groups)), admin=m.admin,
            locked=m.locked,
            uid=host.accounts[m.account].uid if m.account in host.accounts else None,
            managed=journal.owns_account(m.account), declared_at=str(m.origin),
        )
        for m in sorted(roster.members, key=lambda member: member.name)
    )
    return UsersList(str(loaded.path), rows)


def _seq(node: CommentedMap, key: str) -> CommentedSeq:
    if node.get(key) is None:
        node[key] = CommentedSeq()
        node[key].fa.set_flow_style()
    return node[key]


def _change(hub: Hub, description: str, mutate: Callable[[CommentedMap], None],
            progress: Callable[[int, int, Action], None], run_apply: bool) -> UsersChange:
    """Edit hub.yaml (`hub` was opened from it: it was valid before we touch it), then
    apply the edited file."""

    def check(edited: LoadedSpec) -> None:
        Hub.of(edited, euid=hub.euid).roster  # noqa: B018 -- the roster (CSV too) must hold

    edit_config(hub.path, mutate, check)
    return UsersChange(description, apply(hub.reopen(), progress) if run_apply else None)


def add_user(config: Path, name: str, *, groups: tuple[str, ...], admin: bool,
             full_name: str | None, email: str | None,
             progress: Callable[[int, int, Action], None], run_apply: bool = True,
             euid: int | None = None) -> UsersChange:
    """Add NAME to hub.yaml at `config` (the command line is checked before the file is
    opened), then apply."""
    problems = [Problem("command line", None, None, what, reason)
                for what, value, kind in [("NAME", name, "user name"),
                                          *(("--group", g, "group name") for g in groups)]
                if (reason := name_problem(value, kind))]
    if problems:
        raise InvalidInput(problems)
    hub = Hub.open(config, euid=euid)
    roster = hub.roster
    if name in roster.by_name():
        raise HubkeeperError(f"{name!r} is already on the roster "
                             f"({roster.by_name()[name].origin})")

    def mutate(document: CommentedMap) -> None:
        entry = CommentedMap(username=name)
        if groups:
            entry["groups"] = CommentedSeq(groups)
            entry["groups"].fa.set_flow_style()
        if full_name:
            entry["name"] = full_name
        if email:
            entry["email"] = email
        entry.fa.set_flow_style()
        _seq(section(document, "users", "roster"), "entries").append(entry)
        if admin:
            _seq(section(document, "users"), "admins").append(name)

    return _change(hub, f"added {name} to the roster", mutate, progress, run_apply)


def set_locked(hub: Hub, name: str, locked: bool,
               progress: Callable[[int, int, Action], None], run_apply: bool = True
               ) -> UsersChange:
    roster = hub.roster
    member = roster.by_name().get(name)
    if member is None:
        raise HubkeeperError(f"{name!r} is not on the roster",
                             hint="`hubkeeper users list` shows who is")

    def mutate(document: CommentedMap) -> None:
        names = _seq(section(document, "users"), "locked")
        if locked and name not in names:
            names.append(name)
        while not locked and name in names:
            names.remove(name)
        if not names:
            del document["users"]["locked"]

    verb = "locked" if locked else "unlocked"
    return _change(hub, f"{verb} {name}", mutate, progress, run_apply)


def credentials(hub: Hub, names: tuple[str, ...]) -> Credentials:
    """New invite codes for NAMES (theirs replaced), or for every active roster user who has
    none; written 0600 to <state>/credentials/ like apply's."""
    loaded = hub.loaded
    roster = hub.roster
    paths = hub.paths
    ensure_layout(paths)
    with apply_lock(paths):  # apply writes the same files
        written, users = issue_invites(loaded, roster, paths, names)
    return Credentials(str(loaded.path), str(written) if written else None, users)
