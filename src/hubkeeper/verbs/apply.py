"""`hubkeeper apply`: make accounts, groups, passwords and the hub's users follow the roster,
then nginx serve hub.url."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hubkeeper.context.hub import Hub
from hubkeeper.host.locks import PidLock
from hubkeeper.host.site import apply_site, plan_site
from hubkeeper.host.statedir import StatePaths, ensure_layout
from hubkeeper.plan.users import Action
from hubkeeper.roster.converge import execute
from hubkeeper.verbs.plan import prepare_from


@dataclass(frozen=True)
class ApplyResult:
    config: str
    mode: str
    users: int
    actions: tuple[Action, ...]
    notes: tuple[str, ...]
    credentials: str | None  # the 0600 CSV of generated passwords, if any were made


def apply_lock(paths: StatePaths) -> PidLock:
    """One apply (or retire) at a time per state dir."""
    return PidLock(paths.run / "apply.lock", "another `hubkeeper apply` is running on this "
                   "hub", hint="wait for it to finish")


def apply(hub: Hub, progress: Callable[[int, int, Action], None]) -> ApplyResult:
    first = prepare_from(hub)  # validates everything before the first change
    plan_site(first.loaded, first.journal)  # and hub.url's nginx and certificate files
    ensure_layout(first.paths)
    with apply_lock(first.paths):
        prepared = prepare_from(hub.reopen())  # again, under the lock: nobody changed it
        site = plan_site(prepared.loaded, prepared.journal)
        credentials = execute(prepared, progress)
        site_done = apply_site(prepared.loaded, prepared.journal)  # after the accounts
    return ApplyResult(str(prepared.loaded.path), prepared.mode, len(prepared.roster.members),
                       prepared.plan.actions + site_done, prepared.plan.notes + site.notes,
                       str(credentials) if credentials else None)
