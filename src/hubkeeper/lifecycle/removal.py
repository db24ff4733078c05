"""The removals of `retire`, in an order that a second run can resume.

Stop first (the hub, an orphaned proxy, every process of a journal account), then remove:
accounts with their homes, groups, data folders, environments, the state directory's
contents. Each journal record is marked "removing" before its removal and dropped after; a
retire killed half-way finds the marked records, and removing again what is already gone
is a no-op. The retirement record (RETIRED.json) is rewritten after each batch: what was
removed, what was kept and why.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import shutil
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from hubkeeper.base.locks import HubLock
from hubkeeper.errors import HubkeeperError
from hubkeeper.host import images
from hubkeeper.host.journal import AccountRecord, Journal
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.host.statedir import StatePaths
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

log = logging.getLogger(__name__)
BATCH = 25  # accounts marked "removing" per journal write; a resumed run redoes at most this
HUB_STOP_DEADLINE = 30.0  # `up` gives the hub 10 s, then kills it; this leaves a margin
KILL_DEADLINE = 10.0


def wait_until(done: Callable[[], bool], deadline: float) -> bool:
    """Poll `done` with exponential backoff (10 ms to 0.5 s) until true or `deadline` s."""
    end = time.monotonic() + deadline
    delay = 0.01
    while not done():
        if time.monotonic() > end:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    return True


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def running_hub(paths: StatePaths) -> int | None:
    """The pid of the `hubkeeper up` holding this state directory's lock (0: held, pid
    unknown), or None when no hub runs."""
    lock = HubLock(paths)
    try:
        lock.check_free()
    except HubkeeperError:
        return lock.holder() or 0
    return None


def stop_hub(paths: StatePaths, deadline: float = HUB_STOP_DEADLINE) -> int | None:
    """SIGTERM the running hub's `up` (it stops the hub, proxy and servers) and wait until
    the lock is free. Returns the pid stopped, None when none ran."""
    pid = running_hub(paths)
    if pid is None:
        return None
    argv = _cmdline(pid) if pid else []
    if "up" in argv and any("hubkeeper" in part for part in argv):
        log.info("stopping the hub: SIGTERM to pid %s", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    elif argv:  # alive, and not a `hubkeeper up`: never signalled
        raise HubkeeperError(f"{paths.lock} is held by pid {pid} ({' '.join(argv)[:100]}), "
                             "not by a `hubkeeper up`",
                             hint="let it finish (or stop it), then retire again")
    # else: `up` is gone and its hub, which inherited the lock, is dying with it
    if not wait_until(lambda: running_hub(paths) is None, deadline):
        raise HubkeeperError(
            f"the hub on {paths.root} (pid {pid or 'unknown'}) did not stop within "
            f"{deadline:.0f} s", hint=f"stop it by hand (kill -TERM {pid or '<pid>'}, then "
            "kill -KILL if it hangs) and run `hubkeeper retire --yes` again")
    return pid


def orphan_proxy(paths: StatePaths, api_port: int) -> int | None:
    """A proxy left running by a hub that was killed: the pid in run/proxy.pid, if that
    process is a proxy listening for this hub's API port."""
    try:
        pid = int(paths.proxy_pid.read_text().strip())
    except (OSError, ValueError):
        return None
    argv = _cmdline(pid)
    if any("proxy" in part for part in argv) and str(api_port) in argv:
        return pid
    return None


def stop_process(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not alive(pid), 5.0):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), 5.0)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def processes_of(uid: int) -> list[int]:
    """Live processes (not zombies) with `uid` as their real, effective or saved uid."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if uid in (int(part) for part in fields.get("Uid", "").split()[:3]):
            found.append(int(entry.name))
    return [pid for pid in found if pid != os.getpid()]


def kill_processes(uid: int, deadline: float = KILL_DEADLINE) -> int:
    """SIGKILL every process of `uid` until none is left (a process may fork meanwhile)."""
    killed = 0

    def none_left() -> bool:
        nonlocal killed
        pids = processes_of(uid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return not pids

    if not wait_until(none_left, deadline):
        raise HubkeeperError(
            f"processes of uid {uid} still run after {deadline:.0f} s: "
            f"{' '.join(map(str, processes_of(uid)[:10]))}",
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
            problem = home_problem(home, os.geteuid(), keep)
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
