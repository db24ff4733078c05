"""The journal: every account, group, folder and file hubkeeper created, so that it never
touches others.

<state>/journal.json, versioned, always written whole and atomically (temp file, fsync,
rename): a reader sees the old journal or the new one, never a torn one. An account is
recorded *before* it is created ("creating") and confirmed after ("created"); an account that
exists and has a "creating" record was made by an apply that was killed, so it is ours.
`retire` marks a record "removing" before it removes the thing and drops the record after,
so a retire that was killed finishes the same removals when run again.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic
from hubkeeper.state.migrations import check_readable_beside

# Accounts of hubkeeper's own, not roster users: never unregistered by the roster's sync.
OWN_ORIGINS = ("canary", "web")

JOURNAL_SCHEMA = 1
State = Literal["creating", "created", "removing"]


@dataclass
class AccountRecord:
    account: str
    user: str
    state: State = "creating"
    uid: int | None = None
    gid: int | None = None
    home: str | None = None
    password_set: bool = False
    locked: bool = False
    origin: str = "roster"  # or the identity provider that admitted the user at first login
    subject: str | None = None  # the provider's stable id for them (first login)


@dataclass
class GroupRecord:
    name: str
    state: State = "creating"
    gid: int | None = None


@dataclass
class DirRecord:
    path: str
    kind: Literal["shared", "group-folder"]
    state: State = "creating"


@dataclass
class FileRecord:
    """A file hubkeeper wrote outside its state dir: a systemd unit, an nginx site, a hook."""

    path: str
    kind: str  # systemd-unit | nginx-site | certbot-hook
    state: State = "creating"
    sha256: str | None = None  # of the content written; a different file was changed by hand
    detail: dict[str, str] = field(default_factory=dict)  # what undoing it needs (retire)


@dataclass
class Journal:
    path: Path
    accounts: dict[str, AccountRecord] = field(default_factory=dict)
    groups: dict[str, GroupRecord] = field(default_factory=dict)
    dirs: dict[str, DirRecord] = field(default_factory=dict)
    files: dict[str, FileRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Journal:
        if not path.exists():
            return cls(path)
        check_readable_beside(path)  # a state dir of another format: refused, not misread
        try:
            body = json.loads(path.read_text())
            if body.get("schema") != JOURNAL_SCHEMA:
                raise ValueError(f"schema {body.get('schema')!r}, expected {JOURNAL_SCHEMA}")
            accounts = {name: AccountRecord(**record)
                        for name, record in body.get("accounts", {}).items()}
            groups = {name: GroupRecord(**record)
                      for name, record in body.get("groups", {}).items()}
            dirs = {path: DirRecord(**record) for path, record in body.get("dirs", {}).items()}
            files = {path: FileRecord(**record)
                     for path, record in body.get("files", {}).items()}
        except (OSError, ValueError, TypeError) as exc:
            raise HubkeeperError(
                f"the journal {path} cannot be read: {exc}",
                hint="it lists what hubkeeper created and is never guessed; restore it from "
                "a snapshot (`hubkeeper restore --all`, or take <state>/journal.json from "
                "the newest snapshot's hub/state/ folder)",
            ) from None
        return cls(path, accounts, groups, dirs, files)

    def save(self) -> None:
        body = {
            "schema": JOURNAL_SCHEMA,
            "written_by": f"hubkeeper {__version__}",
            "accounts": {name: dataclasses.asdict(record)
                         for name, record in sorted(self.accounts.items())},
            "groups": {name: dataclasses.asdict(record)
                       for name, record in sorted(self.groups.items())},
            "dirs": {path: dataclasses.asdict(record)
                     for path, record in sorted(self.dirs.items())},
            "files": {path: dataclasses.asdict(record)
                      for path, record in sorted(self.files.items())},
        }
        write_atomic(self.path, (json.dumps(body, indent=1) + "\n").encode(), mode=0o600)

    def users_off(self, on_roster: set[str]) -> set[str]:
        """Hub users of accounts hubkeeper created that are no longer on the roster."""
        return {record.user for record in self.accounts.values()
                if record.user not in on_roster and record.origin not in OWN_ORIGINS}

    def owns_account(self, account: str) -> bool:
        return account in self.accounts

    def owns_group(self, group: str) -> bool:
        return group in self.groups
