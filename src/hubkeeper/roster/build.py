"""Merge every source of users into one Roster; report every problem with its place.

Sources, in order: the CSV file, inline entries, ranges, then names that appear only in
users.allowed, users.admins or users.groups. A person's details (name, e-mail, password) come
from one CSV row or one inline entry; listing a name in several sources is fine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hubkeeper.base.errors import InvalidInput, Problem
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative
from hubkeeper.roster.csvfile import read_roster_csv
from hubkeeper.roster.policy import MAX_ACCOUNT, name_problem

MAX_RANGE = 5000
RANGE_RE = re.compile(r"^(?P<stem>[a-z_][a-z0-9_-]*)\{(?P<start>[0-9]+)\.\.(?P<end>[0-9]+)\}$")


@dataclass(frozen=True)
class Origin:
    """Where a user was first declared: a CSV row or a hub.yaml node."""

    file: str
    line: int | None
    column: int | None = None
    field: str = "username"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def problem(self, message: str) -> Problem:
        return Problem(self.file, self.line, self.column, self.field, message)


@dataclass(frozen=True)
class Member:
    name: str  # the hub user name
    account: str  # the Linux account name (account_prefix + name)
    groups: frozenset[str]
    admin: bool
    locked: bool
    full_name: str | None = None
    email: str | None = None
    password: str | None = field(default=None, repr=False)
    origin: Origin = Origin("hub.yaml", None)
    provider: str | None = None  # admitted by this identity provider at first login
    subject: str | None = None  # and bound to this subject there


@dataclass(frozen=True)
class Roster:
    members: tuple[Member, ...]
    groups: tuple[str, ...]  # every hub group, sorted
    prefix: str
    source: str = "hub.yaml"  # the hub.yaml it came from

    def by_name(self) -> dict[str, Member]:
        return {member.name: member for member in self.members}

    @property
    def active(self) -> tuple[Member, ...]:
        return tuple(member for member in self.members if not member.locked)

    def group_members(self, group: str) -> list[str]:
        return sorted(member.name for member in self.members if group in member.groups)


def expand_range(pattern: str) -> list[str]:
    """'training_user{1..42}' -> training_user1 ... training_user42 ('{01..42}' pads)."""
    match = RANGE_RE.match(pattern)
    if not match:
        raise ValueError(f"{pattern!r} is not a range like 'training_user{{1..42}}'")
    start, end = int(match["start"]), int(match["end"])
    if start > end:
        raise ValueError(f"{pattern!r} counts down; write the smaller number first")
    if end - start + 1 > MAX_RANGE:
        raise ValueError(f"{pattern!r} makes {end - start + 1} names; at most {MAX_RANGE}")
    width = len(match["start"]) if match["start"].startswith("0") else 0
    return [f"{match['stem']}{number:0{width}d}" for number in range(start, end + 1)]


@dataclass(frozen=True)
class FirstLogin:
    """A person an identity provider admitted at their first login (users.accounts:
    first_login), as the state dir records them (state/admitted.py)."""

    name: str
    provider: str
    subject: str
    groups: tuple[str, ...] = ()
    admin: bool = False


def build_roster(loaded: LoadedSpec, admitted: tuple[FirstLogin, ...] = ()) -> Roster:
    """The roster hub.yaml describes, with the people `admitted` at first login who are not
    in it. Raises InvalidInput with every problem; pure but for reading the roster CSV."""
    users = loaded.spec.users
    problems: list[Problem] = []
    details: dict[str, dict] = {}
    groups_of: dict[str, set[str]] = {}
    origin: dict[str, Origin] = {}

    def declare(name: str, where: Origin, groups: tuple[str, ...] | list[str] = ()) -> None:
        origin.setdefault(name, where)
        groups_of.setdefault(name, set()).update(groups)

    def check(loc: tuple, name: str, what: str = "user name") -> bool:
        reason = name_problem(name, what)
        if reason is None and what == "user name" and len(users.account_prefix + name) > \
                MAX_ACCOUNT:
            reason = (f"account {users.account_prefix + name!r} (with account_prefix) has "
                      f"more than {MAX_ACCOUNT} characters")
        if reason:
            problems.append(loaded.problem(loc, reason))
        return reason is None

    if users.roster.csv:
        csv_path = config_relative(loaded.directory, users.roster.csv)
        rows, csv_problems = read_roster_csv(csv_path)
        problems += csv_problems
        for row in rows:
            details[row.username] = {"full_name": row.name, "email": row.email,
                                     "password": row.password}
            declare(row.username, Origin(str(csv_path), row.line), row.groups)

    for index, entry in enumerate(users.roster.entries):
        loc = ("users", "roster", "entries", index, "username")
        if not check(loc, entry.username):
            continue
        if entry.username in details:
            problems.append(loaded.problem(
                loc, f"{entry.username!r} is already described at {origin[entry.username]}"))
            continue
        for group in entry.groups:
            check(("users", "roster", "entries", index, "groups"), group, "group name")
        details[entry.username] = {"full_name": entry.name, "email": entry.email,
                                   "password": None}
        declare(entry.username, _where(loaded, loc), entry.groups)

    for index, pattern in enumerate(users.roster.ranges):
        loc = ("users", "roster", "ranges", index)
        try:
            names = expand_range(pattern)
        except ValueError as exc:
            problems.append(loaded.problem(loc, str(exc)))
            continue
        for name in names:
            if check(loc, name):
                declare(name, _where(loaded, loc))

    for key in ("allowed", "admins"):
        for index, name in enumerate(getattr(users, key)):
            loc = ("users", key, index)
            if check(loc, name):
                declare(name, _where(loaded, loc))
    for group, names in users.groups.items():
        check(("users", "groups", group), group, "group name")
        for index, name in enumerate(names):
            loc = ("users", "groups", group, index)
            if check(loc, name):
                declare(name, _where(loaded, loc), [group])
    first_login = {person.name: person for person in admitted if person.name not in origin}
    for person in first_login.values():
        declare(person.name, Origin(f"first login ({person.provider})", None), person.groups)
    for index, name in enumerate(users.locked):
        if name not in origin:
            problems.append(loaded.problem(
                ("users", "locked", index),
                f"{name!r} is not on the roster; only roster users can be locked"))

    if problems:
        raise InvalidInput(_sorted(problems),
                           hint="fix the roster; nothing is applied while a row is bad")
    admins, locked = set(users.admins), set(users.locked)
    admins |= {name for name, person in first_login.items() if person.admin}
    members = tuple(
        Member(name=name, account=users.account_prefix + name,
               groups=frozenset(groups_of[name]), admin=name in admins,
               locked=name in locked, origin=origin[name], **details.get(name, {}),
               **_provider_of(first_login.get(name)))
        for name in origin
    )
    all_groups = sorted(set().union(*(m.groups for m in members)) | set(users.groups))
    return Roster(members=members, groups=tuple(all_groups), prefix=users.account_prefix,
                  source=str(loaded.path))


def _provider_of(person: FirstLogin | None) -> dict[str, str]:
    return {"provider": person.provider, "subject": person.subject} if person else {}


def _where(loaded: LoadedSpec, loc: tuple) -> Origin:
    problem = loaded.problem(loc, "")
    return Origin(problem.file, problem.line, problem.column, problem.field)


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line or 0, p.column or 0, p.field))
