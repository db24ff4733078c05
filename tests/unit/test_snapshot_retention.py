"""Retention: which snapshots `hubkeeper snapshot` drops (pure)."""

from __future__ import annotations

import datetime as dt

from hubkeeper.config.operation import Retention
from hubkeeper.lifecycle.snapshot_target import to_drop


def names(start: str, count: int, every: dt.timedelta) -> list[str]:
    first = dt.datetime.strptime(start, "%Y%m%dT%H%M%S")
    return [(first + i * every).strftime("%Y%m%dT%H%M%S") for i in range(count)]


def test_last_keeps_the_newest() -> None:
    taken = names("20261101T000000", 10, dt.timedelta(hours=1))
    dropped = to_drop(taken, Retention(last=3, daily=0, weekly=0), set())
    assert dropped == taken[:7]


def test_daily_and_weekly_keep_the_newest_of_each_period() -> None:
    taken = names("20261101T000000", 60, dt.timedelta(hours=12))  # 30 days, twice a day
    kept = set(taken) - set(to_drop(taken, Retention(last=1, daily=7, weekly=4), set()))

    def newest_per(period) -> list[str]:
        newest: dict = {}
        for name in taken:
            key = period(dt.datetime.strptime(name, "%Y%m%dT%H%M%S"))
            newest[key] = max(newest.get(key, name), name)
        return [newest[key] for key in sorted(newest)]

    daily = newest_per(lambda d: d.date())[-7:]
    weekly = newest_per(lambda d: d.isocalendar()[:2])[-4:]
    assert all(name.endswith("T120000") for name in daily)
    assert kept == {max(taken)} | set(daily) | set(weekly)


def test_the_newest_and_protected_are_never_dropped() -> None:
    taken = names("20261101T000000", 5, dt.timedelta(days=1))
    dropped = to_drop(taken, Retention(last=1, daily=0, weekly=0), {taken[0]})
    assert taken[-1] not in dropped and taken[0] not in dropped
    assert dropped == taken[1:4]
    assert to_drop([], Retention(), set()) == []
