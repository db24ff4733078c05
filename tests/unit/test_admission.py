"""Admission control's queue (hub/admission.py) and the settings render makes of `starts:`."""

from __future__ import annotations

import asyncio

import pytest

from hubkeeper.hub.admission import Admission, QueueTimeout, auto_at_once
from tests.unit.test_render import rendered
from tests.unit.test_schema import problems_of


def test_starts_go_in_order_and_never_more_than_at_once() -> None:
    async def scenario() -> tuple[list[str], int, list[int]]:
        admission = Admission(2)
        order: list[str] = []
        busiest = 0
        places: list[int] = []

        async def start(name: str, seconds: float) -> None:
            nonlocal busiest
            ticket = admission.join(name)
            places.append(admission.place(ticket))
            async with admission.slot(ticket):
                order.append(name)
                busiest = max(busiest, len(admission.running))
                await asyncio.sleep(seconds)

        await asyncio.gather(*(start(f"u{i}", 0.05) for i in range(7)))
        return order, busiest, places

    order, busiest, places = asyncio.run(scenario())
    assert order == [f"u{i}" for i in range(7)]
    assert busiest == 2
    assert places == [0, 0, 1, 2, 3, 4, 5]  # the first two are admitted at once


def test_a_failed_start_frees_its_slot_and_a_timeout_leaves_the_line() -> None:
    async def scenario() -> tuple[str, list[str], int]:
        admission = Admission(1)
        done: list[str] = []

        async def failing() -> None:
            async with admission.slot(admission.join("bad")):
                await asyncio.sleep(0.05)
                raise RuntimeError("server died")

        async def patient(name: str) -> None:
            async with admission.slot(admission.join(name), timeout=5):
                done.append(name)

        async def impatient() -> str:
            try:
                async with admission.slot(admission.join("hasty"), timeout=0.01):
                    return "admitted"
            except QueueTimeout as exc:
                return str(exc)

        results = await asyncio.gather(failing(), impatient(), patient("ok"),
                                       return_exceptions=True)
        return str(results[1]), done, len(admission.waiting) + len(admission.running)

    timed_out, done, left = asyncio.run(scenario())
    assert "hasty waited 0 s" in timed_out
    assert done == ["ok"]  # admitted after the failure released the slot
    assert left == 0


def test_the_estimate_comes_from_recent_starts() -> None:
    now = [0.0]
    admission = Admission(2, clock=lambda: now[0])

    async def scenario() -> list[float | None]:
        first = admission.join("a")
        async with admission.slot(first):
            now[0] = 4.0
        estimates = []
        tickets = [admission.join(name) for name in "bcdef"]  # b, c run; d, e, f wait
        estimates += [admission.estimate(ticket) for ticket in tickets]
        return estimates

    assert asyncio.run(scenario()) == [0.0, 0.0, 2.0, 2.0, 6.0]


def test_auto_is_one_per_cpu_bounded_by_memory() -> None:
    gib = 1024**3
    assert auto_at_once(cpus=2, available=20 * gib) == 2
    assert auto_at_once(cpus=16, available=2 * gib) == 4
    assert auto_at_once(cpus=4, available=100) == 1
    assert auto_at_once() >= 1


def test_render_turns_starts_into_settings() -> None:
    c = rendered("users: {allowed: [a]}\n")
    assert c.HubkeeperSpawner.starts_at_once == -1  # auto, resolved in the hub process
    assert c.HubkeeperSpawner.starts_queue_timeout == 900
    assert c.JupyterHub.concurrent_spawn_limit == 0
    assert c.JupyterHub.tornado_settings == {"slow_spawn_timeout": 1}
    assert c.Spawner.start_timeout == 60 + 900  # the wait in line, then the server's own
    c = rendered("users: {allowed: [a]}\nstarts: {at_once: 3, queue_timeout: 2m}\n")
    assert c.HubkeeperSpawner.starts_at_once == 3
    assert c.Spawner.start_timeout == 60 + 120
    off = rendered("users: {allowed: [a]}\nstarts: {at_once: 0}\n")
    assert off.HubkeeperSpawner.starts_at_once == 0
    assert "concurrent_spawn_limit" not in off.JupyterHub


@pytest.mark.parametrize("text, expected", [
    ("starts: {at_once: many}\n", "starts.at_once"),
    ("starts: {at_once: -1}\n", "starts.at_once"),
    ("starts: {queue_timeout: soon}\n", "starts.queue_timeout"),
])
def test_bad_starts_are_reported_at_their_line(text: str, expected: str) -> None:
    problems = problems_of("users: {allowed: [a]}\n" + text)
    assert any(p.startswith("hub.yaml:2:") and expected in p for p in problems), problems
