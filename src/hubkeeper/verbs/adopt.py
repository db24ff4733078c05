"""`hubkeeper adopt`: give homes whose accounts were lost (e.g. /etc restored or lost, seed
002) their accounts back, with the uid and gid their files carry. Shows the plan; --yes acts."""

from __future__ import annotations

import pwd
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.context.hub import Hub
from hubkeeper.host.accounts import observe
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.roster.policy import name_problem
from hubkeeper.state.journal import AccountRecord, GroupRecord
from hubkeeper.state.statedir import ensure_layout

FIRST_USER_UID = 1000


@dataclass(frozen=True)
class Orphan:
    account: str
    home: str
    uid: int
    gid: int
    skipped: str | None = None  # why it is not adopted


@dataclass(frozen=True)
class AdoptResult:
    homes: str
    adopt: tuple[Orphan, ...]
    skipped: tuple[Orphan, ...]
    done: bool


def find_orphans(homes: Path) -> list[Orphan]:
    host = observe()
    found = []
    for entry in sorted(homes.iterdir()) if homes.is_dir() else []:
        if not entry.is_dir() or entry.is_symlink():
            continue
        info = entry.stat()
        if info.st_uid in host.uids:
            continue  # its owner has an account
        reason = name_problem(entry.name)
        if reason is None and info.st_uid < FIRST_USER_UID:
            reason = f"owned by uid {info.st_uid}, a system uid"
        if reason is None and entry.name in host.accounts:
            reason = (f"an account {entry.name!r} exists with another uid "
                      f"({host.accounts[entry.name].uid})")
        found.append(Orphan(entry.name, str(entry), info.st_uid, info.st_gid, reason))
    return found


def adopt(hub: Hub, yes: bool, homes: Path = Path("/home")) -> AdoptResult:
    loaded = hub.loaded
    if not hub.is_root:
        raise HubkeeperError("adopt creates Linux accounts and needs root")
    orphans = find_orphans(homes)
    todo = tuple(o for o in orphans if o.skipped is None)
    skipped = tuple(o for o in orphans if o.skipped is not None)
    if not yes or not todo:
        return AdoptResult(str(homes), todo, skipped, done=False)
    paths = hub.paths
    ensure_layout(paths)
    journal = hub.load_journal()
    prefix = loaded.spec.users.account_prefix
    for orphan in todo:  # intents first, as in apply
        user = orphan.account.removeprefix(prefix)
        journal.accounts[orphan.account] = AccountRecord(
            account=orphan.account, user=user, uid=orphan.uid, gid=orphan.gid,
            home=orphan.home)
    journal.save()
    tools = ShadowTools()
    host = observe()
    gids = {group.gid for group in host.groups.values()}
    for orphan in todo:
        group_exists = orphan.gid in gids
        if not group_exists:
            journal.groups[orphan.account] = GroupRecord(orphan.account, "created", orphan.gid)
            gids.add(orphan.gid)
        tools.restore_account(orphan.account, uid=orphan.uid, gid=orphan.gid,
                              home=orphan.home, group_exists=group_exists)
        assert pwd.getpwnam(orphan.account).pw_uid == orphan.uid
        journal.accounts[orphan.account].state = "created"
    journal.save()
    return AdoptResult(str(homes), todo, skipped, done=True)
