"""Admission control with a real hub, proxy and servers: starts wait in line, one at a time
here, each user sees their place, nobody fails, and a start that waits too long is refused
with a message and succeeds when tried again."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hubproc import hk, start_hub, write_config
from tests.support.simuser import SimUser

pytestmark = pytest.mark.component

STUDENTS = ("student1", "student2", "student3", "student4")


async def progress_messages(user: SimUser, deadline: float = 120.0) -> list[str]:
    """The spawn page's progress stream, as a browser reads it, until it ends."""
    url = user.base + f"hub/api/users/{user.name}/server/progress"
    messages = []
    async with asyncio.timeout(deadline), user.session.get(
            url, headers={**user._hub_headers(), "Accept": "text/event-stream"}) as response:
        assert response.status == 200, await response.text()
        async for line in response.content:
            text = line.decode().strip()
            if text.startswith("data:"):
                event = json.loads(text[5:])
                messages.append(event.get("message", ""))
                if event.get("ready") or event.get("failed"):
                    break
    return messages


async def visit(url: str, name: str, password: str) -> tuple[list[str], str]:
    async with SimUser(url, name, password) as user:
        await user.login()
        async with user.session.post(user.base + f"hub/api/users/{name}/server", json={},
                                     headers=user._hub_headers()) as response:
            assert response.status in (201, 202), await response.text()
        messages = await progress_messages(user)
        await user.wait_ready(60)
        await user.open_server()
        return messages, await user.run_code("1+1")


def test_starts_wait_in_line_and_none_fails(tmp_path: Path) -> None:
    config = write_config(tmp_path, name="hkadm", allowed=STUDENTS,
                          extra="starts: {at_once: 1}\nculling: {enabled: false}\n")
    hub = start_hub(config)
    try:
        async def storm() -> list[tuple[list[str], str]]:
            return await asyncio.gather(*(visit(hub.url, name, hub.password)
                                          for name in STUDENTS))

        results = asyncio.run(storm())
        assert [result for _, result in results] == ["2"] * len(STUDENTS)
        waited = [messages for messages, _ in results
                  if any("in line" in message for message in messages)]
        assert len(waited) >= 2, results  # four at once, one start at a time
        places = {int(m.group(1)) for messages in waited for message in messages
                  if (m := re.search(r"you are number (\d+) in line", message))}
        assert max(places) >= 2, places
        # One start at a time: each admission is followed by its end before the next.
        events = re.findall(r"(\w+): start (admitted|slot freed)", hub.log())
        assert [kind for _, kind in events] == ["admitted", "slot freed"] * len(STUDENTS)
        assert [name for name, kind in events if kind == "admitted"] == \
            [name for name, kind in events if kind == "slot freed"]
        assert "1 at a time" in hub.log()
    finally:
        hub.stop(signal.SIGTERM)


