"""The removals of `retire`, in an order that a second run can resume.

Stop first (the hub, an orphaned proxy, every process of a journal account), then remove:
accounts with their homes, groups, data folders, environments, the state directory's
contents. Each journal record is marked "removing" before its removal and dropped after; a
retire killed half-way finds the marked records, and removing again what is already gone
is a no-op. The retirement record (RETIRED.json) is rewritten after each batch: what was
removed, what was kept and why.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import shutil
import stat
from dataclasses import asdict
from pathlib import Path

from hubkeeper.base import procs
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.whoami import effective_uid
from hubkeeper.host import images
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.lifecycle.retirement import (
    RECORD,
    Item,
    Progress,
    account_problem,
    foreign_mount,
    home_problem,
    keep_paths,
    state_contents,
    write_record,
)
from hubkeeper.state.journal import AccountRecord, Journal
from hubkeeper.state.statedir import StatePaths

log = logging.getLogger(__name__)
BATCH = 25  # accounts marked "removing" per journal write; a resumed run redoes at most this
KILL_DEADLINE = 10.0


def stop_process(pid: int) -> None:
    procs.stop(pid, 5.0)


def kill_processes(uid: int, deadline: float = KILL_DEADLINE) -> int:
    """SIGKILL every process of `uid` until none is left (a process may fork meanwhile)."""
    killed, left = procs.kill_all_of(uid, deadline)
    if left:
        raise HubkeeperError(
            f"processes of uid {uid} still run after {deadline:.0f} s: "
            f"{' '.join(map(str, left[:10]))}",
            hint="stop them by hand, then run `hubkeeper retire --yes` again")
    return killed


def stop_accounts(journal: Journal) -> int:
    """Kill every process of every account the journal lists (and that is still the account
    hubkeeper created): leftover servers, terminals, cron jobs. Returns how many."""
    killed = 0
    for record in journal.accounts.values():
        entry = _passwd(record.account)
        if entry is not None and account_problem(record.account, record.uid) is None:
            killed += kill_processes(entry.pw_uid)
    return killed


def _passwd(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def remove_tree(path: Path) -> None:
    """Remove the folder `path` and all in it, never following a link: the name is looked
    up in its parent's descriptor, and shutil.rmtree(dir_fd=) opens it, checks it is the
    folder it lstat'ed, and goes down by descriptors. A folder swapped for a link to a
    root's folder (by whoever can write its parent) is refused, not followed."""
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if not stat.S_ISDIR(os.lstat(path.name, dir_fd=parent).st_mode):
                raise HubkeeperError(f"{path} is no longer a folder (a link or a file is "
                                     "never followed); it was not removed",
                                     hint="look at what replaced it, then `hubkeeper retire "
                                     "--yes` again")
            shutil.rmtree(path.name, dir_fd=parent)
        finally:
            os.close(parent)
    except OSError as exc:
        raise HubkeeperError(f"cannot remove {path}: {exc}",
                             hint="fix that, then `hubkeeper retire --yes` again continues"
                             ) from None


