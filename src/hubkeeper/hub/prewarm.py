"""Servers started ahead of a class, and kept from idle culling until it ends.

Used by `hubkeeper prewarm` (verbs/prewarm.py) and by the hub's `hubkeeper-schedule` service
(`python -m hubkeeper.hub.prewarm`, for hub.yaml's `schedule:`). Starts go through the
hub's REST API, so they wait in the hub's own line of starts (hub/admission.py) like any
login. Keeping a server "active" is what a used server does by itself: its last activity is
refreshed, and jupyterhub-idle-culler, which stops servers idle longer than culling.idle,
leaves it alone.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from hubkeeper.host.hubapi import ApiError, HubAPI, HubUnreachable
from hubkeeper.host.peer import ListenerRefused

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
START_DEADLINE = 1800.0  # seconds a prewarm waits for its servers (a whole class, in line)


def clock_seconds(value: str) -> int:
    """'09:55' or '09:55:30' -> seconds after midnight."""
    parts = [int(part) for part in value.split(":")]
    return parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)


def in_window(window: dict[str, Any], now: datetime) -> bool:
    """Whether `now` (local time) is inside the class window {days, start, end}."""
    days = window.get("days") or DAYS
    if DAYS[now.weekday()] not in days:
        return False
    second = now.hour * 3600 + now.minute * 60 + now.second
    return clock_seconds(window["start"]) <= second < clock_seconds(window["end"])


def keepalive_every(idle: float) -> float:
    """How often to refresh activity: well inside culling.idle, at most once a minute."""
    return max(2.0, min(60.0, idle / 4)) if idle else 60.0


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


# --- the hub's schedule service ---------------------------------------------------------

def run_schedule(api: HubAPI, windows: list[dict[str, Any]], every: float,
                 now: Callable[[], datetime] = datetime.now,
                 sleep: Callable[[float], None] = time.sleep,
                 rounds: int | None = None) -> None:
    """Forever (or `rounds` times): start the servers of each class whose window has begun
    (once per day and window), and keep them active until it ends."""
    prewarmed: set[tuple[int, str]] = set()
    while rounds is None or rounds > 0:
        try:
            _schedule_round(api, windows, now(), prewarmed)
        except HubUnreachable as exc:  # the hub restarts; try again next round
            print(f"schedule: the hub does not answer: {exc}", file=sys.stderr, flush=True)
        except ListenerRefused as exc:  # someone holds the hub's port: nothing was sent
            print(f"schedule: {exc}", file=sys.stderr, flush=True)
        sleep(every)
        if rounds is not None:
            rounds -= 1


def _schedule_round(api: HubAPI, windows: list[dict[str, Any]], moment: datetime,
                    prewarmed: set[tuple[int, str]]) -> None:
    for index, window in enumerate(windows):
        if not in_window(window, moment):
            continue
        key = (index, moment.date().isoformat())
        if key not in prewarmed:
            outcome = Outcome()
            start_servers(api, window["users"], outcome)
            prewarmed.add(key)
            print(f"schedule: class of {window['group']} ({window['start']}-"
                  f"{window['end']}): started {len(outcome.started)}, already running "
                  f"{len(outcome.already)}, refused {len(outcome.failed)}", flush=True)
            for name, why in outcome.failed:
                print(f"schedule: {name}: {why}", file=sys.stderr, flush=True)
        keep_active(api, window["users"])


def main() -> None:
    """The `hubkeeper-schedule` service: JupyterHub gives it its API URL and token."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    api_url = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    base = api_url.removesuffix("/hub/api")
    api = HubAPI(base, os.environ["JUPYTERHUB_API_TOKEN"])
    windows = json.loads(os.environ["HUBKEEPER_SCHEDULE"])
    run_schedule(api, windows, float(os.environ.get("HUBKEEPER_KEEPALIVE", "60")))


if __name__ == "__main__":
    main()
