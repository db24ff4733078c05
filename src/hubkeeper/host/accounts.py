"""Observe accounts and groups by reading the /etc files (under a root that tests may move)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    locked: bool  # the password field of /etc/shadow starts with '!' (or there is none)


@dataclass(frozen=True)
class Group:
    name: str
    gid: int
    members: frozenset[str]


@dataclass(frozen=True)
class Home:
    exists: bool
    mode: int | None = None
    uid: int | None = None


@dataclass(frozen=True)
class HostUsers:
    accounts: dict[str, Account]
    groups: dict[str, Group]
    uids: frozenset[int]

    def home(self, account: str) -> Home:
        entry = self.accounts.get(account)
        if entry is None:
            return Home(False)
        try:
            info = os.stat(entry.home)
        except OSError:
            return Home(False)
        return Home(True, stat.S_IMODE(info.st_mode), info.st_uid)


def _records(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def observe(root: Path = Path("/")) -> HostUsers:
    etc = root / "etc"
    shadow = {fields[0]: fields[1] for fields in _records(etc / "shadow") if len(fields) > 1}
    accounts = {}
    for fields in _records(etc / "passwd"):
        if len(fields) < 7:
            continue
        name = fields[0]
        password = shadow.get(name, "!")
        accounts[name] = Account(name, int(fields[2]), int(fields[3]), fields[5],
                                 locked=password.startswith("!") or password in ("", "*"))
    groups = {}
    for fields in _records(etc / "group"):
        if len(fields) < 4:
            continue
        members = frozenset(filter(None, fields[3].split(",")))
        groups[fields[0]] = Group(fields[0], int(fields[2]), members)
    return HostUsers(accounts, groups, frozenset(a.uid for a in accounts.values()))
