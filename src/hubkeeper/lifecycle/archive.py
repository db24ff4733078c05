"""The end-of-course archive: self-contained, and checkable by hand.

    <parent>/<hub>-<YYYYmmddTHHMMSS>/     0700; written as .partial-<name>, renamed when whole
        users/<user>.tar.zst              one per home; members relative to the home
        data/<path>.tar.zst               one per shared or group folder (data/srv/x.tar.zst)
        hub.tar.zst                       hub/config/hub.yaml, the roster CSV, hub/roster.json,
                                          hub/state/journal.json, VERSION, the environments'
                                          lock files, hub/jupyterhub.sqlite (never secrets)
        MANIFEST.json                     every member of every tar with its SHA-256, and one
        MANIFEST.json.sha256              entry per tar with the SHA-256 of the whole file

`sha256sum -c MANIFEST.json.sha256` checks the manifest; `verify_archive`
(lifecycle/archive_verify.py) re-reads every tar and every member. `<state>/archives.json`
lists the archives written (for `retire`).

`users remove` writes the same archive for one user (`write_archive(..., user=NAME)`): the
folder is <hub>-<user>-<time>, it holds that home and hub.tar.zst (no data folders), and its
MANIFEST.json and its line in archives.json carry `"user": NAME`, so that `retire` never
takes it for an archive of the whole hub.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import fsync_dir, write_atomic
from hubkeeper.base.tree import Changed, walk_tree
from hubkeeper.base.whoami import effective_uid
from hubkeeper.lifecycle.manifest import (
    Entry,
    Progress,
    silent,
    write_manifest,
)
from hubkeeper.lifecycle.sources import HubContents, backup_database
from hubkeeper.lifecycle.tarzst import TarZstWriter
from hubkeeper.state.statedir import StatePaths

KIND = "hubkeeper-archive"
HUB_TAR = "hub.tar.zst"
DATABASE_MEMBER = "hub/jupyterhub.sqlite"
ROSTER_MEMBER = "hub/roster.json"
_REPORT_EVERY = 64 << 20  # progress within one tree every 64 MiB
# Trees written at once, each into its own tar: reading cold small files waits on the disk,
# and reading, hashing and compressing release the GIL. On 2 cores, 40 homes of 200 small
# files (cold cache) took 1.1-1.5 s 2 at a time against 1.5-2.3 s one at a time; 3 or 4 at
# a time gained nothing more.
TREES_AT_ONCE = 2


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ArchiveInfo:
    directory: Path
    manifest_sha256: str
    users: int  # homes archived
    bytes: int  # size of the archive on disk (the compressed tars)
    started: str  # ISO-8601 UTC
    finished: str
    source_bytes: int = 0  # bytes of the files archived, before compression
    skipped: tuple[str, ...] = ()  # what was not archived, and why (sockets, fifos...)


def special_kind(info: os.stat_result) -> str:
    """What a path that is not a file, folder or symlink is."""
    mode = info.st_mode
    return ("socket" if stat.S_ISSOCK(mode) else "fifo" if stat.S_ISFIFO(mode)
            else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file")


def user_tar(user: str) -> str:
    return f"users/{user}.tar.zst"


def member_dict(entry: Entry) -> dict:
    # vars(), not dataclasses.asdict: an Entry holds only scalars, and asdict's deep copy
    # cost about 1 s per 100,000 members
    return {k: v for k, v in vars(entry).items() if v is not None and k != "ino"}


def archives_file(paths: StatePaths) -> Path:
    return paths.root / "archives.json"


def recorded_archives(paths: StatePaths) -> list[dict]:
    """The archives `write_archive` recorded for this hub, oldest first ([] if none)."""
    path = archives_file(paths)
    try:
        body = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise HubkeeperError(f"{path} cannot be read: {exc}",
                             hint="it lists the archives written; each archive's own "
                             "MANIFEST.json is unaffected") from None
    if not isinstance(body, list):
        raise HubkeeperError(f"{path} is not a JSON list")
    return body


def check_target(contents: HubContents, parent: Path) -> None:
    """Refuse a target inside what is archived: the archive would hold itself."""
    target = parent.resolve()
    places = [(f"{home.user}'s home", home.path) for home in contents.homes]
    places += [(f"the {data.kind} folder", data.path) for data in contents.data]
    places.append(("the state directory", contents.paths.root))
    for what, place in places:
        place = place.resolve()
        if target == place or place in target.parents:
            raise HubkeeperError(
                f"{parent} is inside {what} {place}: the archive would hold itself",
                hint="choose a folder outside the homes, the data folders and the state "
                "directory, e.g. /var/backups/hubkeeper")


def prepare_parent(parent: Path) -> None:
    """The folder archives go in: made (0700) if missing, but only if its own parent exists,
    so that a mistyped mount point is an error, not a folder on the wrong disk."""
    if parent.is_dir():
        return
    if parent.exists():
        raise HubkeeperError(f"{parent} exists and is not a folder")
    if not parent.parent.is_dir():
        raise HubkeeperError(f"neither {parent} nor {parent.parent} exists",
                             hint=f"create {parent.parent} first (is the disk mounted?)")
    parent.mkdir(mode=0o700)


def unique_name(parent: Path, stem: str, suffix: str = "") -> str:
    """stem+suffix, or stem-2+suffix... when that is taken (two runs in one second)."""
    name, count = stem + suffix, 1
    while (parent / name).exists() or (parent / f".partial-{name}").exists():
        count += 1
        name = f"{stem}-{count}{suffix}"
    return name


@dataclass
class _Writing:
    """The state of one archive being written."""

    directory: Path
    total: int  # tars to write
    progress: Progress
    done: int = 0
    source_bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)  # by tar, in order of writing
    _since: int = 0
    # trees are written in threads: counters, lists and progress calls go under this lock
    lock: threading.Lock = field(default_factory=threading.Lock)

    def counted(self, what: str) -> Callable[[int], None]:
        def count(size: int) -> None:
            with self.lock:
                self.source_bytes += size
                self._since += size
                if self._since >= _REPORT_EVERY:
                    self._since = 0
                    self.progress(self.done, self.total,
                                  f"{what} {self.source_bytes >> 20} MiB")
        return count

    def skip(self, lines: list[str]) -> None:
        with self.lock:
            self.skipped += lines

    def close(self, writer: TarZstWriter, relative: str) -> None:
        digest, _ = writer.close()
        info = os.stat(writer.path)
        with self.lock:
            self.entries[relative] = Entry(relative, "f", info.st_size, info.st_mode,
                                           info.st_uid, info.st_gid, info.st_mtime_ns,
                                           sha256=digest)
            self.done += 1
            self.progress(self.done, self.total, relative)


def _tree(state: _Writing, relative: str, root: Path) -> tuple[list[dict], list[str]]:
    """Write root's tree into `relative` (a .tar.zst); the members' entries and what was
    not archived (run in a thread: only `state`'s locked methods are used)."""
    path = state.directory / relative
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    writer = TarZstWriter(path, state.counted(relative))
    members: list[dict] = []
    changed: list[str] = []
    skipped: list[str] = []
    try:
        for found in walk_tree(root, changed):
            kind = found.kind
            if kind is None:
                skipped.append(f"{root / found.path}: a {special_kind(found.info)}; "
                               "not archived")
                continue
            if kind != "f":
                try:
                    entry = found.entry()
                except Changed as why:  # a symlink swapped for something else
                    skipped.append(f"{root / found.path}: changed while archiving "
                                   f"({why}); not archived")
                    continue
                writer.add(entry)
                members.append(member_dict(entry))
                continue
            try:
                handle, info = found.open()
            except Changed as why:
                skipped.append(f"{root / found.path}: changed while archiving ({why}); "
                               "not archived")
                continue
            with handle:
                entry = found.entry(info)
                try:
                    short = writer.add_file(entry, handle)
                except OSError as exc:  # writing raises HubkeeperError: this is the read
                    raise OSError(exc.errno, exc.strerror, str(root / found.path)) from None
                if short:
                    skipped.append(f"{root / found.path}: shrank while archiving; the "
                                   "archived copy is padded with zeros")
            members.append(member_dict(entry))
    except OSError as exc:  # reading the tree: walk_tree and the read name the path
        writer.abandon()
        raise HubkeeperError(f"cannot read {exc.filename or root}: {exc.strerror}",
                             hint="an archive must hold everything; run as root") from None
    except BaseException:
        writer.abandon()
        raise
    skipped += [f"{root / p}: replaced while archiving; its contents are not archived"
                for p in changed]
    state.close(writer, relative)
    return members, skipped


def _trees(state: _Writing, trees: list[tuple[str, Path]]) -> dict[str, list[dict]]:
    """Write each (tar, root), TREES_AT_ONCE at a time; the members of each tar. What was
    not archived is added to `state.skipped` in the order of `trees`. The first failure
    stops the trees not yet started and is raised once the running ones have ended."""
    with ThreadPoolExecutor(TREES_AT_ONCE) as pool:
        running = [pool.submit(_tree, state, tar, root) for tar, root in trees]
        try:
            wait(running, return_when=FIRST_EXCEPTION)
            done = [future.result() for future in running]
        except BaseException:
            for future in running:
                future.cancel()
            raise
    written = {}
    for (tar, _), (members, skipped) in zip(trees, done, strict=True):
        written[tar] = members
        state.skip(skipped)
    return written


def _hub_tar(state: _Writing, contents: HubContents, started: datetime,
             database_needed: bool = True) -> list[dict]:
    """hub.tar.zst: the hub's own files (not its secrets), the roster, the database (a
    one-user archive of a hub that never ran has none)."""
    writer = TarZstWriter(state.directory / HUB_TAR, state.counted(HUB_TAR))
    members: list[dict] = []
    database = state.directory / ".jupyterhub.sqlite"
    try:
        for item in contents.files:
            if item.secret:
                continue
            try:
                handle = open(item.path, "rb", buffering=0)  # noqa: SIM115
            except OSError as exc:
                state.skipped.append(f"{item.path}: {exc.strerror}; not archived")
                continue
            with handle:
                info = os.fstat(handle.fileno())
                entry = Entry(item.key, "f", info.st_size, info.st_mode, info.st_uid,
                              info.st_gid, info.st_mtime_ns)
                writer.add_file(entry, handle)
            members.append(member_dict(entry))
        roster = [{"name": m.name, "account": m.account, "groups": sorted(m.groups),
                   "admin": m.admin, "locked": m.locked, "full_name": m.full_name,
                   "email": m.email} for m in contents.roster.members]
        entry = Entry(ROSTER_MEMBER, "f", 0, stat.S_IFREG | 0o600, effective_uid(),
                      os.getegid(), int(started.timestamp() * 10**9))
        writer.add_bytes(entry, json.dumps({"prefix": contents.roster.prefix,
                                            "groups": list(contents.roster.groups),
                                            "members": roster}, indent=1).encode() + b"\n")
        members.append(member_dict(entry))
        if database_needed or contents.paths.database.exists():
            backup_database(contents.paths.database, database)
            with open(database, "rb", buffering=0) as handle:
                info = os.fstat(handle.fileno())
                entry = Entry(DATABASE_MEMBER, "f", info.st_size, info.st_mode, info.st_uid,
                              info.st_gid, info.st_mtime_ns)
                writer.add_file(entry, handle)
            members.append(member_dict(entry))
    except BaseException:
        writer.abandon()
        raise
    finally:
        database.unlink(missing_ok=True)
    state.close(writer, HUB_TAR)
    return members


def _root_facts(path: Path) -> dict:
    info = path.stat()
    return {"mode": info.st_mode, "uid": info.st_uid, "gid": info.st_gid}


def write_archive(contents: HubContents, parent: Path, progress: Progress = silent,
                  now: Callable[[], datetime] = utcnow, user: str | None = None
                  ) -> ArchiveInfo:
    """Write the archive of `contents` into a new folder under `parent`; record it in
    <state>/archives.json. Nothing is left behind when it fails. `user`: only that user's
    home (and the hub's files), for `users remove`."""
    check_target(contents, parent)
    if user is not None:
        contents = replace(contents, homes=(contents.home(user),), data=(), missing=())
    prepare_parent(parent)
    started = now()
    hub = contents.loaded.spec.hub.name
    stem = f"{hub}-{user}" if user is not None else hub
    name = unique_name(parent, f"{stem}-{started:%Y%m%dT%H%M%S}")
    partial = parent / f".partial-{name}"
    partial.mkdir(mode=0o700)
    state = _Writing(partial, len(contents.homes) + len(contents.data) + 1, progress)
    try:
        progress(0, state.total, "starting")
        trees = [(user_tar(home.user), home.path) for home in contents.homes]
        trees += [(folder.key + ".tar.zst", folder.path) for folder in contents.data]
        written = _trees(state, trees)
        users = {}
        for home in contents.homes:
            tar = user_tar(home.user)
            users[home.user] = {"tar": tar, "account": home.account, "home": str(home.path),
                                "uid": home.uid, "gid": home.gid, "managed": home.managed,
                                "home_mode": home.path.stat().st_mode, "members": written[tar]}
        data = {}
        for folder in contents.data:
            tar = folder.key + ".tar.zst"
            data[str(folder.path)] = {"tar": tar, "kind": folder.kind,
                                      **_root_facts(folder.path), "members": written[tar]}
        hub_members = _hub_tar(state, contents, started, database_needed=user is None)
        finished = now()
        header = {
            "kind": KIND, "hub": hub, "hubkeeper": __version__,
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "config": str(contents.loaded.path), "mode": contents.mode,
            "users": users, "data": data,
            "hub_files": {"tar": HUB_TAR, "members": hub_members},
            "missing": list(contents.missing), "skipped": state.skipped,
        }
        if user is not None:
            header["user"] = user
        # the tars are written without an fsync each: one sync of their filesystem before
        # the manifest, which is written and synced before the folder gets its name
        synced = subprocess.run(["sync", "-f", str(partial)], capture_output=True, text=True,
                                check=False)
        if synced.returncode != 0:
            raise HubkeeperError(f"cannot sync {partial} to its disk: "
                                 f"{synced.stderr.strip()}", hint="is the disk failing?")
        tars = [*(tar for tar, _ in trees), HUB_TAR]
        digest = write_manifest(partial, header, [state.entries[tar] for tar in tars])
        final = parent / name
        os.rename(partial, final)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    record = {"path": str(final), "finished": header["finished"], "manifest_sha256": digest}
    if user is not None:
        record["user"] = user
    records = recorded_archives(contents.paths) + [record]
    write_atomic(archives_file(contents.paths),
                 (json.dumps(records, indent=1) + "\n").encode(), mode=0o600)
    return ArchiveInfo(final, digest, len(users), sum(e.size for e in state.entries.values()),
                       header["started"], header["finished"], state.source_bytes,
                       tuple(state.skipped))
