"""Prewarming without a hub: class windows, the schedule service's rounds against a fake
REST API, hub.yaml's schedule rules at their lines, bad command lines, capacity --group."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hubkeeper.host.hubapi import ApiError
from hubkeeper.proc.schedule import run_schedule
from hubkeeper.render.schedule import in_window, keepalive_every
from tests.unit.test_cli import HUBKEEPER
from tests.unit.test_render import rendered
from tests.unit.test_schema import problems_of

MONDAY_0956 = datetime(2026, 11, 23, 9, 56)  # a Monday


def test_class_windows() -> None:
    window = {"days": ["mon", "wed"], "start": "09:55", "end": "11:00"}
    assert in_window(window, MONDAY_0956)
    assert not in_window(window, MONDAY_0956.replace(hour=9, minute=54))
    assert not in_window(window, MONDAY_0956.replace(hour=11, minute=0))  # the end is out
    assert not in_window(window, MONDAY_0956.replace(day=24))  # a Tuesday
    assert in_window({"days": [], "start": "09:55:30", "end": "09:56:01"}, MONDAY_0956)
    assert keepalive_every(3600) == 60 and keepalive_every(10) == 2.5


class FakeHub:
    """The REST API calls prewarm makes, on a dict of users (name -> server or None)."""

    def __init__(self, servers: dict[str, bool | None]) -> None:
        self.servers = servers  # None: no server; False: starting; True: ready
        self.calls: list[tuple[str, str]] = []

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path))
        name = path.split("/")[2]
        if name not in self.servers:
            raise ApiError(404, f"the hub answered 404 to {method} {path}")
        if method == "POST" and path.endswith("/server"):
            self.servers[name] = True
            return None
        if method == "POST" and path.endswith("/activity"):
            assert body["servers"][""]["last_activity"].endswith("Z")
            return None
        state = self.servers[name]
        return {"name": name, "pending": None,
                "servers": {} if state is None else {"": {"ready": state}}}


def test_the_schedule_starts_each_class_once_and_keeps_it_active() -> None:
    hub = FakeHub({"ann": None, "bo": True, "cy": None})
    windows = [{"group": "students", "users": ["ann", "bo", "gone"], "days": ["mon"],
                "start": "09:55", "end": "11:00"},
               {"group": "other", "users": ["cy"], "days": ["tue"], "start": "09:55",
                "end": "11:00"}]
    moments = iter([MONDAY_0956.replace(minute=50), MONDAY_0956, MONDAY_0956.replace(minute=58),
                    MONDAY_0956.replace(hour=11, minute=1)])
    run_schedule(hub, windows, every=0, now=lambda: next(moments), sleep=lambda _: None,
                 rounds=4)
    starts = [path for method, path in hub.calls if path.endswith("/server")]
    assert starts == ["/users/ann/server"]  # bo was running; once per window and day
    assert hub.servers == {"ann": True, "bo": True, "cy": None}  # not cy's class today
    kept = [path for method, path in hub.calls if path.endswith("/activity")]
    assert kept == ["/users/ann/activity", "/users/bo/activity"] * 2  # two rounds inside


@pytest.mark.parametrize("text, expected", [
    ("schedule: [{group: lab, start: '10:00', end: '09:00'}]\n",
     "hub.yaml:4:46: schedule[0].end: 09:00 is not after start 10:00"),
    ("schedule: [{group: lab, start: '25:00', end: '26:00'}]\n", "schedule[0].start"),
    ("schedule: [{group: lab, days: [monday], start: '09:00', end: '10:00'}]\n",
     "schedule[0].days[0]"),
])
def test_bad_schedules_are_reported_at_their_line(text: str, expected: str) -> None:
    problems = problems_of("users:\n  allowed: [a]\n  groups: {lab: [a]}\n" + text)
    assert any(expected in problem for problem in problems), problems


def test_render_runs_the_schedule_service_with_the_groups_members() -> None:
    c = rendered("users:\n  allowed: [a, b]\n  groups: {lab: [a]}\n"
                 "schedule: [{group: lab, days: [mon], start: '09:55', end: '11:00'}]\n"
                 "culling: {idle: 20m}\n")
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "hubkeeper-schedule"]
    assert service["command"][-2:] == ["-m", "hubkeeper.proc.schedule"]
    assert '"users": ["a"]' in service["environment"]["HUBKEEPER_SCHEDULE"]
    assert service["environment"]["HUBKEEPER_KEEPALIVE"] == "60.0"
    (role,) = [r for r in c.JupyterHub.load_roles if r["name"] == "hubkeeper-schedule"]
    assert "users:activity" in role["scopes"] and "admin:users" not in role["scopes"]
    assert "users:activity" in c.JupyterHub.load_roles[0]["scopes"]  # prewarm --until


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, "-c", str(config), *args], capture_output=True,
                          text=True, timeout=60)


def test_bad_command_lines_start_nothing(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"hub: {{name: hkpw, state_dir: {tmp_path / 'state'}}}\n"
                      "users:\n  allowed: [ann, bo]\n  groups: {lab: [ann]}\n  locked: [bo]\n")
    for args, words in ((["--group", "nope"], "--group: 'nope' is not a roster group "
                                                "(roster groups: lab)"),
                        (["--user", "zed"], "--user: 'zed' is not on the roster"),
                        (["--user", "bo"], "--user: 'bo' is locked"),
                        ([], "--group: name a roster group"),
                        (["--group", "lab", "--at", "9h"], "--at: '9h' is not a time of day"),
                        (["--group", "lab", "--at", "00:00"], "has already passed today"),
                        (["--group", "lab", "--until", "00:00"], "--until: 00:00 is not after")):
        result = run(config, "prewarm", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr, result.stderr
    assert not (tmp_path / "state").exists()
    result = run(config, "prewarm", "--group", "lab")  # no hub: a clear error
    assert result.returncode == 1 and "up" in result.stderr


def test_capacity_of_one_group(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("users:\n  allowed: [ann, bo, cy]\n  groups: {lab: [ann, bo]}\n"
                      "limits: {memory: 1G, cpu: 0.5}\n")
    result = run(config, "capacity", "--group", "lab", "--json")
    assert result.returncode == 0, result.stderr
    assert '"concurrent": 2' in result.stdout and '"group": "lab"' in result.stdout
    assert f'"idle_memory": {2 * 128 * 2**20 + 128 * 2**20}' in result.stdout
    result = run(config, "capacity", "--group", "nope")
    assert result.returncode == 2 and "roster groups: lab" in result.stderr
