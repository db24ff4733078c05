"""Prewarming with a real hub, proxy, servers and jupyterhub-idle-culler: `hubkeeper
prewarm` and hub.yaml's schedule start servers before a class; inside the class window idle
culling leaves them alone, after it (or without a window) it stops them."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.hubproc import HUBKEEPER, start_hub, write_config
from tests.support.simuser import SimUser

pytestmark = pytest.mark.component

IDLE = 6  # culling.idle, seconds


def clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S")


def servers(hub, token: str) -> dict[str, bool]:
    """user -> whether their server is ready (users without a server are left out)."""
    request = urllib.request.Request(hub.url + "hub/api/users",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        users = json.load(response)
    return {user["name"]: bool(user["servers"][""].get("ready"))
            for user in users if user.get("servers", {}).get("")}


def wait_for(condition, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {deadline:.0f} s: {what}")


def test_prewarmed_servers_survive_culling_until_the_class_ends(tmp_path: Path) -> None:
    now = datetime.now()
    if (now + timedelta(minutes=2)).date() != now.date():  # windows end on the day they begin
        time.sleep((datetime.combine(now.date() + timedelta(days=1),
                                     datetime.min.time()) - now).total_seconds() + 1)
    begin = datetime.now() + timedelta(seconds=4)
    end = begin + timedelta(seconds=22)
    config = write_config(
        tmp_path, name="hkpw", allowed=("student1", "student2", "student3"),
        users="  allowed: [student1, student2, student3]\n  admins: [instructor]\n"
              "  groups: {morning: [student1]}\n",
        extra=f"culling: {{idle: {IDLE}s, every: 2s}}\n"
              f"schedule: [{{group: morning, start: '{clock(begin)}', end: '{clock(end)}'}}]\n")
    hub = start_hub(config)
    token = hub.secret("api-token")
    keeper = None
    try:
        # A class window by hand for student2; student3 prewarmed without one.
        keeper = subprocess.Popen([HUBKEEPER, "-c", str(config), "prewarm", "--user",
                                   "student2", "--until", clock(end)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        result = subprocess.run([HUBKEEPER, "-c", str(config), "prewarm", "--user",
                                 "student3"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "started 1, already running 0, ready 1" in result.stdout, result.stdout
        again = subprocess.run([HUBKEEPER, "-c", str(config), "prewarm", "--user", "student3",
                                "--json"], capture_output=True, text=True, timeout=120)
        assert json.loads(again.stdout)["already"] == ["student3"]

        # The schedule starts student1's server when the window opens, with nobody asking.
        wait_for(lambda: servers(hub, token).get("student1"), 30, "the scheduled start")
        assert "schedule: class of morning" in hub.log()

        async def login_is_instant() -> tuple[bool, str]:
            async with SimUser(hub.url, "student1", hub.password) as user:
                await user.login()
                ready = ((await user.model())["servers"].get("") or {}).get("ready", False)
                await user.open_server()
                return ready, await user.run_code("1+1")

        assert asyncio.run(login_is_instant()) == (True, "2")

        # Culling: student3 (no window) goes after IDLE s; the others stay in the window.
        wait_for(lambda: "student3" not in servers(hub, token), 40, "student3 culled")
        running = servers(hub, token)
        assert datetime.now() < end, "the window ended before student3 was culled"
        assert running.get("student1") and running.get("student2"), running
        time.sleep(max(0.0, (end - datetime.now()).total_seconds() - 2))
        assert set(servers(hub, token)) == {"student1", "student2"}  # idle > IDLE, kept

        out, err = keeper.communicate(timeout=60)  # --until returns at the end
        assert keeper.returncode == 0, err
        assert f"kept from idle culling until {clock(end)}" in out
        # After the window, idle culling applies to them as to anyone.
        wait_for(lambda: not servers(hub, token), 40, "culled after the window")
    finally:
        if keeper is not None and keeper.poll() is None:
            keeper.kill()
        hub.stop(signal.SIGTERM)
