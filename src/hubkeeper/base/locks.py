"""Exclusive locks that name their holder: the hub's, apply's, snapshot's, archive's and
each environment build's. The one lock module: every lock hubkeeper takes is made here.

flock(2) on a file holding the holder's pid. The kernel releases the lock when the holder
dies, so a kill -9 never leaves a stale lock behind; the pid is only there to be named.

Any account that can open a lock file can hold a shared flock on it and so refuse root's
snapshot, apply or hub start. A lock file is therefore 0600 (root's or the hub account's),
in a 0700 folder where the folder is ours alone (`<state>/run/`). A lock file an older
hubkeeper made 0644 may still be open in a student's process, which keeps its flock after
any chmod: such a file is never used again but replaced by a new one (a new inode: their
descriptor then locks nothing anyone checks), when it is free or held only by processes of
other accounts (/proc/locks names the holders). One held by root or the hub's account is a
real hubkeeper at work, and refuses as always.

The named locks take the state directory's layout (anything with `root`, `run` and `lock`
paths, as state/statedir's StatePaths has) or a folder, so that this module imports nothing
of hubkeeper above the base layer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from pathlib import Path
from typing import Protocol

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.whoami import effective_uid

log = logging.getLogger(__name__)

LOCK_MODE = 0o600
RUN_DIR_MODE = 0o700
PROC_LOCKS = Path("/proc/locks")


def private_directory(path: Path, mode: int = RUN_DIR_MODE) -> None:
    """Make `path` (created if missing) a folder of ours with `mode`, by descriptor: a link
    in its place is refused, never followed."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_uid == effective_uid() and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def flock_holders(info: os.stat_result, proc_locks: Path = PROC_LOCKS) -> list[int]:
    """The pids the kernel names as holding a flock on this inode (/proc/locks)."""
    try:
        lines = proc_locks.read_text().splitlines()
    except OSError:
        return []
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    holders = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            try:
                holders.append(int(fields[4]))
            except ValueError:
                continue
    return holders


def _uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def is_private(info: os.stat_result) -> bool:
    """A lock file nobody else could ever have opened: ours and 0600."""
    return info.st_uid == effective_uid() and stat.S_IMODE(info.st_mode) == LOCK_MODE


def held_by_strangers(info: os.stat_result) -> bool:
    """A lock file others could open (an older hubkeeper's 0644), held, and none of whose
    holders runs as us or root: a student's hold, not a hubkeeper's."""
    if is_private(info):
        return False
    ours = {0, effective_uid()}
    return not any(_uid_of(pid) in ours for pid in flock_holders(info))


class PidLock:
    """`private_dir`: the lock's folder holds only locks and pid files (`<state>/run/`), so
    it is made 0700; an environment's lock lives in a folder users must traverse."""

    def __init__(self, path: Path, busy: str, hint: str, private_dir: bool = True) -> None:
        self.path = path
        self.busy = busy  # what a refusal says: "another snapshot of this hub is running"
        self.hint = hint
        self.private_dir = private_dir
        self.fd: int | None = None
        self.legacy: int | None = None  # an old world-readable lock file, held till release

    def refusal(self) -> HubkeeperError:
        holder = self.holder()
        return HubkeeperError(self.busy + (f" (pid {holder})" if holder else ""),
                              hint=self.hint)

    def check_free(self) -> None:
        """Raise if someone of ours holds the lock; creates nothing (used before any
        change). A stranger's hold on an old world-readable lock file does not count: the
        acquire that follows replaces that file."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if not held_by_strangers(os.fstat(fd)):
                raise self.refusal() from None
        finally:
            os.close(fd)

    def _replace(self) -> int:
        """A new 0600 lock file, locked, renamed over the old one (whose inode someone else
        may hold open): locked before it is visible, so no one of ours takes it between."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)  # a leftover of a killed run with our pid
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, LOCK_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(temporary, self.path)
        return fd

    def acquire(self) -> None:
        if self.private_dir:
            private_directory(self.path.parent)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     LOCK_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if not held_by_strangers(os.fstat(fd)):
                os.close(fd)
                raise self.refusal() from None
            log.warning("%s: held by another account's process (a lock file an older "
                        "hubkeeper left readable); replaced by a private one", self.path)
            self.legacy = fd  # never ours to unlock; closed at release
            fd = self._replace()
        else:
            if not is_private(os.fstat(fd)):
                # Made by an older hubkeeper (0644): a student may have it open and flock it
                # later, which a chmod would not stop. A new inode; the old one stays
                # locked by us until release, so no other hubkeeper replaces it meanwhile.
                self.legacy = fd
                fd = self._replace()
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        if self.legacy is not None:
            os.close(self.legacy)
            self.legacy = None

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def renew(path: Path) -> bool:
    """Replace a lock file others could open (an older hubkeeper's) by a private one, unless
    one of ours holds it now; True if it was replaced. `up`, `apply` and `doctor --fix`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or is_private(info):
        return False
    lock = PidLock(path, f"{path} is in use", hint="", private_dir=path.parent.name == "run")
    try:
        lock.acquire()  # replaces a world-readable file by a new inode
    except HubkeeperError:
        return False  # held by one of ours: replaced when that one is done
    lock.release()
    return True


# --- the named locks ------------------------------------------------------------------


class StateRun(Protocol):
    """What the named locks need of a state directory's layout (state/statedir.StatePaths)."""

    @property
    def root(self) -> Path: ...

    @property
    def run(self) -> Path: ...  # <state>/run/, 0700: the lock files and pid files

    @property
    def lock(self) -> Path: ...  # <state>/run/hub.lock


class HubLock(PidLock):
    """An exclusive lock on the state directory while a hub runs; the holder's PID inside."""

    def __init__(self, paths: StateRun) -> None:
        super().__init__(
            paths.lock, f"another hub already runs on {paths.root}",
            hint="stop it first (Ctrl-C in its terminal, or kill -TERM that pid), or give "
            "this hub another hub.state_dir")
        self.paths = paths


def apply_lock(paths: StateRun) -> PidLock:
    """One apply (or retire) at a time per state dir."""
    return PidLock(paths.run / "apply.lock", "another `hubkeeper apply` is running on this "
                   "hub", hint="wait for it to finish")


def snapshot_lock(paths: StateRun) -> PidLock:
    """Only one snapshot of a hub at a time."""
    return PidLock(paths.run / "snapshot.lock", "another snapshot of this hub is running",
                   hint="wait for it to finish; a snapshot killed with kill -9 releases the "
                   "lock at once")


def archive_lock(paths: StateRun) -> PidLock:
    """Only one archive of a hub at a time (each writes its own folder and one line of
    archives.json)."""
    return PidLock(paths.run / "archive.lock", "another archive of this hub is "
                   "being written", hint="wait for it to finish (each writes its own folder "
                   "and one line of archives.json)")


def env_lock(directory: Path) -> PidLock:
    """One build of an environment (`directory`: <state>/envs/<name>) at a time. Its folder
    is one users' servers traverse, so it is left as it is (not made 0700)."""
    return PidLock(directory / ".lock", f"another build of {directory.name} is running",
                   hint="wait for it to finish", private_dir=False)
