"""Reading a tree that its owner may change while root reads it (a student's home).

Everything is opened relative to its parent directory's file descriptor with O_NOFOLLOW, and
each file or folder opened must be the one that was listed (same inode). A folder swapped
for a symlink to /etc between the listing and the read is therefore never followed: an
archive or export made as root holds only what was inside the tree.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in after the listing must not block the open.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


@dataclass
class Entry:
    """One entry of a tree as a manifest lists it."""

    path: str
    type: str  # f, d, l
    size: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    sha256: str | None = None
    link: str | None = None
    ino: int | None = None

    def same_metadata(self, other: Entry) -> bool:
        return (self.type, self.size, self.mode, self.uid, self.gid, self.mtime_ns,
                self.link) == (other.type, other.size, other.mode, other.uid, other.gid,
                               other.mtime_ns, other.link)


class Changed(Exception):
    """The path is no longer what was listed (replaced, removed, or a different type)."""


@dataclass(frozen=True)
class Found:
    path: str  # relative to the root, '/'-separated, no leading './'
    info: os.stat_result  # lstat at listing time
    parent_fd: int  # open while the walk is at this entry
    name: str

    @property
    def kind(self) -> str | None:
        """f, d, l as in manifests; None for sockets, fifos and devices."""
        mode = self.info.st_mode
        return ("d" if stat.S_ISDIR(mode) else "f" if stat.S_ISREG(mode)
                else "l" if stat.S_ISLNK(mode) else None)

    def entry(self, info: os.stat_result | None = None) -> Entry:
        """The manifest entry (no hash yet), from `info` (an fstat) or the listing's lstat."""
        info = info or self.info
        kind = self.kind or "?"
        return Entry(self.path, kind, info.st_size if kind == "f" else 0, info.st_mode,
                     info.st_uid, info.st_gid, info.st_mtime_ns,
                     link=self.readlink() if kind == "l" else None)

    def readlink(self) -> str:
        """The listed symlink's target; Changed when it is no longer a symlink (its owner
        swapped it for a folder or file after the listing, or removed it)."""
        try:
            return os.readlink(self.name, dir_fd=self.parent_fd)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
                raise Changed(exc.strerror) from None
            raise

    def open(self) -> tuple[BinaryIO, os.stat_result]:
        """The listed regular file, opened without following anything, with its fstat."""
        try:
            fd = os.open(self.name, _FILE_FLAGS, dir_fd=self.parent_fd)
        except OSError as exc:
            raise Changed(exc.strerror) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_ino != self.info.st_ino:
            os.close(fd)
            raise Changed("replaced after it was listed")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0), info


def walk_tree(root: Path, changed: list[str] | None = None) -> Iterator[Found]:
    """Everything under `root` (not root itself), parents before children, each folder's
    entries sorted by name. A folder replaced after it was listed is not entered (its path
    is appended to `changed`). Raises OSError naming the folder that cannot be read."""
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    stack: list[tuple[int, str, Iterator[tuple[str, os.stat_result]]]] = []
    try:
        stack.append((top, "", _listing(top, root)))
        while stack:
            fd, prefix, entries = stack[-1]
            item = next(entries, None)
            if item is None:
                stack.pop()
                os.close(fd)
                continue
            name, info = item
            path = prefix + name
            yield Found(path, info, fd, name)
            if stat.S_ISDIR(info.st_mode):
                child = _open_dir(fd, name, info, root / path)
                if child is None:
                    if changed is not None:
                        changed.append(path)
                else:
                    stack.append((child, path + "/", _listing(child, root / path)))
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _open_dir(parent: int, name: str, info: os.stat_result, where: Path) -> int | None:
    """The listed folder, or None when it was replaced after the listing (its entry was
    already given; it is then empty in the copy)."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            return None
        raise OSError(exc.errno, exc.strerror, str(where)) from None
    if os.fstat(fd).st_ino != info.st_ino:
        os.close(fd)
        return None
    return fd


def _listing(fd: int, where: Path) -> Iterator[tuple[str, os.stat_result]]:
    try:
        with os.scandir(fd) as listing:
            entries = []
            for entry in listing:
                try:
                    entries.append((entry.name, entry.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue  # removed while listing
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(where)) from None
    entries.sort(key=lambda item: item[0])
    return iter(entries)
