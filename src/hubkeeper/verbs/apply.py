"""`hubkeeper apply`: make accounts, groups, passwords and the hub's users follow the roster,
then nginx serve hub.url."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
