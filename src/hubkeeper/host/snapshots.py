"""Reading a snapshot target's folder (lifecycle/snapshot.py writes it): the names of its
complete snapshots, the `latest` link, and when the newest complete one was taken. Only
names matching NAME and the `latest` link count; anything else in the folder is hubkeeper's
work in progress. Here, below lifecycle, so that the hub's metrics (hub/metrics_collector.py)
read targets the same way `snapshot list` and `restore` do.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

NAME = re.compile(r"^\d{8}T\d{6}$")  # the UTC time the snapshot was taken
NAME_FORMAT = "%Y%m%dT%H%M%S"
LATEST = "latest"


def complete_snapshots(target: Path) -> list[str]:
    """Names of the complete snapshots in `target`, oldest first."""
    if not target.is_dir():
        return []
    return sorted(entry.name for entry in os.scandir(target)
                  if NAME.match(entry.name) and entry.is_dir(follow_symlinks=False))


def latest_name(target: Path) -> str | None:
    try:
        name = os.readlink(target / LATEST)
    except OSError:
        return None
    return name if NAME.match(name) and (target / name).is_dir() else None


def taken_at(name: str) -> dt.datetime:
    """When the snapshot `name` was taken (its name is that time, UTC)."""
    return dt.datetime.strptime(name, NAME_FORMAT).replace(tzinfo=dt.timezone.utc)


def newest_complete(target: Path) -> dt.datetime | None:
    """When the newest complete snapshot on `target` was taken; None: none (yet), or the
    target is not there."""
    names = complete_snapshots(target)
    return taken_at(names[-1]) if names else None
