"""One user's files in the snapshots, as the student's page may see and restore them.

These are the bodies of the root helper's fixed requests (lifecycle/webhelper.py). Each takes
an opened `Hub` and checks what it is given as the CLI checks its input: the user is an
active roster user with a home on this hub (the roster's name rules first), a snapshot is
named by its id (YYYYmmddTHHMMSS) and must be a complete snapshot on one of the hub's
targets that holds the user's home, a path is relative, without `..`, inside that home.

Inside a snapshot, root reads by descriptor (`O_NOFOLLOW` at every step, from the user's
home in it): the snapshot is a copy of what the student had, links included, and a link
is shown as a link, never followed. Restores are written by the student's own account
(lifecycle/restore.py); the zip of the whole work is read by descriptor from the live home
(lifecycle/userzip.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import free_bytes
from hubkeeper.context.hub import Hub
from hubkeeper.host.homesize import home_usage
from hubkeeper.host.snapshots import NAME, complete_snapshots
from hubkeeper.lifecycle.manifest import MANIFEST, read_manifest
from hubkeeper.lifecycle.restore import Restored, clean_relative, restore_beside, restore_user
from hubkeeper.lifecycle.snapshot import snapshot_targets
from hubkeeper.lifecycle.sources import Home, hub_contents
from hubkeeper.lifecycle.userzip import export_home
from hubkeeper.roster.policy import name_problem

LIST_LIMIT = 2000  # entries of one folder shown; a page, not a dump


class Refused(HubkeeperError):
    """A request the page may not make (its message is shown to the student)."""


@dataclass(frozen=True)
class SnapshotOfUser:
    id: str  # YYYYmmddTHHMMSS
    created: str | None  # from the manifest


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "file", "folder", "link", "other"
    size: int
    mtime: float


def check_user(hub: Hub, user: object) -> Home:
    """The home of `user`, an active roster user of this hub; Refused otherwise."""
    if not isinstance(user, str) or (why := name_problem(user)) is not None:
        raise Refused(f"not a user name: {why or 'not a string'}")
    if user not in {member.name for member in hub.roster.active}:
        raise Refused(f"{user!r} is not an active user of this hub")
    try:
        return hub_contents(hub).home(user)
    except HubkeeperError as exc:
        raise Refused(exc.message) from None


def _snapshot_dirs(hub: Hub) -> list[Path]:
    targets = snapshot_targets(hub_contents(hub)) if hub.spec.snapshots.targets else []
    return [target / name for target in targets for name in complete_snapshots(target)]


def _homes_in(snapshot: Path) -> dict:
    header = _header(str(snapshot), (snapshot / MANIFEST).stat().st_mtime_ns)
    if header.get("kind") != "hubkeeper-snapshot":
        return {}
    return header.get("homes", {})


@functools.lru_cache(maxsize=256)
def _header(snapshot: str, mtime_ns: int) -> dict:
    """A complete snapshot's manifest header, read (and checked) once: a manifest lists
    every file of every home, and a page asks about the same few snapshots again and again.
    A complete snapshot never changes; the mtime is there for one written anew."""
    header, _ = read_manifest(Path(snapshot))
    return header


def snapshots(hub: Hub, user: str) -> list[SnapshotOfUser]:
    """The snapshots holding `user`'s home, newest first."""
    check_user(hub, user)
    found = {}
    for snapshot in _snapshot_dirs(hub):
        with contextlib.suppress(HubkeeperError, OSError):
            if user in _homes_in(snapshot) and snapshot.name not in found:
                header = _header(str(snapshot), (snapshot / MANIFEST).stat().st_mtime_ns)
                found[snapshot.name] = SnapshotOfUser(snapshot.name, header.get("created"))
    return [found[name] for name in sorted(found, reverse=True)]


def find_user_snapshot(hub: Hub, user: str, snapshot_id: object) -> Path:
    """The snapshot `snapshot_id` holding `user`'s home; Refused for a malformed or unknown id."""
    check_user(hub, user)
    if not isinstance(snapshot_id, str) or not NAME.match(snapshot_id):
        raise Refused("not a snapshot id (YYYYmmddTHHMMSS)")
    for snapshot in _snapshot_dirs(hub):
        if snapshot.name == snapshot_id:
            with contextlib.suppress(HubkeeperError, OSError):
                if user in _homes_in(snapshot):
                    return snapshot
    raise Refused(f"no snapshot {snapshot_id} holds {user}'s home")


def check_path(path: object, *, empty: bool = False) -> str:
    """A relative path inside a home, cleaned ('' for the home itself when `empty`)."""
    if not isinstance(path, str) or "\0" in path:
        raise Refused("not a path")
    if path.strip() in ("", ".") and empty:
        return ""
    try:
        return clean_relative(path)
    except HubkeeperError as exc:
        raise Refused(exc.message) from None


