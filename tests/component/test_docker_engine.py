"""The container backend's ground: a real dockerd, the base image built without a registry,
a container running as a real host account on its bind-mounted home, the engine's memory
limit. (The backend itself is issue 7; this checks what its tests stand on.)"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.docker import base_image, docker

pytestmark = [pytest.mark.component, pytest.mark.root]


def test_a_container_runs_as_the_host_account_and_the_engine_limits_memory(accounts) -> None:
    image = base_image()
    name = accounts(f"{TEST_ACCOUNT_PREFIX}dk", home=True)
    account = pwd.getpwnam(name)
    home = Path(account.pw_dir)
    container = f"{TEST_ACCOUNT_PREFIX}-engine-{os.getpid()}"
    run = docker("run", "--rm", "--name", container, "--user",
                 f"{account.pw_uid}:{account.pw_gid}", "--volume", f"{home}:/home/user",
                 "--workdir", "/home/user", "--memory", "64m", "--memory-swap", "64m",
                 image, "sh", "-c",
                 "id -u; echo notebook > work.txt; "
                 "cat /sys/fs/cgroup/memory.max 2>/dev/null "
                 "|| cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                 "head -c 200000000 /dev/zero | tail > /dev/null; echo tail=$?")
    lines = run.stdout.decode().split()
    assert lines[0] == str(account.pw_uid)
    made = home / "work.txt"
    assert made.read_text() == "notebook\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (account.pw_uid, account.pw_gid)
    assert int(lines[1]) == 64 * 1024 * 1024
    assert lines[2] == "tail=137", lines  # tail held 200 MB: killed by the engine's limit
    assert docker("ps", "-a", "--filter", f"name={container}", "--format", "{{.Names}}"
                  ).stdout.strip() == b""  # --rm: nothing left behind
