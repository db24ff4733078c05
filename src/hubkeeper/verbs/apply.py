"""`hubkeeper apply`: make accounts, groups, passwords and the hub's users follow the roster,
then nginx serve hub.url."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import InvalidInput, Problem
from hubkeeper.base.files import write_atomic
from hubkeeper.base.locks import apply_lock
from hubkeeper.context.hub import Hub
from hubkeeper.ops.converge import execute
from hubkeeper.ops.site import apply_site, site_plan
from hubkeeper.plan.actions import Action
from hubkeeper.state.migrations import migrate
from hubkeeper.state.statedir import ensure_layout
from hubkeeper.verbs.plan import prepare_from


@dataclass(frozen=True)
class ApplyResult:
    config: str
    mode: str
    users: int
    actions: tuple[Action, ...]
    notes: tuple[str, ...]
    credentials: str | None  # the 0600 CSV of generated passwords, if any were made


def apply(hub: Hub, progress: Callable[[int, int, Action], None]) -> ApplyResult:
    hub.check_not_retired()
    migrated = migrate(hub.paths)  # an older hubkeeper's state format, before it is read
    first = prepare_from(hub)  # validates everything before the first change
    site_plan(first.loaded, first.journal)  # and hub.url's nginx and certificate files
    ensure_layout(first.paths)
    with apply_lock(first.paths):
        prepared = prepare_from(hub.reopen())  # again, under the lock: nobody changed it
        site = site_plan(prepared.loaded, prepared.journal)
        credentials = execute(prepared, progress)
        site_done = apply_site(prepared.loaded, prepared.journal)  # after the accounts
    return ApplyResult(str(prepared.loaded.path), prepared.mode, len(prepared.roster.members),
                       prepared.plan.actions + site_done,
                       tuple(migrated) + prepared.plan.notes + site.notes,
                       str(credentials) if credentials else None)


ROSTER_OPTION = "--roster-csv"


def with_roster(hub: Hub, csv: Path) -> Hub:
    """The hub as it would be with `csv` as its roster CSV: every problem of the CSV (named
    by its own file and line) or of the plan raises here, before anything changes."""
    if not hub.spec.users.roster.csv:
        raise InvalidInput([Problem("command line", None, None, ROSTER_OPTION,
                                    "hub.yaml names no roster CSV (users.roster.csv) to "
                                    "replace")],
                           hint="add `roster: {csv: roster.csv}` under users: in hub.yaml")
    candidate = hub.with_roster_csv(csv)
    prepare_from(candidate)  # the roster (InvalidInput, located in csv) and the plan
    return candidate


def replace_roster(hub: Hub, csv: Path) -> Hub:
    """Check `csv` as the roster (with_roster), then put it in place of users.roster.csv's
    file; the file it replaces stays beside it as `<name>.previous`. The hub read again."""
    with_roster(hub, csv)
    target = hub.relative(hub.spec.users.roster.csv or "")
    data = csv.read_bytes()
    try:
        old = target.read_bytes()
        mode = os.stat(target).st_mode & 0o777
    except FileNotFoundError:
        old, mode = None, 0o600
    if old is not None and old != data:
        write_atomic(target.with_name(target.name + ".previous"), old, mode=mode)
    write_atomic(target, data, mode=mode)
    return hub.reopen()
