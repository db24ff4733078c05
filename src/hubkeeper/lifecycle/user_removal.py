"""The steps of `users remove`: one user's home archived and checked, then the user taken off
the hub and the machine, in an order a second run can resume.

Nothing is removed before an archive of the home (lifecycle/archive.py, one user) has been
re-read whole (`verify_archive`) and compared with the live home (`archive_verdict`, the
check `retire` makes). Then the removal is recorded (<state>/removals.json, and in system
mode the journal's account record marked "removing"), and: the account locked (no new
login), the server stopped and the hub user deleted (REST API, when the hub runs), the name
taken off hub.yaml, the account's processes killed, the home compared with the archive once
more (now that nothing of theirs runs; a home written to in between is archived again), the
account and home removed (lifecycle/removal.py's `Remover.account`, as `retire` does), the
journal record dropped. A run killed anywhere leaves the record "removing"; the next run
finds it and goes on from the same archive.
"""

from __future__ import annotations

import logging
import os
import pwd
import urllib.parse
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.context.hub import Hub
from hubkeeper.host.hubapi import ApiError, HubAPI, HubUnreachable
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.lifecycle.archive import ArchiveInfo, write_archive
from hubkeeper.lifecycle.archive_verify import verify_archive
from hubkeeper.lifecycle.manifest import Progress, silent
from hubkeeper.lifecycle.removal import Remover, kill_processes, remove_tree
from hubkeeper.lifecycle.retirement import (
    ArchiveVerdict,
    Tree,
    account_problem,
    archive_verdict,
    home_problem,
    keep_paths,
)
from hubkeeper.lifecycle.sources import Home, hub_contents
from hubkeeper.state.journal import AccountRecord, Journal
from hubkeeper.state.removals import Removal
from hubkeeper.state.statedir import read_secret

log = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Target:
    """The user to remove, as found on this machine."""

    user: str
    mode: str
    account: str | None  # system mode: the account hubkeeper created (journal)
    uid: int | None  # the account's uid (journal or passwd); personal mode: the hub's own
    gid: int | None
    home: Path | None  # None: nothing on disk to archive (never applied, or already gone)
    account_exists: bool  # the account is still in passwd (its home is untouched)
    provider: str | None = None  # admitted by this identity provider at first login

    def tree(self) -> Tree:
        assert self.home is not None
        return Tree("home", self.user, self.home, self.account,
                    partial=self.mode == "system" and not self.account_exists)


def find_target(hub: Hub, name: str, journal: Journal, unfinished: Removal | None) -> Target:
    """Who `name` is here; raises when hubkeeper may not remove them (an account it did not
    create, or one that is another account now, or a home it must not delete)."""
    if hub.mode == "personal":
        folder = hub.paths.users / name
        if name not in hub.roster.by_name() and unfinished is None:
            raise _unknown(hub, name)
        if not folder.is_dir() or folder.is_symlink():
            return Target(name, "personal", None, None, None, None, False)
        info = folder.lstat()
        return Target(name, "personal", None, info.st_uid, info.st_gid, folder, False)
    member = hub.roster.by_name().get(name)
    records = [r for r in journal.accounts.values() if r.user == name]
    account = member.account if member else records[0].account if records else None
    if account is None:
        if unfinished is not None and unfinished.account:  # the record was dropped at the end
            return Target(name, "system", unfinished.account, unfinished.uid, None, None,
                          False)
        raise _unknown(hub, name)
    record = journal.accounts.get(account)
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        entry = None
    if entry is not None and record is None:
        raise HubkeeperError(
            f"{account!r} is an account hubkeeper did not create (it is not in the journal "
            f"{journal.path}); it is never removed by hubkeeper",
            hint=f"remove {name!r} from hub.yaml by hand; the account is the machine's")
    if entry is not None:
        assert record is not None
        problem = account_problem(account, record.uid)
        if problem:
            raise HubkeeperError(f"the account {account!r} {problem}; it is not removed",
                                 hint="look at who has that account now")
        home = Path(record.home or entry.pw_dir)
        uid, gid = entry.pw_uid, entry.pw_gid
    else:
        home = Path(record.home) if record and record.home else None
        uid = record.uid if record else None
        gid = record.gid if record else None
    if home is not None and (not os.path.lexists(home) or str(home) == "/"):
        home = None
    return Target(name, "system", account, uid, gid, home, entry is not None,
                  member.provider if member else None)


def _unknown(hub: Hub, name: str) -> HubkeeperError:
    return HubkeeperError(
        f"{name!r} is not on the roster of {hub.path}"
        + (" and has no account hubkeeper made" if hub.mode == "system" else ""),
        hint="`hubkeeper users list` shows who is")


def home_refusal(target: Target, keep: dict[Path, str]) -> str | None:
    """Why the home may not be removed whole (a mount point, another's home inside...)."""
    if target.home is None:
        return None
    return home_problem(target.home, target.uid, keep)


