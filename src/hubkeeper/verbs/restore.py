"""`hubkeeper restore USER [PATH]` and `hubkeeper restore --all` (engine: lifecycle/restore.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hubkeeper.base.errors import InvalidInput, Problem
from hubkeeper.context.hub import Hub
from hubkeeper.lifecycle.restore import (
    RestoreAllResult,
    Restored,
    open_snapshot,
    restore_all,
    restore_user,
)
from hubkeeper.lifecycle.snapshot import find_snapshot, snapshot_targets
from hubkeeper.lifecycle.sources import hub_contents


def _usage(message: str) -> InvalidInput:
    return InvalidInput([Problem("command line", None, None, "", message)],
                        hint="hubkeeper restore USER [PATH] [--from SNAPSHOT] [--to DIR], or "
                        "hubkeeper restore --all --from SNAPSHOT")


def choose_snapshot(open_hub: Callable[[], Hub], given: str | None,
                    targets: tuple[Path, ...]) -> Path:
    """--from as a path (a snapshot or a target), else a name or `latest` on the hub's
    targets (hub.yaml's snapshots.targets or --target). hub.yaml is opened only for the
    latter: a disaster recovery from a path runs where hub.yaml is gone with the machine."""
    if given and ("/" in given or given.startswith(".")):
        return open_snapshot(given)
    contents = hub_contents(open_hub())
    return find_snapshot(snapshot_targets(contents, targets), given)


def restore(open_hub: Callable[[], Hub], user: str | None, path: str | None, given: str | None,
            to: Path | None, everything: bool,
            targets: tuple[Path, ...]) -> Restored | RestoreAllResult:
    if everything:
        if user or path or to:
            raise _usage("--all restores every user to their place: give no USER, PATH "
                         "or --to with it")
        if not given:
            raise _usage("--all needs --from: a snapshot directory or a target (its latest); "
                         "hub.yaml may be gone with the machine")
        return restore_all(choose_snapshot(open_hub, given, targets))
    if not user:
        raise _usage("name the USER whose home to restore (or --all for the whole hub)")
    return restore_user(choose_snapshot(open_hub, given, targets), user, path, to)
