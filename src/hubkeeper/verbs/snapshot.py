"""`hubkeeper snapshot`, `snapshot list`, `snapshot verify` (the engine: lifecycle/snapshot.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hubkeeper.context.hub import Hub
from hubkeeper.host.snapshots import LATEST, complete_snapshots, latest_name
from hubkeeper.lifecycle.manifest import Progress
from hubkeeper.lifecycle.snapshot import (
    SnapshotResult,
    describe,
    find_snapshot,
    incomplete_trees,
    snapshot_targets,
    take_snapshot,
    verify_snapshot,
)
from hubkeeper.lifecycle.sources import hub_contents


def snapshot(hub: Hub, targets: tuple[Path, ...], progress: Progress) -> SnapshotResult:
    contents = hub_contents(hub)
    return take_snapshot(contents, snapshot_targets(contents, targets), progress)


@dataclass(frozen=True)
class TargetListing:
    target: str
    latest: str | None
    snapshots: tuple[dict, ...]  # oldest first; see lifecycle.snapshot.describe
    incomplete: tuple[str, ...]  # left by a killed run; the next snapshot removes them


@dataclass(frozen=True)
class SnapshotList:
    config: str
    targets: tuple[TargetListing, ...]


def list_snapshots(hub: Hub, targets: tuple[Path, ...]) -> SnapshotList:
    contents = hub_contents(hub)
    listings = []
    for target in snapshot_targets(contents, targets):
        names = complete_snapshots(target)
        leftovers = tuple(sorted(p.name for p in target.glob(".partial-*"))) \
            if target.is_dir() else ()
        listings.append(TargetListing(str(target), latest_name(target),
                                      tuple(describe(target / name) for name in names),
                                      leftovers))
    return SnapshotList(str(contents.loaded.path), tuple(listings))


@dataclass(frozen=True)
class SnapshotCheck:
    snapshot: str
    problems: tuple[str, ...]
    # trees the snapshot holds but not whole, as taken (a home whose owner changed it
    # mid-copy): not a problem of the snapshot, but what a restore from it lacks
    incomplete: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotVerify:
    config: str
    checked: tuple[SnapshotCheck, ...]

    @property
    def ok(self) -> bool:
        return all(not check.problems for check in self.checked)


def verify(hub: Hub, name: str | None, targets: tuple[Path, ...],
           progress: Progress) -> SnapshotVerify:
    """Re-hash a snapshot (default: `latest` of every target) against its manifest."""
    contents = hub_contents(hub)
    chosen = snapshot_targets(contents, targets)
    if name and "/" in name:
        snapshots = [find_snapshot(chosen, name)]
    elif name in (None, LATEST):
        snapshots = [find_snapshot([target], LATEST) for target in chosen]
    else:
        snapshots = [target / name for target in chosen if name in complete_snapshots(target)]
        snapshots = snapshots or [find_snapshot(chosen, name)]
    checked = tuple(SnapshotCheck(str(path), tuple(verify_snapshot(path, progress)),
                                  incomplete_trees(path))
                    for path in snapshots)
    return SnapshotVerify(str(contents.loaded.path), checked)
