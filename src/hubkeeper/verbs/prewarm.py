"""`hubkeeper prewarm`: start a group's servers before a class, so that login is instant.

Starts go through the running hub's REST API (hubkeeper's service token) and wait in the
hub's line of starts like any login; with --until, the servers are kept from idle culling
until the class ends. host/prewarm.py does the work; hub.yaml's `schedule:` does the same on
a timetable, inside the hub.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.context.hub import Hub
from hubkeeper.host.hubapi import HubAPI, HubUnreachable
from hubkeeper.host.prewarm import START_DEADLINE, Outcome, keep_active, start_servers, wait_ready
from hubkeeper.render.schedule import clock_seconds, keepalive_every

SHOW = 20


@dataclass(frozen=True)
class PrewarmResult:
    hub: str
    users: tuple[str, ...]
    started: tuple[str, ...]
    already: tuple[str, ...]
    ready: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    waited: bool
    seconds: float
    until: str | None  # the servers were kept from culling until then

    @property
    def ok(self) -> bool:
        return not self.failed


def _problem(option: str, message: str) -> Problem:
    return Problem("command line", None, None, option, message)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOW]) or "none"
    return shown + (f" and {len(names) - SHOW} more" if len(names) > SHOW else "")


def _today_at(value: str, option: str, now: datetime) -> datetime:
    try:
        seconds = clock_seconds(value)
        if not 0 <= seconds < 86400 or len(value.split(":")) not in (2, 3):
            raise ValueError
    except ValueError:
        raise InvalidInput([_problem(option, f"{value!r} is not a time of day; write HH:MM "
                                     "(24 h), e.g. 09:55")]) from None
    moment = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment + timedelta(seconds=seconds)


def prewarm(hub: Hub, groups: tuple[str, ...] = (), users: tuple[str, ...] = (),
            at: str | None = None, until: str | None = None, wait: bool = True,
            now: Callable[[], datetime] = datetime.now,
            sleep: Callable[[float], None] = time.sleep) -> PrewarmResult:
    spec = hub.spec
    roster = hub.roster
    active = {member.name for member in roster.active}
    locked = {member.name for member in roster.members if member.locked}
    problems = []
    if not groups and not users:
        problems.append(_problem("--group", "name a roster group (--group) or users "
                                 f"(--user); roster groups: {_listed(list(roster.groups))}"))
    for group in groups:
        if group not in roster.groups:
            problems.append(_problem("--group", f"{group!r} is not a roster group (roster "
                                     f"groups: {_listed(list(roster.groups))})"))
    for name in users:
        if name in locked:
            problems.append(_problem("--user", f"{name!r} is locked (users.locked)"))
        elif name not in active:
            problems.append(_problem("--user", f"{name!r} is not on the roster (e.g. "
                                     f"{_listed(sorted(active))})"))
    moment = now()
    begin = _today_at(at, "--at", moment) if at else None
    end = _today_at(until, "--until", moment) if until else None
    if begin is not None and begin <= moment:
        problems.append(_problem("--at", f"{at} has already passed today ({moment:%H:%M}); "
                                 "give a later time, or leave --at out to start now"))
    if end is not None and end <= (begin or moment):
        problems.append(_problem("--until", f"{until} is not after "
                                 f"{'--at ' + at if at else 'now'}"))
    if problems:
        raise InvalidInput(problems)
    names = sorted({name for group in groups for name in roster.group_members(group)
                    if name in active} | set(users))
    api = HubAPI(hub.hub_api_url, hub.read_secret("api-token"))
    if begin is not None:
        sleep((begin - moment).total_seconds())
    began = time.monotonic()
    outcome = Outcome()
    try:
        start_servers(api, names, outcome)
        if wait or end is not None:
            wait_ready(api, outcome.started + outcome.already, outcome, START_DEADLINE)
        if end is not None:
            every = keepalive_every(spec.culling.idle if spec.culling.enabled else 0)
            while (left := (end - now()).total_seconds()) > 0:
                keep_active(api, names)
                sleep(min(every, left))
    except HubUnreachable as exc:
        raise HubkeeperError(f"the hub does not answer at 127.0.0.1:{spec.hub.api_port} "
                             f"({exc})", hint="is it running? `hubkeeper status`") from None
    return PrewarmResult(
        hub=spec.hub.name, users=tuple(names), started=tuple(outcome.started),
        already=tuple(outcome.already), ready=tuple(outcome.ready),
        failed=tuple(outcome.failed), waited=wait or end is not None,
        seconds=round(time.monotonic() - began, 1), until=until)
