"""`hubkeeper usage`: how much each roster user's home holds, largest first.

System mode: the account's home; personal mode: <state>/users/<name>. Bytes are apparent
sizes (as `du -sb`), symlinks are not followed and a hard-linked file counts once.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.tree import walk_tree
from hubkeeper.context.hub import Hub


@dataclass(frozen=True)
class HomeUsage:
    name: str
    account: str
    home: str | None  # None: the account does not exist
    bytes: int
    files: int
    free_bytes: int | None  # free space (for users) on the home's filesystem
    note: str | None  # why the count is missing or incomplete


@dataclass(frozen=True)
class UsageResult:
    config: str
    mode: str
    min_free: int  # data.min_free, bytes
    homes: tuple[HomeUsage, ...]  # largest first

    @property
    def total_bytes(self) -> int:
        return sum(home.bytes for home in self.homes)


@dataclass(frozen=True)
class Tally:
    bytes: int
    files: int
    unreadable: int  # directories that could not be listed


def tally(root: str) -> Tally:
    """Apparent bytes and entries under `root`, not following symlinks (like `du -sb`).

    Walked by descriptors with O_NOFOLLOW (base/tree.py): the home's owner cannot
    swap a folder for a link and send root's count through /, /proc or another home."""
    total = files = unreadable = 0
    seen: set[tuple[int, int]] = set()
    try:
        for found in walk_tree(Path(root)):
            info = found.info
            if stat.S_ISDIR(info.st_mode):
                continue
            if info.st_nlink > 1:
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += info.st_size
            files += 1
    except OSError:
        unreadable += 1  # the count stops at a folder that cannot be listed
    return Tally(total, files, unreadable)


def _free(path: str) -> int | None:
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def usage(hub: Hub) -> UsageResult:
    loaded = hub.loaded
    roster = hub.roster
    mode = hub.mode
    paths = hub.paths
    homes = []
    for member in roster.members:
        if mode == "personal":
            home: str | None = str(paths.users / member.name)
        else:
            try:
                home = pwd.getpwnam(member.account).pw_dir
            except KeyError:
                home = None
        if home is None:
            homes.append(HomeUsage(member.name, member.account, None, 0, 0, None,
                                   "no Linux account (`hubkeeper apply` creates it)"))
            continue
        if not os.path.isdir(home):
            homes.append(HomeUsage(member.name, member.account, home, 0, 0, None,
                                   "no home yet (made at the first server start)"))
            continue
        counted = tally(home)
        note = ("a folder could not be read, so the count is partial; run as root"
                if counted.unreadable else None)
        homes.append(HomeUsage(member.name, member.account, home, counted.bytes,
                               counted.files, _free(home), note))
    homes.sort(key=lambda h: (-h.bytes, h.name))
    return UsageResult(str(loaded.path), mode, loaded.spec.data.min_free, tuple(homes))