@contextlib.contextmanager
def _open_in(snapshot: Path, user: str, relative: str,
             folder: bool) -> Iterator[int]:
    """A descriptor of `relative` in `user`'s home in `snapshot`, no link followed on the
    way or at the end; Refused when something is a link or is not what was asked."""
    fd = os.open(snapshot / "homes" / user, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                 | os.O_CLOEXEC)
    parts = PurePosixPath(relative).parts if relative else ()
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            if not last or folder:
                flags |= os.O_DIRECTORY
            try:
                next_fd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                raise Refused(f"{relative!r} is not in this snapshot") from None
            except OSError:  # ELOOP (a link) or ENOTDIR
                what = "a folder" if (not last or folder) else "a file"
                raise Refused(f"{'/'.join(parts[:index + 1])!r} is a link or not {what}; "
                              "links are not followed") from None
            os.close(fd)
            fd = next_fd
        yield fd
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    return "link" if stat.S_ISLNK(mode) else "other"


def list_folder(hub: Hub, user: str, snapshot_id: object, path: object) -> list[Entry]:
    """One folder of `user`'s home in a snapshot: folders first, then by name."""
    snapshot = find_user_snapshot(hub, user, snapshot_id)
    relative = check_path(path, empty=True)
    entries = []
    with _open_in(snapshot, user, relative, folder=True) as fd:
        for name in sorted(os.listdir(fd))[:LIST_LIMIT]:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            entries.append(Entry(name, _kind(info.st_mode), info.st_size, info.st_mtime))
    return sorted(entries, key=lambda e: (e.kind != "folder", e.name))


@contextlib.contextmanager
def open_file(hub: Hub, user: str, snapshot_id: object, path: object,
              limit: int) -> Iterator[tuple[BinaryIO, int]]:
    """One regular file of `user`'s home in a snapshot, opened, with its size (at most
    `limit` bytes, else Refused)."""
    snapshot = find_user_snapshot(hub, user, snapshot_id)
    relative = check_path(path)
    with _open_in(snapshot, user, relative, folder=False) as fd:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{relative!r} is not a file")
        if info.st_size > limit:
            raise Refused(f"{relative!r} is larger than {limit} bytes, the most the page "
                          "downloads; ask an instructor")
        with os.fdopen(os.dup(fd), "rb") as handle:
            yield handle, info.st_size


def restore(hub: Hub, user: str, snapshot_id: object, path: object,
            replace: object) -> Restored:
    """`path` of `user`'s home in a snapshot back into the live home, written as the user:
    next to the current one, or over it (what it replaces moved to before-restore-<time>/)."""
    snapshot = find_user_snapshot(hub, user, snapshot_id)
    relative = check_path(path)
    if not isinstance(replace, bool):
        raise Refused("replace is true or false")
    with _open_in(snapshot, user, str(PurePosixPath(relative).parent)
                  if "/" in relative else "", folder=True) as fd:
        try:  # the item itself may be a file or a folder, but not a link
            info = os.stat(PurePosixPath(relative).name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise Refused(f"{relative!r} is not in this snapshot") from None
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            raise Refused(f"{relative!r} is a link or a special file; only files and "
                          "folders are restored")
    if replace:
        return restore_user(snapshot, user, relative)
    return restore_beside(snapshot, user, relative)


_exporting: set[str] = set()  # users whose zip is being made now (one each at a time)
_exporting_lock = threading.Lock()


@contextlib.contextmanager
def export_zip(hub: Hub, user: str) -> Iterator[tuple[BinaryIO, int]]:
    """The user's whole live home as a zip in a private folder of root's, opened with its
    size; removed when the caller is done. One at a time per user, and only when the home
    (measured, links not followed) fits in the state directory's free space above
    data.min_free: a student cannot fill root's disk by asking for zips."""
    home = check_user(hub, user)
    hub.paths.run.mkdir(parents=True, exist_ok=True)
    with _exporting_lock:
        if user in _exporting:
            raise Refused("a zip of your work is being made already; wait for it")
        _exporting.add(user)
    try:
        size = home_usage(str(home.path)).bytes
        _, free = free_bytes(str(hub.paths.run))
        room = free - int(hub.spec.data.min_free)
        if size > room:
            raise Refused(f"your home holds {size // 2**20} MiB, more than the hub has room "
                          "to zip now; ask your instructor for a copy")
        with tempfile.TemporaryDirectory(dir=hub.paths.run, prefix="export-") as folder:
            info = export_home(home.path, Path(folder) / f"{user}.zip", lambda _files: None)
            with open(info.path, "rb") as handle:
                yield handle, os.fstat(handle.fileno()).st_size
    finally:
        with _exporting_lock:
            _exporting.discard(user)
