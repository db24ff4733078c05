"""hubkeeper's metrics of the disk and of snapshots, served with JupyterHub's at /hub/metrics
(hub/metrics.py has the starts'):

- hubkeeper_home_bytes{user}: what each roster user's home holds (allocated bytes), walked by
  descriptor without following a link or leaving its filesystem (host/homesize.py);
- hubkeeper_disk_free_bytes{path}: free space for users on each filesystem holding homes;
- hubkeeper_snapshot_age_seconds{target}: now less the time of the newest complete snapshot
  on each of snapshots.targets; +Inf when the target holds none (or is not there);
- hubkeeper_snapshot_last_failed{target}: 1 when the last `hubkeeper snapshot` failed on the
  target (state/snapshot_runs.py), else 0.

A scrape never touches a disk: a thread of the hub reads them every few minutes (homes every
`refresh` seconds, HUBKEEPER_METRICS_REFRESH, default 300; snapshots every minute or sooner),
and a scrape serves the last reading. So a full or hung disk slows the thread, not the hub.
Everything is measured by the hub itself; nothing is read from a file in a user's home.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric

from hubkeeper.config.types import config_relative
from hubkeeper.context.hub import Hub
from hubkeeper.host.homesize import homes_of, read_homes
from hubkeeper.host.snapshots import newest_complete
from hubkeeper.state.snapshot_runs import read_runs

log = logging.getLogger(__name__)

REFRESH_ENV = "HUBKEEPER_METRICS_REFRESH"
DEFAULT_REFRESH = 300.0  # seconds between two walks of the homes
SNAPSHOT_EVERY = 60.0  # seconds between two readings of the targets, at most


@dataclass(frozen=True)
class Sources:
    """Where the readings come from."""

    targets: tuple[Path, ...]  # snapshots.targets, absolute
    runs: Path  # <state>/snapshot-runs.json
    homes: Callable[[], dict[str, str]]  # hub user -> home, looked up at each walk


@dataclass(frozen=True)
class Reading:
    homes: dict[str, int] = field(default_factory=dict)  # user -> bytes
    free: dict[str, int] = field(default_factory=dict)  # a folder of homes -> bytes free
    snapshots: dict[str, float | None] = field(default_factory=dict)  # target -> taken (epoch)
    failed: dict[str, bool] = field(default_factory=dict)  # target -> last run failed


def sources_of(hub: Hub) -> Sources:
    """The opened hub's targets, its record of snapshot runs, and its roster's homes
    (host/homesize.homes_of)."""
    targets = tuple(config_relative(hub.directory, target)
                    for target in hub.spec.snapshots.targets)
    return Sources(targets, hub.paths.snapshot_runs, homes_of(hub))


def read_snapshots(sources: Sources) -> tuple[dict[str, float | None], dict[str, bool]]:
    runs = read_runs(sources.runs)
    taken: dict[str, float | None] = {}
    failed: dict[str, bool] = {}
    for target in sources.targets:
        try:
            newest = newest_complete(target)
        except OSError:
            newest = None  # unreadable: as good as none
        taken[str(target)] = newest.timestamp() if newest else None
        run = runs.get(str(target))
        failed[str(target)] = run is not None and not run.ok
    return taken, failed


class HubkeeperCollector:
    """Serves the last reading; a thread of its own takes readings (started by the first
    scrape, so a process that never serves metrics never walks a home)."""

    def __init__(self, sources: Sources, refresh: float = DEFAULT_REFRESH,
                 clock: Callable[[], float] = time.time) -> None:
        self.sources = sources
        self.refresh = refresh
        self.clock = clock
        self.reading = Reading()
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def start(self) -> None:
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hubkeeper-metrics",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        tick = min(self.refresh, SNAPSHOT_EVERY)
        homes_due = 0.0
        while not self.stopping.is_set():
            try:
                taken, failed = read_snapshots(self.sources)
                sizes, free = self.reading.homes, self.reading.free
                if time.monotonic() >= homes_due:
                    sizes, free = read_homes(self.sources.homes())
                    homes_due = time.monotonic() + self.refresh
                self.reading = Reading(sizes, free, taken, failed)
            except Exception:  # a reading must never end the thread
                log.exception("hubkeeper metrics: reading homes and snapshots failed")
            self.stopping.wait(tick)

    def describe(self) -> Iterator[Metric]:
        return iter(self._families(Reading()))

    def collect(self) -> Iterator[Metric]:
        self.start()
        return iter(self._families(self.reading))

    def _families(self, reading: Reading) -> list[Metric]:
        homes = GaugeMetricFamily(
            "hubkeeper_home_bytes", "Bytes each roster user's home holds (allocated; links "
            "not followed, other filesystems not entered), measured every few minutes.",
            labels=["user"])
        for user, size in reading.homes.items():
            homes.add_metric([user], size)
        free = GaugeMetricFamily(
            "hubkeeper_disk_free_bytes", "Bytes free for users on the filesystem of the "
            "folder holding homes.", labels=["path"])
        for path, size in reading.free.items():
            free.add_metric([path], size)
        age = GaugeMetricFamily(
            "hubkeeper_snapshot_age_seconds", "Seconds since the newest complete snapshot on "
            "each of snapshots.targets was taken; +Inf when the target holds none.",
            labels=["target"])
        now = self.clock()
        for target, taken in reading.snapshots.items():
            age.add_metric([target], math.inf if taken is None else max(0.0, now - taken))
        failed = GaugeMetricFamily(
            "hubkeeper_snapshot_last_failed", "1 when the last `hubkeeper snapshot` failed "
            "on the target (see its output or snapshot-runs.json in the state directory).",
            labels=["target"])
        for target, bad in reading.failed.items():
            failed.add_metric([target], 1.0 if bad else 0.0)
        return [homes, free, age, failed]


def refresh_seconds(value: str | None) -> float:
    """HUBKEEPER_METRICS_REFRESH: seconds between two walks of the homes (default 300)."""
    if not value:
        return DEFAULT_REFRESH
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        log.warning("%s=%r is not a number of seconds above 0; the homes are measured every "
                    "%.0f s", REFRESH_ENV, value, DEFAULT_REFRESH)
        return DEFAULT_REFRESH
    return seconds


_installed: HubkeeperCollector | None = None  # one per hub process


def install(hub: Hub) -> HubkeeperCollector:
    """Register the collector of this hub in the default registry (once per process; a
    second call gives it the new sources)."""
    global _installed
    refresh = refresh_seconds(os.environ.get(REFRESH_ENV))
    if _installed is None:
        _installed = HubkeeperCollector(sources_of(hub), refresh)
        REGISTRY.register(_installed)
    else:
        _installed.sources, _installed.refresh = sources_of(hub), refresh
    return _installed
