"""Snapshots: `<target>/<YYYYmmddTHHMMSS>/`, hard-linked to the previous one, `latest` atomic.

One snapshot, on each target independently:

1. repair: remove what a killed run left (`.partial-*`, `.deleting-*`, `.latest-*`) and
   point `latest` at the newest complete snapshot;
2. copy into `<target>/.partial-<name>/` with rsync `--link-dest=<target>/latest/...`, so
   an unchanged file is a hard link to the previous snapshot: the hub's files (the database
   from SQLite's online backup), each home (read as its owner) and each data folder, eight
   rsyncs at a time (host/rsync.py), each tree scanned (and its changed files hashed) as
   soon as its copy ends. A home whose owner made files vanish or become unreadable
   mid-copy is in the snapshot, marked incomplete, never a failed snapshot;
3. MANIFEST.json (every entry, SHA-256, and the incomplete trees) and its .sha256, then
   `sync -f`;
4. rename `.partial-<name>` to `<name>` (a snapshot with a name is complete), then switch
   `latest` with a rename of a new symlink over it: `latest` only ever names a complete one;
5. retention: a snapshot to drop is first renamed `.deleting-<name>`, then removed, so a
   half-removed snapshot never looks complete. The newest and `latest` are always kept.

A kill -9 at any moment leaves the previous snapshots and `latest` as they were; the next run
cleans up. A full target fails that target with a clear message; the others carry on.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.base.files import fsync_dir, write_atomic
from hubkeeper.base.locks import snapshot_lock
from hubkeeper.base.whoami import effective_uid
from hubkeeper.config.operation import Retention
from hubkeeper.config.types import config_relative
from hubkeeper.host.asuser import Identity
from hubkeeper.host.rsync import Incomplete, Source, TargetFailed, copy_tree, group_reader
from hubkeeper.host.snapshots import LATEST, complete_snapshots, latest_name
from hubkeeper.lifecycle.manifest import (
    MANIFEST,
    Entry,
    Progress,
    read_manifest,
    scan,
    silent,
    verify_tree,
    write_manifest,
)
from hubkeeper.lifecycle.snapshot_target import apply_retention, point_latest, repair
from hubkeeper.lifecycle.sources import HubContents, account_records, backup_database
from hubkeeper.state.snapshot_runs import TargetRun, now_utc, record_runs

KIND = "hubkeeper-snapshot"
# rsync of many small files waits on the disk more than on the CPU, and each call sleeps
# some 40 ms on its way out: on 2 cores, 200 homes of 500 files took 30.3, 18.7, 18.1 and
# 16.9 s to copy 1, 2, 4 and 8 at a time (25.6-32.1 CPU-s), and 22.5, 11.4, 8.4 and 8.2 s
# as --link-dest copies (bench/snapshot.py's anatomy, 2026-11-23): 8 costs no more CPU.
RSYNC_AT_ONCE = 8


@dataclass(frozen=True)
class TargetResult:
    target: str
    snapshot: str | None  # its path, when written
    ok: bool
    files: int = 0
    bytes: int = 0
    linked: int = 0  # files hard-linked to the previous snapshot (unchanged)
    removed: tuple[str, ...] = ()  # dropped by retention
    cleaned: tuple[str, ...] = ()  # leftovers of a killed run
    error: str | None = None
    incomplete: tuple[Incomplete, ...] = ()  # trees in the snapshot but not whole, and why


@dataclass(frozen=True)
class SnapshotResult:
    config: str
    name: str
    users: int  # homes captured
    hub_users: int  # users in the hub database copy
    targets: tuple[TargetResult, ...]

    @property
    def ok(self) -> bool:
        return all(target.ok for target in self.targets)


# --- targets -------------------------------------------------------------------------------


def snapshot_targets(contents: HubContents, given: tuple[Path, ...] = ()) -> list[Path]:
    """The targets to write: --target, else hub.yaml's snapshots.targets. Checked: never
    inside (or around) a home, a data folder or the state directory."""
    loaded = contents.loaded
    if given:
        targets = [(Path(os.path.abspath(t)), None) for t in given]
    else:
        targets = [(config_relative(loaded.path.parent, t), ("snapshots", "targets", i))
                   for i, t in enumerate(loaded.spec.snapshots.targets)]
    if not targets:
        raise HubkeeperError(
            f"{loaded.path}: no snapshot target",
            hint="add `snapshots: {targets: [/srv/backup/hub]}` to hub.yaml (one target per "
            "disk), or give --target DIR")
    guarded = [(home.path, f"the home of {home.user}") for home in contents.homes]
    guarded += [(data.path, f"the data folder {data.path}") for data in contents.data]
    guarded.append((contents.paths.root, "the state directory"))
    problems = []
    for target, loc in targets:
        for path, what in guarded:
            if target == path or path in target.parents or target in path.parents:
                message = f"{target} would be inside (or contain) {what}; snapshots " \
                    "must live apart from what they copy"
                problems.append(loaded.problem(loc, message) if loc else
                                Problem("--target", None, None, "", message))
                break
    if problems:
        raise InvalidInput(problems, hint="choose a directory on another disk, e.g. "
                           "/srv/backup/<hub>")
    return [target for target, _ in targets]


# --- taking one ----------------------------------------------------------------------------


def _new_name(targets: list[Path]) -> str:
    """A UTC timestamp name free on every target (waits for the next second if taken)."""
    while True:
        name = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        if not any((t / name).exists() or (t / f".partial-{name}").exists() for t in targets):
            return name
        time.sleep(0.2)


def _stage_hub(contents: HubContents, stage: Path) -> int:
    """The hub's own files in `stage`/hub/ (database by online backup). Returns hub users."""
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True, mode=0o700)
    hub = stage / "hub"
    hub.mkdir(mode=0o700)
    users = backup_database(contents.paths.database, hub / "jupyterhub.sqlite")
    for item in contents.files:
        if item.path.is_file():
            place = stage / item.key
            place.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item.path, place)
    write_atomic(hub / "accounts.json",
                 (json.dumps(account_records(contents), indent=1) + "\n").encode(), mode=0o600)
    return users


