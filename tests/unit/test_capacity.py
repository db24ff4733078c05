"""`hubkeeper capacity`: TLJH's sizing rule over the roster's limits, on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hubkeeper.context.hub import Hub
from hubkeeper.verbs.capacity import HUB_OVERHEAD, capacity, machine_memory
from tests.unit.test_cli import run

G = 1024**3


def write(tmp_path: Path, limits: str) -> Path:
    config = tmp_path / "hub.yaml"
    config.write_text("users:\n  allowed: [ann, bo, cy]\n  groups: {big: [cy]}\n" + limits)
    return config


def test_the_largest_limits_count_first_and_the_machine_is_read(tmp_path: Path) -> None:
    config = write(tmp_path, "limits: {memory: 1G, cpu: 0.5, groups: {big: {memory: 3G}}}\n")
    whole = capacity(Hub.open(config))
    assert whole.concurrent == 3 and whole.roster == 3
    assert whole.memory_per_user == (3 * G, G, G)
    assert whole.memory_needed == 5 * G + HUB_OVERHEAD
    assert whole.cpu_needed == 1.8  # 3 x 0.5 + 20%
    assert whole.memory_total == machine_memory() and whole.cpus == len(os.sched_getaffinity(0))
    two = capacity(Hub.open(config), concurrent=2)
    assert two.memory_needed == 4 * G + HUB_OVERHEAD  # cy (3G) is among the two
    assert capacity(Hub.open(config), concurrent=10).concurrent == 3


def test_exit_1_when_the_memory_does_not_suffice_and_0_when_it_does(tmp_path: Path) -> None:
    huge = write(tmp_path, "limits: {memory: 100T}\n")
    result = run("-c", str(huge), "capacity")
    assert result.returncode == 1
    assert "memory: NOT ENOUGH: needs 300T" in result.stdout
    small = write(tmp_path, "limits: {memory: 1M, cpu: 0.1}\n")
    result = run("-c", str(small), "capacity", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert body["ok"] and body["memory_ok"] and body["cpu_ok"]


def test_without_limits_the_answer_is_that_it_cannot_tell(tmp_path: Path) -> None:
    result = run("-c", str(write(tmp_path, "")), "capacity")
    assert result.returncode == 0
    assert "memory: cannot tell: 3 of them have no memory limit" in result.stdout
    assert "limits are " in result.stdout


def test_bad_concurrency_is_refused(tmp_path: Path) -> None:
    result = run("-c", str(write(tmp_path, "")), "capacity", "--concurrent", "0")
    assert result.returncode == 2, result.stderr
    assert "--concurrent" in result.stderr and "0 is not in the range x>=1" in result.stderr
