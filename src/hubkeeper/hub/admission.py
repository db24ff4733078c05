"""Admission control for server starts: a first-come, first-served queue with a fixed number
of starts at a time.

A JupyterLab server needs about 3 CPU-seconds to become ready. Started all at once on a small
machine, 60 of them share the CPUs and each takes minutes, past every timeout; started a few
at a time, each takes seconds and the last one is ready about when the machine's CPU allows
anyway. A start holds its place from the moment the hub asks for it until its server
answers (or fails), so the queue measures what a start really costs, and its timeout counts
from when it was admitted.

Pure asyncio, one per hub process (`HubkeeperSpawner.admission()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

# What one start holds while it runs (a JupyterLab server's resident memory as it becomes
# ready, with room for the hooks); the machine's free memory bounds the starts at once.
MEMORY_PER_START = 512 * 1024**2
# Starts averaged for the estimate shown to waiting users.
RECENT = 20


def auto_at_once(cpus: int | None = None, available: int | None = None) -> int:
    """Starts at once for this machine: one per CPU (a start is CPU-bound and single
    threaded), fewer when memory is short, at least one."""
    cpus = cpus if cpus is not None else len(os.sched_getaffinity(0))
    if available is None:
        available = _available_memory()
    by_memory = max(1, available // MEMORY_PER_START) if available else cpus
    return max(1, min(cpus, by_memory))


def _available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass(eq=False)
class Ticket:
    """One start's place: waiting until `admitted` is set."""

    name: str
    arrived: float
    admitted: asyncio.Event = field(default_factory=asyncio.Event)
    started: float | None = None


class QueueTimeout(Exception):
    """A start waited longer than the queue allows."""


class Admission:
    def __init__(self, at_once: int, clock: Callable[[], float] = time.monotonic) -> None:
        if at_once < 1:
            raise ValueError(f"at_once must be at least 1, not {at_once}")
        self.at_once = at_once
        self.clock = clock
        self.running: set[Ticket] = set()
        self.waiting: deque[Ticket] = deque()
        self.durations: deque[float] = deque(maxlen=RECENT)

    def join(self, name: str) -> Ticket:
        """A place at the end of the queue (admitted at once when a start is free)."""
        ticket = Ticket(name, self.clock())
        self.waiting.append(ticket)
        self._admit()
        return ticket

    @contextlib.asynccontextmanager
    async def slot(self, ticket: Ticket, timeout: float | None = None) -> AsyncIterator[Ticket]:
        """Hold one of the starts at once for the body; wait first, in order of arrival.
        Raises QueueTimeout after `timeout` seconds of waiting (None or 0: no limit)."""
        name = ticket.name
        try:
            if timeout:
                await asyncio.wait_for(ticket.admitted.wait(), timeout)
            else:
                await ticket.admitted.wait()
        except asyncio.TimeoutError:
            raise QueueTimeout(f"{name} waited {timeout:.0f} s for a start slot") from None
        finally:
            if not ticket.admitted.is_set():
                self.waiting.remove(ticket)
        try:
            yield ticket
        finally:
            self.running.discard(ticket)
            if ticket.started is not None:
                self.durations.append(self.clock() - ticket.started)
            self._admit()

    def _admit(self) -> None:
        while self.waiting and len(self.running) < self.at_once:
            ticket = self.waiting.popleft()
            ticket.started = self.clock()
            self.running.add(ticket)
            ticket.admitted.set()

    def place(self, ticket: Ticket) -> int:
        """1 for the next start to be admitted; 0 once admitted."""
        try:
            return self.waiting.index(ticket) + 1
        except ValueError:
            return 0

    def estimate(self, ticket: Ticket) -> float | None:
        """Seconds until `ticket` is admitted, from the recent starts; None before any."""
        place = self.place(ticket)
        if not place or not self.durations:
            return None if place else 0.0
        typical = sorted(self.durations)[len(self.durations) // 2]
        # The starts ahead go through at_once lanes; the running ones are half done.
        rounds = (place - 1) // self.at_once + 0.5
        return rounds * typical
