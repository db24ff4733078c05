"""hubkeeper's metrics without a hub: the Grafana dashboard asks only for metrics that exist,
the failure reasons, and the collector's readings of snapshots and homes (a student's link
is not followed). tests/component/test_admission.py scrapes a real hub."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from pathlib import Path

import jupyterhub.metrics  # noqa: F401  (registers JupyterHub's metrics)
from prometheus_client.core import REGISTRY

from hubkeeper.base.files import PACKAGE
from hubkeeper.hub import metrics
from hubkeeper.hub.metrics_collector import (
    HubkeeperCollector,
    Reading,
    Sources,
    read_homes,
    read_snapshots,
    refresh_seconds,
)
from hubkeeper.state.snapshot_runs import TargetRun, record_runs

DASHBOARD = PACKAGE.parent.parent / "docs" / "grafana" / "hubkeeper.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",)}


def exported() -> set[str]:
    """Every sample name hubkeeper and JupyterHub export at /hub/metrics."""
    collector = HubkeeperCollector(Sources((), Path("/nonexistent"), dict))
    families = [*REGISTRY.collect(), *collector.describe()]
    return {family.name + suffix for family in families
            for suffix in SUFFIXES.get(family.type, ("",))}


def panels() -> list[dict]:
    return [panel for panel in json.loads(DASHBOARD.read_text())["panels"]
            if panel["type"] != "row"]


def test_the_dashboard_asks_only_for_metrics_that_exist_through_the_datasource_variable(
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == \
        ("datasource", "datasource", "prometheus")
    known = exported()
    asked: set[str] = set()
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            names = set(re.findall(r"\b(?:hubkeeper|jupyterhub)_[a-z_]+", target["expr"]))
            assert names, target["expr"]
            assert names <= known, (panel["title"], names - known)
            asked |= names
    # every metric of hubkeeper's has a panel
    ours = {name for name in known if name.startswith("hubkeeper_")
            and not name.endswith(("_sum", "_count"))}
    assert ours <= asked, ours - asked
    (age,) = [p for p in panels() if p["title"] == "Snapshot age per target"]
    steps = age["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 86400} in steps


def test_a_failed_start_counts_under_a_small_fixed_set_of_reasons() -> None:
    assert metrics.reason_of("queue") == "refused"
    assert metrics.reason_of("hook") == "hook"
    assert metrics.reason_of("disk") == "disk"
    assert {metrics.reason_of(other) for other in ("environment", "account", "exited",
                                                   "materials", None)} == {"spawn_error"}
    before = REGISTRY.get_sample_value("hubkeeper_hook_failures_total",
                                       {"hook": "unit.sh", "as": "root"}) or 0
    metrics.hook_failed("unit.sh", "as_root")
    assert REGISTRY.get_sample_value("hubkeeper_hook_failures_total",
                                     {"hook": "unit.sh", "as": "root"}) == before + 1


def test_snapshot_age_is_infinite_without_one_and_a_failed_run_is_flagged(
        tmp_path: Path) -> None:
    good, empty, failing = tmp_path / "good", tmp_path / "empty", tmp_path / "gone"
    (good / "20260101T120000").mkdir(parents=True)
    (good / ".partial-20260102T000000").mkdir()  # work in progress does not count
    empty.mkdir()
    runs = tmp_path / "snapshot-runs.json"
    record_runs(runs, [TargetRun(str(good), "2026-01-01T12:00:05+00:00", True),
                       TargetRun(str(failing), "2026-01-02T00:00:01+00:00", False, "full")])
    sources = Sources((good, empty, failing), runs, dict)
    taken, failed = read_snapshots(sources)
    noon = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc).timestamp()
    collector = HubkeeperCollector(sources, clock=lambda: noon + 90)
    families = {f.name: {s.labels["target"]: s.value for s in f.samples}
                for f in collector._families(Reading(snapshots=taken, failed=failed))
                if f.name.startswith("hubkeeper_snapshot")}
    assert families["hubkeeper_snapshot_age_seconds"] == {
        str(good): 90.0, str(empty): math.inf, str(failing): math.inf}
    assert families["hubkeeper_snapshot_last_failed"] == {
        str(good): 0.0, str(empty): 0.0, str(failing): 1.0}


def test_homes_are_measured_without_following_a_students_links(tmp_path: Path) -> None:
    ann, bob = tmp_path / "homes" / "ann", tmp_path / "homes" / "bob"
    ann.mkdir(parents=True)
    bob.mkdir()
    (ann / "data.bin").write_bytes(os.urandom(1024**2))
    os.symlink("/usr", bob / "usr")
    os.symlink("/usr", tmp_path / "homes" / "eve")  # a home that is itself a link
    sizes, free = read_homes({"ann": str(ann), "bob": str(bob),
                              "eve": str(tmp_path / "homes" / "eve")})
    assert sizes["ann"] >= 1024**2
    assert sizes["bob"] < 64 * 1024 and sizes["eve"] == 0
    assert list(free) == [str(tmp_path / "homes")] and free[str(tmp_path / "homes")] > 0


def test_refresh_interval_from_the_environment() -> None:
    assert refresh_seconds(None) == 300 and refresh_seconds("2.5") == 2.5
    assert refresh_seconds("soon") == 300 and refresh_seconds("-1") == 300
    assert refresh_seconds("inf") == 300