def _copy_all(sources: list[Source], partial: Path, previous: Path | None,
              before: Future[dict[str, Entry]], progress: Progress
              ) -> tuple[list[Incomplete], list[Entry]]:
    """rsync every source into `partial`, RSYNC_AT_ONCE at a time, each tree scanned into
    manifest entries as soon as its copy ends, while the other copies run (`before`: the
    previous snapshot's entries, whose hashes a hard-linked file keeps). Returns the trees
    copied but not whole, and the entries of every tree. The first failure of the target
    fails all (the others finish or fail on their own; the partial snapshot is then
    removed)."""
    incomplete: list[Incomplete] = []
    scanned: dict[str, list[Entry]] = {}

    def copy_and_scan(source: Source) -> Incomplete | None:
        warning = copy_tree(source, partial / source.key,
                            previous / source.key if previous else None)
        # a tree whose reading side ended at its start may have no folder in the copy
        scanned[source.key] = (scan(partial, before.result(), under=source.key)
                               if (partial / source.key).is_dir() else [])
        return warning

    with ThreadPoolExecutor(RSYNC_AT_ONCE) as pool:
        running = {pool.submit(copy_and_scan, source): source.key for source in sources}
        try:
            for done, finished in enumerate(as_completed(running), 1):
                if (warning := finished.result()) is not None:
                    incomplete.append(warning)
                progress(done, len(running), f"copied {running[finished]}")
        except BaseException:
            for future in running:
                future.cancel()
            raise
    # what lies around the trees: the folders that hold them (homes/, data/...)
    keys = frozenset(source.key for source in sources)
    entries = scan(partial, prune=keys)
    for source in sources:
        entries += scanned[source.key]
    return sorted(incomplete, key=lambda item: item.source), entries


def _previous_entries(snapshot: Path | None) -> dict[str, Entry]:
    """The previous snapshot's entries by path ({} for none, or a damaged manifest: then
    everything is hashed afresh)."""
    if snapshot is None:
        return {}
    try:
        return {e.path: e for e in read_manifest(snapshot)[1]}
    except HubkeeperError:
        return {}


def _sources(contents: HubContents, stage: Path) -> list[Source]:
    """Each tree with who reads it (host/rsync.py): a home its owner, a group folder
    its group, root's own trees root. Without root, everything is read as ourselves."""
    as_root = effective_uid() == 0
    items = [Source("hub", stage / "hub")]
    for home in contents.homes:
        reader = Identity.of_uid(home.uid, home.gid) if as_root and home.uid != 0 else None
        items.append(Source(f"homes/{home.user}", home.path, reader))
    for data in contents.data:
        reader = None
        if as_root and data.kind == "group-folder":
            reader = group_reader(os.stat(data.path).st_gid)
        items.append(Source(data.key, data.path, reader))
    return items


def _header(contents: HubContents, name: str, hub_users: int) -> dict:
    return {
        "kind": KIND, "name": name, "hub": contents.loaded.spec.hub.name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hubkeeper": __version__, "mode": contents.mode, "config": str(contents.loaded.path),
        "state_dir": str(contents.paths.root), "hub_users": hub_users,
        "homes": {home.user: {"account": home.account, "path": str(home.path),
                              "uid": home.uid, "gid": home.gid, "managed": home.managed}
                  for home in contents.homes},
        "data": {str(data.path): {"kind": data.kind, "key": data.key}
                 for data in contents.data},
        "hub_files": {item.key: str(item.path) for item in contents.files},
    }


def _incomplete_record(incomplete: list[Incomplete]) -> dict:
    """The manifest's note of trees copied but not whole: `snapshot list` and `verify` show
    it, so a restore from this snapshot knows what it lacks."""
    return {item.source: {"why": item.why, "details": list(item.details)}
            for item in incomplete}


