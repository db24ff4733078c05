"""Which Linux account a hub user runs as, in system mode: only the one hubkeeper's journal
records as created (or adopted) for that hub user.

The hub user's name alone never picks an account: a hub user can come from an admin's
page, the REST API, a GitHub or native login; if its name happened to be `postgres` or a
TA's own login, the server would run as that account. So the spawner and the
authenticators ask here, and get the journal's account only while it still has the uid the
journal recorded and is not a system account. Imported by the hub (spawner, authenticators).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.whoami import effective_uid
from hubkeeper.state.journal import Journal

FIRST_USER_UID = 1000  # below: system accounts (Debian's UID_MIN), never a hub user's


@dataclass(frozen=True)
class Bound:
    account: str
    uid: int


class Unbound(Exception):
    """The hub user has no account of its own here; the message is for the log only."""


# journal path -> ((inode, mtime, size), hub user -> (account, recorded uid)): the journal is
# read again only when it changed (a start reads it several times).
_cache: dict[str, tuple[tuple[int, int, int], dict[str, tuple[str, int | None]]]] = {}


def _journal_users(path: str) -> dict[str, tuple[str, int | None]]:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return {}  # no account was ever made: nobody is bound
    except OSError as exc:
        raise Unbound(f"the journal {path} cannot be read: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise Unbound(f"the journal {path} is not a regular file")
    if info.st_uid != effective_uid() or info.st_mode & 0o022:
        # Whoever can write it could bind any hub user to any account.
        raise Unbound(f"the journal {path} is owned by uid {info.st_uid} with mode "
                      f"{stat.S_IMODE(info.st_mode):o}; it must be the hub's own and not "
                      "writable by others")
    key = (info.st_ino, info.st_mtime_ns, info.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        journal = Journal.load(Path(path))
    except HubkeeperError as exc:
        raise Unbound(exc.message) from None
    users = {record.user: (record.account, record.uid)
             for record in journal.accounts.values() if record.state == "created"}
    _cache[path] = (key, users)
    return users


def journal_account(journal_path: str, user: str) -> Bound:
    """The account hubkeeper made for hub user `user`, or Unbound saying why there is none."""
    if not journal_path:
        raise Unbound("no journal is configured (HubkeeperSpawner.journal_path), so no hub "
                      "user has an account")
    found = _journal_users(journal_path).get(user)
    if found is None:
        raise Unbound(f"{user!r} has no account in hubkeeper's journal {journal_path}: "
                      "hubkeeper runs servers only as accounts it created or adopted "
                      "(`hubkeeper apply` for roster users)")
    account, uid = found
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        raise Unbound(f"{user!r}: the journal's account {account!r} does not exist "
                      "(`hubkeeper apply` recreates it)") from None
    if uid is None or entry.pw_uid != uid:
        raise Unbound(f"{user!r}: account {account!r} has uid {entry.pw_uid}, the journal "
                      f"recorded {uid}; it is not the account hubkeeper made")
    if entry.pw_uid < FIRST_USER_UID:
        raise Unbound(f"{user!r}: account {account!r} has the system uid {entry.pw_uid}")
    return Bound(account, entry.pw_uid)


def per_hub_account(prefix: str, hub_name: str) -> str:
    """The Linux account of one of hubkeeper's own (`hkcanary-`, `hkweb-`) for hub
    `hub_name`: one per hub, so that hubs sharing a machine never claim each other's; at
    most 32 characters."""
    name = prefix + hub_name
    if len(name) <= 32:
        return name
    digest = hashlib.sha256(hub_name.encode()).hexdigest()[:6]
    return f"{prefix}{hub_name[:16].rstrip('-')}-{digest}"


WEB_ACCOUNT_PREFIX = "hkweb-"  # the web service's account (docs/web.md), one per hub
WEB_ORIGIN = "web"  # its journal record's origin
WEB_USER = "hubkeeper-web"  # the "hub user" its record names: reserved, never a roster name


def web_account(hub_name: str) -> str:
    return per_hub_account(WEB_ACCOUNT_PREFIX, hub_name)
