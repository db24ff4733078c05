"""Class windows of hub.yaml's `schedule:` as pure functions: whether a moment is inside a
window, and how often a prewarmed server's activity is refreshed. The renderer and the
schedule service (proc/schedule.py) both use them; nothing here talks to the hub."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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


def next_start(window: dict[str, Any], now: datetime) -> datetime | None:
    """When the class window {days, start, end} next begins after `now` (local time), within
    a week; the one under way counts when `now` is inside it."""
    days = window.get("days") or DAYS
    start = clock_seconds(window["start"])
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for ahead in range(8):
        day = midnight + timedelta(days=ahead)
        if DAYS[day.weekday()] not in days:
            continue
        begins = day + timedelta(seconds=start)
        if begins >= now or in_window(window, now) and ahead == 0:
            return begins
    return None


def keepalive_every(idle: float) -> float:
    """How often to refresh activity: well inside culling.idle, at most once a minute."""
    return max(2.0, min(60.0, idle / 4)) if idle else 60.0