def _write_target(contents: HubContents, target: Path, name: str, stage: Path,
                  hub_users: int, keep: Retention, progress: Progress) -> TargetResult:
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        cleaned = repair(target)
    except OSError as exc:
        return TargetResult(str(target), None, False,
                            error=f"cannot use {target}: {exc.strerror}")
    previous = latest_name(target)
    partial = target / f".partial-{name}"
    try:
        partial.mkdir(mode=0o700)
        with ThreadPoolExecutor(1) as reader:  # read while the first copies run
            reading = reader.submit(_previous_entries, target / previous if previous else None)
            incomplete, entries = _copy_all(_sources(contents, stage), partial,
                                            target / previous if previous else None,
                                            reading, progress)
            before = reading.result()
        header = dict(_header(contents, name, hub_users),
                      incomplete=_incomplete_record(incomplete))
        write_manifest(partial, header, entries)
        subprocess.run(["sync", "-f", str(partial)], check=False)
        os.rename(partial, target / name)
        fsync_dir(target)
        point_latest(target, name)
    except (TargetFailed, OSError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        message = str(exc) if isinstance(exc, TargetFailed) else (
            "the target filesystem is full" if exc.errno == errno.ENOSPC
            else f"{exc.strerror}: {exc.filename}")
        return TargetResult(str(target), None, False, cleaned=tuple(cleaned),
                            error=f"{message}; the snapshots already there and `latest` "
                            f"({previous or 'none yet'}) are untouched")
    files = [entry for entry in entries if entry.type == "f"]
    linked = sum(1 for e in files if (b := before.get(e.path)) is not None and b.ino == e.ino)
    removed = apply_retention(target, keep)
    return TargetResult(str(target), str(target / name), True, len(files),
                        sum(e.size for e in files), linked, tuple(removed), tuple(cleaned),
                        incomplete=tuple(incomplete))


def take_snapshot(contents: HubContents, targets: list[Path],
                  progress: Progress = silent) -> SnapshotResult:
    """One snapshot of the hub on every target; each target succeeds or fails on its own."""
    if shutil.which("rsync") is None:
        raise HubkeeperError("rsync is not installed", hint="apt-get install rsync")
    with snapshot_lock(contents.paths):
        stage = contents.paths.run / "snapshot-stage"
        name = _new_name(targets)
        hub_users = _stage_hub(contents, stage)
        try:
            results = tuple(
                _write_target(contents, target, name, stage, hub_users,
                              contents.loaded.spec.snapshots.keep, progress)
                for target in targets)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        record_runs(contents.paths.snapshot_runs,
                    [TargetRun(result.target, now_utc(), result.ok, result.error)
                     for result in results])
    return SnapshotResult(str(contents.loaded.path), name, len(contents.homes), hub_users,
                          results)


# --- reading them back ---------------------------------------------------------------------


def find_snapshot(targets: list[Path], name: str | None) -> Path:
    """A complete snapshot by name ('latest' or None: the newest on the first target that
    has one), or by path."""
    if name and ("/" in name):
        path = Path(name)
        if path.is_dir() and (path / MANIFEST).exists():
            return path
        raise HubkeeperError(f"{name} is not a complete snapshot (no {MANIFEST})")
    for target in targets:
        wanted = latest_name(target) if name in (None, LATEST) else name
        if wanted and wanted in complete_snapshots(target):
            return target / wanted
    known = sorted({n for t in targets for n in complete_snapshots(t)})
    raise HubkeeperError(
        f"no snapshot {name or LATEST!r} in {', '.join(map(str, targets))}",
        hint=f"snapshots there: {', '.join(known[-8:])}" if known else
        "take one with `hubkeeper snapshot`")


def verify_snapshot(snapshot: Path, progress: Progress = silent) -> list[str]:
    """Re-read every file of a snapshot; one line per mismatch with its manifest."""
    try:
        _, entries = read_manifest(snapshot)
    except HubkeeperError as exc:
        return [exc.message]
    return verify_tree(snapshot, entries, progress,
                       ignore=frozenset({MANIFEST, f"{MANIFEST}.sha256"}))


def incomplete_trees(snapshot: Path) -> dict[str, dict]:
    """The trees a snapshot holds but not whole ({} when all are whole or unreadable)."""
    try:
        header, _ = read_manifest(snapshot)
    except HubkeeperError:
        return {}
    return dict(header.get("incomplete", {}))


def describe(snapshot: Path) -> dict:
    """What `snapshot list` shows of one snapshot (from its manifest header)."""
    try:
        header, _ = read_manifest(snapshot)
    except HubkeeperError as exc:
        return {"name": snapshot.name, "ok": False, "error": exc.message}
    return {"name": snapshot.name, "ok": True, "created": header.get("created"),
            "files": header["totals"]["files"], "bytes": header["totals"]["bytes"],
            "homes": len(header.get("homes", {})), "hub_users": header.get("hub_users"),
            "incomplete": header.get("incomplete", {})}