class Remover:
    """Removes what the journal lists, in order, keeping the record up to date."""

    def __init__(self, paths: StatePaths, journal: Journal, record: dict, mode: str,
                 keep_extra: dict[Path, str], progress: Progress,
                 tools: ShadowTools | None = None) -> None:
        self.paths = paths
        self.journal = journal
        self.record = record
        self.mode = mode
        self.keep_extra = keep_extra
        self.progress = progress
        self.tools = tools or ShadowTools()
        # Records marked by a retire that was killed: what is gone was removed by it.
        self.resumed = {("account", name) for name, r in journal.accounts.items()
                        if r.state == "removing"}
        self.resumed |= {("group", name) for name, r in journal.groups.items()
                         if r.state == "removing"}
        self.removed_accounts: set[str] = set()

    def note(self, item: Item) -> None:
        """Add to the record's removed or kept list (once: a resumed run may see it again)."""
        for key in ("removed", "kept"):
            self.record[key] = [e for e in self.record[key]
                                if (e["kind"], e["name"]) != (item.kind, item.name)]
        entry = {k: v for k, v in asdict(item).items() if v is not None}
        self.record["kept" if item.refused else "removed"].append(entry)

    def flush(self) -> None:
        write_record(self.paths.root / RECORD, self.record)

    def run(self) -> None:
        self.accounts()
        if self.mode == "personal":
            self.personal_homes()
        self.groups()
        self.data()
        self.environments()
        self.state()

    # -- accounts and their homes -------------------------------------------------------------

    def accounts(self) -> None:
        records = [self.journal.accounts[name] for name in sorted(self.journal.accounts)]
        ours = {r.account for r in records  # an account that is another one now is kept
                if _passwd(r.account) is None or account_problem(r.account, r.uid) is None}
        keep = keep_paths(ours, self.keep_extra)
        total = len(records)
        for start in range(0, total, BATCH):
            batch = records[start:start + BATCH]
            for record in batch:  # what a resumed run needs, even once the account is gone
                entry = _passwd(record.account)
                if entry is not None:
                    record.uid = entry.pw_uid if record.uid is None else record.uid
                    record.home = record.home or entry.pw_dir
                record.state = "removing"
            self.journal.save()
            for done, record in enumerate(batch, start + 1):
                self.progress(done, total, f"remove account {record.account}")
                self.account(record, keep)
            self.flush()
            for record in batch:
                del self.journal.accounts[record.account]
            self.journal.save()

    def account(self, record: AccountRecord, keep: dict[Path, str]) -> None:
        name, home = record.account, record.home
        resumed = ("account", name) in self.resumed
        entry = _passwd(name)
        what = f"uid {record.uid}, hub user {record.user}"
        if entry is not None:
            problem = account_problem(name, record.uid)
            if problem:
                self.note(Item("account", name, what, problem))
                if home and os.path.lexists(home):
                    self.note(Item("home", home, f"of {record.user}",
                                   f"its account is kept: {problem}"))
                return
            if self.mode == "system":
                kill_processes(entry.pw_uid)
            self.tools.remove_account(name)
            self.removed_accounts.add(name)
            self.note(Item("account", name, what))
        elif resumed:
            self.note(Item("account", name, what))
        if home and os.path.lexists(home):
            problem = home_problem(Path(home), record.uid, keep)
            if problem is None:
                remove_tree(Path(home))
            self.note(Item("home", home, f"of {record.user}", problem))
        elif home and resumed:
            self.note(Item("home", home, f"of {record.user}"))

    def personal_homes(self) -> None:
        """Personal mode: the users' folders in <state>/users/ (all the hub account's)."""
        if not self.paths.users.is_dir():
            return
        keep = keep_paths(set(), self.keep_extra)
        homes = sorted(self.paths.users.iterdir())
        for done, home in enumerate(homes, 1):
            self.progress(done, len(homes), f"remove {home}")
            problem = home_problem(home, effective_uid(), keep)
            if problem is None:
                remove_tree(home)
            self.note(Item("home", str(home), f"of {home.name}", problem))
            self.flush()

    # -- groups, data folders, environments, state ------------------------------------------

    def groups(self) -> None:
        records = [self.journal.groups[name] for name in sorted(self.journal.groups)]
        if not records:
            return
        for record in records:
            record.state = "removing"
        self.journal.save()
        primary = {entry.pw_gid: entry.pw_name for entry in pwd.getpwall()}
        for done, record in enumerate(records, 1):
            self.progress(done, len(records), f"remove group {record.name}")
            try:
                gid = grp.getgrnam(record.name).gr_gid
            except KeyError:  # gone with its account (userdel), or in a killed run
                if record.name in self.removed_accounts:
                    self.note(Item("group", record.name, "removed by userdel with its account"))
                elif ("group", record.name) in self.resumed:
                    self.note(Item("group", record.name, f"gid {record.gid}"))
                continue
            problem = None
            if record.gid is not None and gid != record.gid:
                problem = (f"has gid {gid}, but hubkeeper created it with gid {record.gid}: "
                           "it is another group now")
            elif gid in primary:
                problem = f"is the primary group of the account {primary[gid]}"
            if problem is None:
                self.tools.remove_group(record.name)
            self.note(Item("group", record.name, f"gid {gid}", problem))
        self.flush()
        self.journal.groups.clear()
        self.journal.save()

    def data(self) -> None:
        keep = keep_paths(set(), self.keep_extra)
        keep.update({Path(os.path.realpath(e["name"])): f"the kept home {e['name']}"
                     for e in self.record["kept"] if e["kind"] == "home"})
        records = [self.journal.dirs[path] for path in sorted(self.journal.dirs)]
        for done, record in enumerate(records, 1):
            self.progress(done, len(records), f"remove {record.path}")
            resumed = record.state == "removing"
            record.state = "removing"
            self.journal.save()
            if os.path.lexists(record.path):
                problem = home_problem(Path(record.path), 0, keep)
                if problem is None:
                    remove_tree(Path(record.path))
                self.note(Item("data", record.path, record.kind, problem))
            elif resumed:
                self.note(Item("data", record.path, record.kind))
            self.flush()
            del self.journal.dirs[record.path]
            self.journal.save()

    def environments(self) -> None:
        if not self.paths.envs.is_dir():
            return
        builds = [env for env in sorted(self.paths.envs.iterdir())
                  if env.is_dir() and not env.is_symlink()]
        for done, env in enumerate(builds, 1):
            self.progress(done, len(builds), f"remove environment {env.name}")
            # backend docker: its images (and a killed hub's containers) go first; the
            # environment is reported as kept when the engine cannot remove them.
            problem = images.discard(env, self.record["hub"])
            if problem is None:
                remove_tree(env)
            self.note(Item("environment", env.name, str(env), problem))
            self.flush()

    def state(self) -> None:
        """Everything in the state directory but RETIRED.json (the journal goes last)."""
        contents = state_contents(self.paths)
        self.progress(0, 1, f"remove the contents of {self.paths.root}")
        for entry in sorted(self.paths.root.iterdir(),
                            key=lambda e: e == self.paths.journal):
            if entry.name == RECORD:
                continue
            if entry.is_dir() and not entry.is_symlink():
                mount = foreign_mount(entry)
                if mount:
                    contents.remove(entry.name + "/")
                    self.note(Item("state", str(entry), "", f"holds the mount point {mount}"))
                    continue
                remove_tree(entry)
            else:
                entry.unlink()
        before = [e["detail"] for e in self.record["removed"] if e["kind"] == "state"]
        if before:  # a killed run removed part of it
            contents = sorted(set(contents) | set(before[0].split(", ")))
        if contents:
            self.note(Item("state", str(self.paths.root), ", ".join(contents)))
        self.progress(1, 1, f"removed the contents of {self.paths.root}")
