"""A target's folder of snapshots (lifecycle/snapshot.py): which are complete, the `latest`
link, repairing what a killed run left, and retention. Reading a target (which names count,
`latest`) is host/snapshots.py's.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from hubkeeper.base.files import fsync_dir
from hubkeeper.config.operation import Retention
from hubkeeper.host.snapshots import LATEST, NAME_FORMAT, complete_snapshots, latest_name

# --- the latest link and repair ------------------------------------------------------------


def point_latest(target: Path, name: str) -> None:
    link = target / f".latest-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(name, link)
    os.replace(link, target / LATEST)
    fsync_dir(target)


def repair(target: Path) -> list[str]:
    """Remove what a killed run left and point `latest` at the newest complete snapshot.
    Call with the snapshot lock held. Returns what was removed."""
    cleaned = []
    for entry in sorted(os.scandir(target), key=lambda e: e.name):
        if entry.name.startswith((".partial-", ".deleting-")):
            shutil.rmtree(entry.path)
            cleaned.append(entry.name)
        elif entry.name.startswith(".latest-"):
            os.unlink(entry.path)
    names = complete_snapshots(target)
    if names and latest_name(target) != names[-1]:
        point_latest(target, names[-1])
    return cleaned


# --- retention -----------------------------------------------------------------------------


def to_drop(names: list[str], keep: Retention, protected: set[str]) -> list[str]:
    """The snapshots retention drops (names oldest first): it keeps the newest `last`, the
    newest of each of the last `daily` days and `weekly` ISO weeks, and every protected."""
    newest_first = sorted(names, reverse=True)
    kept = set(newest_first[:keep.last]) | protected
    if newest_first:
        kept.add(newest_first[0])
    for count, period in ((keep.daily, lambda d: d.date()),
                          (keep.weekly, lambda d: d.isocalendar()[:2])):
        seen: list[object] = []
        for name in newest_first:
            key = period(dt.datetime.strptime(name, NAME_FORMAT))
            if key not in seen:
                if len(seen) == count:
                    break
                seen.append(key)
                kept.add(name)
    return [name for name in sorted(names) if name not in kept]


def apply_retention(target: Path, keep: Retention) -> list[str]:
    names = complete_snapshots(target)
    protected = {latest_name(target)} - {None}
    dropped = to_drop(names, keep, protected)  # type: ignore[arg-type]
    for name in dropped:
        doomed = target / f".deleting-{name}"
        os.rename(target / name, doomed)
        fsync_dir(target)
        shutil.rmtree(doomed)
    return dropped