def removal_keep(hub: Hub, target: Target, archive_parent: Path | None) -> dict[Path, str]:
    """Real paths the removal never deletes: every other account's home, the state dir,
    hub.yaml and the archive folder."""
    extra = {Path(os.path.realpath(hub.paths.root)): "the state directory",
             Path(os.path.realpath(hub.path)): "hub.yaml"}
    if archive_parent is not None:
        extra[Path(os.path.realpath(archive_parent))] = "the archive folder"
    if target.mode == "personal":
        return extra  # the folder is under the state dir, not an account's home
    return keep_paths({target.account} if target.account else set(), extra)


# -- the archive ------------------------------------------------------------------------------

def archive_home(hub: Hub, target: Target, parent: Path, progress: Progress = silent
                 ) -> ArchiveInfo:
    """The archive of this one home (the same format as `hubkeeper archive`)."""
    assert target.home is not None
    contents = hub_contents(hub)
    home = Home(target.user, target.account or pwd.getpwuid(hub.euid).pw_name, target.home,
                target.uid if target.uid is not None else -1,
                target.gid if target.gid is not None else -1, managed=True)
    contents = replace(contents, homes=(home,), data=(), missing=())
    return write_archive(contents, parent, progress, user=target.user)


def check_archive(hub: Hub, target: Target, directory: Path, expected: str | None,
                  full: bool, progress: Progress = silent) -> ArchiveVerdict:
    """Does the archive in `directory` hold the home as it is now? `full`: re-read every tar
    and member first (verify_archive)."""

    def verify() -> list[str]:
        if not full:
            return []
        return verify_archive(directory, lambda d, t, what: progress(d, t, f"verify {what}"))

    return archive_verdict(directory, hub.name, [target.tree()], verify, expected, progress)


# -- the hub's side -----------------------------------------------------------------------------

def hub_api(hub: Hub) -> HubAPI | None:
    """The running hub's REST API with hubkeeper's service token, or None (not running)."""
    try:
        token = read_secret(hub.paths, "api-token")
    except HubkeeperError:  # the hub never ran here
        return None
    api = HubAPI(hub.hub_api_url, token)
    try:
        api.call("GET", "/")
    except HubUnreachable:
        return None
    return api


def remove_hub_user(api: HubAPI | None, user: str) -> str:
    """Stop the user's server and delete the hub user; what was done, in words."""
    if api is None:
        return ("the hub is not running: it forgets the user at its next start "
                "(`hubkeeper up` unregisters removed users)")
    quoted = urllib.parse.quote(user)
    try:
        model = api.call("GET", f"/users/{quoted}")
    except ApiError as exc:
        if exc.status == 404:
            return "the hub has no such user (already deleted)"
        raise
    said = []
    if (model.get("servers") or {}).get("") is not None or model.get("pending"):
        api.stop_server(user)
        said.append("server stopped")
    try:
        api.call("DELETE", f"/users/{quoted}")
    except ApiError as exc:
        if exc.status != 404:
            raise
    said.append("hub user deleted")
    return ", ".join(said)


# -- the machine's side -----------------------------------------------------------------------

def lock_account(target: Target, tools: ShadowTools) -> None:
    """No new login while the removal runs (PAM refuses a locked, expired account)."""
    if target.account and target.account_exists:
        tools.lock(target.account)


def kill_account(target: Target) -> int:
    if target.mode == "system" and target.account_exists and target.uid is not None:
        return kill_processes(target.uid)
    return 0


def remove_account(hub: Hub, journal: Journal, target: Target, keep: dict[Path, str],
                   progress: Progress, tools: ShadowTools) -> list[dict]:
    """userdel and the home (Remover.account, as retire does), then the journal record is
    dropped. Returns what was kept, with why (empty when all went)."""
    record = journal.accounts.get(target.account or "")
    if record is None:  # a resumed run that dropped it already
        return []
    remover = Remover(hub.paths, journal, {"removed": [], "kept": []}, "system", {},
                      progress, tools)
    remover.account(record, keep)
    del journal.accounts[record.account]
    journal.save()
    return remover.record["kept"]


def mark_removing(journal: Journal, target: Target) -> AccountRecord | None:
    """The journal record marked "removing" (with what a resumed run needs) and saved."""
    record = journal.accounts.get(target.account or "")
    if record is None:
        return None
    record.uid = target.uid if record.uid is None else record.uid
    record.home = record.home or (str(target.home) if target.home else None)
    record.state = "removing"
    journal.save()
    return record


def remove_folder(target: Target, keep: dict[Path, str]) -> str | None:
    """Personal mode: the user's folder under the state dir. Returns why it was kept."""
    if target.home is None or not os.path.lexists(target.home):
        return None
    problem = home_problem(target.home, target.uid, keep)
    if problem is None:
        remove_tree(target.home)
    return problem
