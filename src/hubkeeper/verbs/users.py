"""`hubkeeper users list | add | lock | unlock | credentials`: the roster from the command
line.

Edits go into hub.yaml (comments and order kept), are validated, then applied.
`credentials` issues native sign-up's invite codes again (a lost code).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from hubkeeper.base.locks import apply_lock
from hubkeeper.config.edit import edit_config, section
from hubkeeper.config.loader import load
from hubkeeper.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.host.journal import Journal
from hubkeeper.host.statedir import ensure_layout, state_paths
from hubkeeper.host.users import observe
from hubkeeper.plan.users import Action
from hubkeeper.roster import build_roster
from hubkeeper.roster.converge import issue_invites
from hubkeeper.roster.policy import name_problem
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


def list_users(config: Path) -> UsersList:
    loaded = load(config)
    roster = build_roster(loaded)
    journal = Journal.load(state_paths(loaded, os.geteuid() == 0).journal)
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


def _change(config: Path, description: str, mutate: Callable[[CommentedMap], None],
            progress: Callable[[int, int, Action], None], run_apply: bool) -> UsersChange:
    loaded = load(config)  # the file must be valid before we touch it

    def check(edited) -> None:
        build_roster(edited)  # the roster (with its CSV) must still be valid

    edit_config(loaded.path, mutate, check)
    return UsersChange(description, apply(loaded.path, progress) if run_apply else None)


def add_user(config: Path, name: str, *, groups: tuple[str, ...], admin: bool,
             full_name: str | None, email: str | None,
             progress: Callable[[int, int, Action], None], run_apply: bool = True
             ) -> UsersChange:
    problems = [Problem("command line", None, None, what, reason)
                for what, value, kind in [("NAME", name, "user name"),
                                          *(("--group", g, "group name") for g in groups)]
                if (reason := name_problem(value, kind))]
    if problems:
        raise InvalidInput(problems)
    roster = build_roster(load(config))
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

    return _change(config, f"added {name} to the roster", mutate, progress, run_apply)


def set_locked(config: Path, name: str, locked: bool,
               progress: Callable[[int, int, Action], None], run_apply: bool = True
               ) -> UsersChange:
    roster = build_roster(load(config))
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
    return _change(config, f"{verb} {name}", mutate, progress, run_apply)


def credentials(config: Path, names: tuple[str, ...]) -> Credentials:
    """New invite codes for NAMES (theirs replaced), or for every active roster user who has
    none; written 0600 to <state>/credentials/ like apply's."""
    loaded = load(config)
    roster = build_roster(loaded)
    paths = state_paths(loaded, os.geteuid() == 0)
    ensure_layout(paths)
    with apply_lock(paths):  # apply writes the same files
        written, users = issue_invites(loaded, roster, paths, names)
    return Credentials(str(loaded.path), str(written) if written else None, users)
