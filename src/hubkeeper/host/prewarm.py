"""Servers started ahead of a class, and kept from idle culling until it ends, through the
hub's REST API (host/hubapi.py).

Used by `hubkeeper prewarm` (verbs/prewarm.py) and by the hub's `hubkeeper-schedule` service
(proc/schedule.py, for hub.yaml's `schedule:`). Starts go through the hub's REST API, so
they wait in the hub's own line of starts (hub/admission.py) like any login. Keeping a server
"active" is what a used server does by itself: its last activity is refreshed, and
jupyterhub-idle-culler, which stops servers idle longer than culling.idle, leaves it alone.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hubkeeper.host.hubapi import ApiError, HubAPI

START_DEADLINE = 1800.0  # seconds a prewarm waits for its servers (a whole class, in line)


@dataclass
class Outcome:
    started: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # running or starting before we asked
    ready: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _path(name: str) -> str:
    return f"/users/{urllib.parse.quote(name)}"


def _server(model: dict[str, Any]) -> dict[str, Any] | None:
    return (model.get("servers") or {}).get("")


def start_servers(api: HubAPI, names: Iterable[str], outcome: Outcome) -> None:
    """Ask the hub to start each user's default server that is not already there."""
    for name in names:
        try:
            model = api.call("GET", _path(name))
            if _server(model) is not None or model.get("pending"):
                outcome.already.append(name)
                continue
            api.call("POST", f"{_path(name)}/server", {})
            outcome.started.append(name)
        except ApiError as exc:  # this user (a refused listener stops it all)
            outcome.failed.append((name, str(exc)))


def wait_ready(api: HubAPI, names: list[str], outcome: Outcome, deadline: float,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> None:
    """Until each of `names` has a ready server or has failed, or the deadline."""
    waiting = list(names)
    end = clock() + deadline
    while waiting:
        for name in list(waiting):
            try:
                model = api.call("GET", _path(name))
            except ApiError as exc:
                outcome.failed.append((name, str(exc)))
                waiting.remove(name)
                continue
            server = _server(model)
            if server and server.get("ready"):
                outcome.ready.append(name)
                waiting.remove(name)
            elif server is None and not model.get("pending"):
                outcome.failed.append((name, "the start failed; the hub's log says why"))
                waiting.remove(name)
        if waiting and clock() > end:
            outcome.failed += [(name, f"not ready within {deadline:.0f} s") for name in waiting]
            return
        if waiting:
            sleep(1.0)


def keep_active(api: HubAPI, names: Iterable[str], now: datetime | None = None) -> int:
    """Refresh the last activity of each user's running server; returns how many."""
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kept = 0
    for name in names:
        try:
            if _server(api.call("GET", _path(name))) is None:
                continue  # stopped by the user or an admin: not brought back
            api.call("POST", f"{_path(name)}/activity",
                     {"last_activity": text, "servers": {"": {"last_activity": text}}})
            kept += 1
        except ApiError:
            continue  # the user was removed meanwhile
    return kept