def scrape(url: str, token: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/hub/metrics with `token`, parsed: sample name -> its labels -> value."""
    request = urllib.request.Request(url + "hub/metrics",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def scraped_when(url: str, token: str, ready, deadline: float = 30.0):
    """The scrape once `ready(samples)` holds (the homes are measured by a thread of the
    hub, every second here)."""
    end = time.monotonic() + deadline
    while not ready(samples := scrape(url, token)):
        if time.monotonic() > end:
            raise AssertionError(f"metrics not as expected within {deadline} s: {samples}")
        time.sleep(0.3)
    return samples


def test_a_start_that_waits_too_long_is_refused_and_works_later(tmp_path: Path) -> None:
    """Also hubkeeper's metrics at /hub/metrics (docs/metrics.md), with real values: the
    refused start, the wait, a failing hook, a snapshot's age and a failed target, the
    homes' sizes (a student's link to /usr not followed)."""
    hook = tmp_path / "slow.sh"
    hook.write_text("#!/bin/sh\n[ \"$HUBKEEPER_USER\" != student1 ] || sleep 6\n")
    hook.chmod(0o755)
    failing = tmp_path / "check.sh"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    (tmp_path / "not-a-folder").write_text("")  # a target that cannot be made: it fails
    config = write_config(tmp_path, name="hkadq", allowed=STUDENTS[:2],
                          extra="starts: {at_once: 1, queue_timeout: 2s}\n"
                          "hooks: {as_root: [{script: slow.sh, timeout: 20s}], "
                          "as_user: [{script: check.sh}], on_failure: warn}\n"
                          "snapshots: {targets: [backup, not-a-folder/backup]}\n"
                          "culling: {enabled: false}\n")
    hub = start_hub(config, env={"HUBKEEPER_METRICS_REFRESH": "1"})
    try:
        async def both() -> tuple[object, object]:
            async with SimUser(hub.url, "student1", hub.password) as first, \
                    SimUser(hub.url, "student2", hub.password) as second:
                await first.login()
                await second.login()
                slow = asyncio.create_task(first.start_server(60))
                await asyncio.sleep(1)  # student1 holds the only slot (its hook sleeps)
                async with second.session.post(
                        second.base + "hub/api/users/student2/server", json={},
                        headers=second._hub_headers()) as response:
                    assert response.status in (201, 202), await response.text()
                refused = await progress_messages(second)
                await slow
                model = await second.model()
                await second.start_server(60)  # again, with the line empty: it works
                await second.open_server()
                return refused, (model, await second.run_code("1+1"))

        refused, (model, result) = asyncio.run(both())
        assert any("the hub was busy starting other servers" in message
                   for message in refused), refused
        assert not model.get("servers"), model  # nothing half-started left behind
        assert result == "2"
        assert "student2: waited 2 s (starts.queue_timeout) for a start slot" in hub.log()

        token = hub.secret("metrics-token")
        homes = hub.state / "users"
        (homes / "student1" / "data.bin").write_bytes(os.urandom(5 * 1024**2))
        os.symlink("/usr", homes / "student2" / "usr")  # must not count /usr
        taken = hk(config, "snapshot")
        assert taken.returncode == 1, taken.stdout + taken.stderr  # one target failed
        backup = str(tmp_path / "backup")
        broken = str(tmp_path / "not-a-folder" / "backup")
        samples = scraped_when(hub.url, token, lambda found: found.get(
            "hubkeeper_home_bytes", {}).get((("user", "student1"),), 0) >= 5 * 1024**2
            and found["hubkeeper_snapshot_age_seconds"].get((("target", backup),),
                                                            math.inf) < math.inf)
        assert samples["hubkeeper_failed_starts_total"][(("reason", "refused"),)] == 1
        assert samples["hubkeeper_failed_starts_total"][(("reason", "hook"),)] == 0
        # three starts went through the line (student1, student2 refused, student2 again);
        # the refused one waited its 2 s
        waits = samples["hubkeeper_start_queue_wait_seconds_count"][()]
        assert waits == 3, samples["hubkeeper_start_queue_wait_seconds_bucket"]
        assert samples["hubkeeper_start_queue_wait_seconds_bucket"][(("le", "1.0"),)] == 2
        assert samples["hubkeeper_start_queue_wait_seconds_sum"][()] >= 2
        assert samples["hubkeeper_start_queue_waiting"][()] == 0
        # check.sh failed at both starts that ran hooks (warn: they went on)
        assert samples["hubkeeper_hook_failures_total"][
            (("as", "user"), ("hook", "check.sh"))] == 2
        assert 0 <= samples["hubkeeper_snapshot_age_seconds"][(("target", backup),)] < 120
        assert samples["hubkeeper_snapshot_age_seconds"][(("target", broken),)] == math.inf
        assert samples["hubkeeper_snapshot_last_failed"] == {
            (("target", backup),): 0, (("target", broken),): 1}
        sizes = samples["hubkeeper_home_bytes"]
        assert sizes[(("user", "student2"),)] < 1024**2, sizes  # the link, not /usr
        assert set(samples["hubkeeper_disk_free_bytes"]) == {(("path", str(homes)),)}
        assert samples["hubkeeper_disk_free_bytes"][(("path", str(homes)),)] > 0
        assert "jupyterhub_running_servers" in samples  # JupyterHub's own, the same page
        # the token of `hubkeeper status` reads users, not metrics: each its own scope
        with pytest.raises(urllib.error.HTTPError) as refused_scrape:
            scrape(hub.url, hub.secret("status-token"))
        assert refused_scrape.value.code == 403
    finally:
        hub.stop(signal.SIGTERM)
