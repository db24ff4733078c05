"""Who writes at a path an operator names (`restore --to DIR`): root only where no other
account can change anything on the way, else the account that owns the way.

Each component is looked at from / down with lstat, following only links that root owns in
folders only root can change. The first component owned by another account decides: that
account writes (everything below is its to change anyway, so whatever it planted can only
steer its own writes). A folder that others may write but do not own (a group folder, or a
missing name in /tmp) has no single owner to write as: it is refused.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.whoami import effective_uid
from hubkeeper.host.asuser import Identity

MAX_LINKS = 40  # as the kernel's ELOOP


def myself() -> Identity:
    """This process's own identity (root, or the hub's account in personal mode)."""
    return Identity(effective_uid(), os.getegid(), tuple(sorted(set(os.getgroups()))))


def _shared(info: os.stat_result) -> bool:
    """Writable by accounts other than its owner (root's own group counts as root)."""
    mode = info.st_mode
    return bool(mode & stat.S_IWOTH or (mode & stat.S_IWGRP and info.st_gid != 0))


def _owner(info: os.stat_result) -> Identity:
    try:
        entry = pwd.getpwuid(info.st_uid)
    except KeyError:
        return Identity(info.st_uid, info.st_gid, (info.st_gid,))
    return Identity.of_uid(info.st_uid, entry.pw_gid)


def writer_for(path: str | os.PathLike[str]) -> Identity:
    """The identity that should write at `path` (which may not exist yet)."""
    wanted = Path(os.path.abspath(path))
    parts = list(wanted.parts[1:])
    current, links = Path("/"), 0
    while parts:
        here = os.lstat(current)
        name = parts.pop(0)
        try:
            info = os.lstat(current / name)
        except FileNotFoundError:
            if _shared(here):
                raise _refused(wanted, f"{current} is writable by other accounts, and "
                               f"{current / name} does not exist yet") from None
            return myself()  # the rest is made by root in root's own folder
        if info.st_uid != 0:
            return _owner(info)
        if stat.S_ISLNK(info.st_mode):  # root's link in root's folder: follow it
            links += 1
            if links > MAX_LINKS:
                raise _refused(wanted, "too many symbolic links")
            target = os.path.normpath(current / os.readlink(current / name))
            parts = list(Path(target).parts[1:]) + parts
            current = Path("/")
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise _refused(wanted, f"{current / name} is not a folder")
        if _shared(info) and not info.st_mode & stat.S_ISVTX:
            raise _refused(wanted, f"{current / name} is writable by other accounts (mode "
                           f"{stat.S_IMODE(info.st_mode):o}, group {info.st_gid})")
        current = current / name
    if _shared(os.lstat(current)):
        raise _refused(wanted, f"{current} is writable by other accounts")
    return myself()


def _refused(path: Path, why: str) -> HubkeeperError:
    return HubkeeperError(f"will not write to {path}: {why}, so no single account owns what "
                          "would be written there",
                          hint="give a folder of root's (e.g. a new one under /root or "
                          "/var/tmp made with mkdir -m 700) or one inside a user's home")
