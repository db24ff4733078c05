"""How much of a disk one home holds, and each user's fair share of it (the disk guard).

When a disk runs short, the disk guard (data.min_free) refuses the starts of the users
whose home holds more than their fair share, and lets the others start: one student filling
the disk must not lock everyone else out of their notebooks.

The walk runs as root over a tree its user can change while it runs, so it goes by
directory descriptors (openat with O_NOFOLLOW, fstatat without following): a link is
counted as a link and never followed out of the home, and another filesystem mounted inside
is not entered. It counts allocated blocks (a sparse file costs what it holds), each hard
link once, and stops at a deadline with what it has counted so far (a lower bound).
"""

from __future__ import annotations

import os
import pwd
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from hubkeeper.context.hub import Hub
from hubkeeper.state.identity import Unbound, journal_account

WALK_SECONDS = 10.0  # a start waits at most this long for the measure of its home


@dataclass(frozen=True)
class HomeUsage:
    path: str
    bytes: int  # allocated
    complete: bool  # False: the deadline came first, `bytes` is a lower bound


def home_usage(home: str, deadline_seconds: float = WALK_SECONDS) -> HomeUsage:
    end = time.monotonic() + deadline_seconds
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        top = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return HomeUsage(home, 0, False)
    device = os.fstat(top).st_dev
    stack = [top]
    complete = True
    try:
        while stack:
            fd = stack.pop()
            try:
                info = os.fstat(fd)
                total += info.st_blocks * 512
                with os.scandir(fd) as entries:
                    for entry in entries:
                        if time.monotonic() > end:
                            complete = False
                            return HomeUsage(home, total, complete)
                        try:
                            child = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue  # removed meanwhile
                        if stat.S_ISDIR(child.st_mode):
                            if child.st_dev != device:
                                continue  # a mount inside the home: another disk
                            try:
                                stack.append(os.open(
                                    entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                    | os.O_CLOEXEC, dir_fd=fd))
                            except OSError:
                                continue  # replaced by a link or removed meanwhile
                            continue
                        key = (child.st_dev, child.st_ino)
                        if child.st_nlink > 1:
                            if key in seen:
                                continue
                            seen.add(key)
                        total += child.st_blocks * 512
            except OSError:
                complete = False
            finally:
                os.close(fd)
    finally:
        for fd in stack:
            os.close(fd)
    return HomeUsage(home, total, complete)


def disk_size(path: str) -> int:
    """The size of the filesystem holding `path`, in bytes (what users may fill)."""
    info = os.statvfs(path)
    return info.f_blocks * info.f_frsize


def fair_share(size: int, users: int, reserve: int = 0) -> int:
    """One user's fair share of a disk of `size` bytes shared by `users` hub users, of which
    `reserve` bytes (data.min_free) are to stay free: an equal part of what users may fill
    (not of what is left now: a student who filled it must not shrink everyone else's
    share). A hub with one user still refuses that user on a full disk."""
    return max(0, size - reserve) // max(1, users)


def homes_of(hub: Hub) -> Callable[[], dict[str, str]]:
    """A lookup of the roster's homes, hub user -> home, made afresh at each call: system
    mode, the home of the account hubkeeper's journal binds to the user (as the spawner runs
    it; a user without an account yet is left out); personal mode, <state>/users/<name>."""
    users = tuple(member.name for member in hub.roster.members)
    if hub.mode == "personal":
        folder = hub.paths.users
        return lambda: {user: str(folder / user) for user in users}
    journal = str(hub.paths.journal)

    def system_homes() -> dict[str, str]:
        homes = {}
        for user in users:
            try:
                homes[user] = pwd.getpwnam(journal_account(journal, user).account).pw_dir
            except (Unbound, KeyError):
                continue  # no account yet: nothing to measure
        return homes

    return system_homes


def read_homes(homes: dict[str, str], deadline_seconds: float = WALK_SECONDS
               ) -> tuple[dict[str, int], dict[str, int]]:
    """(user -> bytes their home holds, folder of homes -> bytes free there), one entry per
    filesystem. A home that is not a directory (a link, say) counts 0. The hub's metrics
    and the instructor's page read homes this way."""
    sizes = {user: home_usage(home, deadline_seconds).bytes
             for user, home in sorted(homes.items())}
    free: dict[str, int] = {}
    devices: set[int] = set()
    for home in sorted(homes.values()):
        folder = os.path.dirname(home.rstrip("/")) or "/"
        try:
            info = os.stat(folder)
            if info.st_dev in devices:
                continue
            disk = os.statvfs(folder)
        except OSError:
            continue
        devices.add(info.st_dev)
        free[folder] = disk.f_bavail * disk.f_frsize
    return sizes, free
