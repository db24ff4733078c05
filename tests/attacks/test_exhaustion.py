"""Finding 7: exhaustion. One student's fork bomb must not stop everyone's servers, and one
student filling the disk must not refuse everyone else's start.

A real system-mode hub (PAM, real accounts), real servers and kernels. The bomb runs in the
bomber's own kernel, so in their server's cgroup, as it would from a notebook or a terminal;
it is bounded (its processes end by themselves, and at most BOMB_CAP are made: without the
limit it must not take the shared test machine down), and every process of the account is
killed at teardown. The disk is a real small filesystem (tmpfs) holding the homes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from pathlib import Path

import aiohttp
import pytest

from hubkeeper.host import cgroups
from tests.conftest import TEST_ACCOUNT_PREFIX, require
from tests.support.hubproc import journaled, write_config
from tests.support.simuser import SimUser, SimUserError

pytestmark = [pytest.mark.attack, pytest.mark.root]

PASSWORD = "Correct-Horse-7"
PIDS = 128  # small, so that the bomb reaches it fast and with little memory
BOMB_CAP = 400  # the bomb's own bound, for the run with the protection removed
BOMB_SECONDS = 90

# Spawns sleeping children as fast as it can until the kernel refuses (or BOMB_CAP); every
# child ends by itself after BOMB_SECONDS, in its own session so that it outlives the
# kernel (a notebook's kernel is stopped after the code ran). Returns (made, the refusal).
BOMB = f"""
import os, time
made, refusal = 0, None
end = time.time() + 10
while made < {BOMB_CAP} and time.time() < end:
    try:
        os.posix_spawn("/bin/sleep", ["sleep", "{BOMB_SECONDS}"], dict(os.environ),
                       setsid=True)  # outlive the kernel
        made += 1
    except OSError as exc:
        refusal = exc.strerror
        break
(made, refusal)
"""


def _cgroup_root(hub_name: str) -> list[Path]:
    return [path for path in Path("/sys/fs/cgroup").glob(f"*/hubkeeper/{hub_name}")
            if path.is_dir()] + [path for path in Path("/sys/fs/cgroup").glob(
                f"hubkeeper/{hub_name}") if path.is_dir()]


def _remove_cgroups(hub_name: str) -> None:
    for directory in _cgroup_root(hub_name):
        for child in sorted(directory.glob("*/"), reverse=True):
            if (child / "cgroup.procs").exists():
                with contextlib.suppress(OSError):  # processes inside: killed at teardown
                    child.rmdir()
        with contextlib.suppress(OSError):
            directory.rmdir()


def _pids_dir(enforcer: cgroups.Enforcer, hub_name: str, user: str) -> Path:
    group = cgroups.UserGroup(enforcer, hub_name, user)
    return group.directories[-1] if enforcer.kind == "cgroup1" else group.directories[0]


async def _busy_server_tasks(user: SimUser, pids_dir: Path) -> int:
    api = user.base + f"user/{user.name}/api/"
    headers = user._server_headers()
    for _ in range(3):
        async with user.session.post(api + "kernels", json={"name": "python3"},
                                     headers=headers) as response:
            assert response.status == 201, await response.text()
    async with user.session.post(api + "terminals", headers=headers) as response:
        assert response.status == 200, await response.text()
    await asyncio.sleep(5)  # the kernels' threads start
    return int((pids_dir / "pids.current").read_text())


def test_a_fork_bomb_stops_at_its_own_limit(workdir: Path, students, hubs) -> None:
    enforcer = cgroups.detect()
    require(enforcer.kind in ("cgroup1", "cgroup2") and enforcer.pids,
            f"a writable cgroup pids controller (found: {enforcer.describe()})")
    bomber, calm, late = (students.make(f"fb{n}", password=PASSWORD) for n in (1, 2, 3))
    name = f"{TEST_ACCOUNT_PREFIX}fb"
    _remove_cgroups(name)
    config = write_config(workdir, name=name, mode="system", auth="pam", admins=(),
                          allowed=(bomber.name, calm.name, late.name),
                          extra=f"limits: {{pids: {PIDS}, cpu: 1}}\n")
    journaled(config, bomber.name, calm.name, late.name)  # as `adopt` records accounts
    hub = hubs.start(config)

    async def scenario() -> dict:
        async with SimUser(hub.url, bomber.name, PASSWORD) as b, \
                SimUser(hub.url, calm.name, PASSWORD) as c:
            for user in (b, c):
                await user.login()
                await user.start_server()
                await user.open_server()
            # A server with three kernels and a terminal, for the record (limits.pids's
            # default is argued from it).
            idle = await _busy_server_tasks(c, _pids_dir(enforcer, name, calm.name))
            bombed = await b.run_code(BOMB, deadline=60)
            pids_dir = _pids_dir(enforcer, name, bomber.name)
            during = int((pids_dir / "pids.current").read_text())
            # While the bomb's processes hold the limit: the others are served.
            answered = await c.run_code("sum(range(10))")
            async with SimUser(hub.url, late.name, PASSWORD) as third:
                await third.login()
                await third.start_server()
                await third.open_server()
                late_answer = await third.run_code("6*7")
            still = int((pids_dir / "pids.current").read_text())
            return {"idle": idle, "bombed": bombed, "during": during, "still": still,
                    "max": (pids_dir / "pids.max").read_text().strip(),
                    "answered": answered, "late": late_answer}

    try:
        seen = asyncio.run(scenario())
    finally:
        for student in (bomber, calm, late):
            student.stop_all()  # the bomb's sleepers too
        hub.stop()
        _remove_cgroups(name)
    print("tasks:", json.dumps(seen))
    made, refusal = eval(seen["bombed"])  # noqa: S307  (a repr of a tuple from our own code)
    assert seen["max"] == str(PIDS)
    assert refusal == "Resource temporarily unavailable", seen  # EAGAIN from pids.max
    assert made < PIDS <= BOMB_CAP
    assert seen["during"] <= PIDS and seen["still"] <= PIDS
    assert seen["answered"] == "45" and seen["late"] == "42"
    assert "NOT enforced" not in hub.log()


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(where)], capture_output=True, text=True)
    require(done.returncode == 0, f"mounting a tmpfs ({done.stderr.strip()})")


def _move_home(student, homes: Path) -> None:
    home = homes / student.name
    subprocess.run(["usermod", "--home", str(home), "--move-home", "--", student.name],
                   check=True, capture_output=True)
    home.chmod(0o700)


async def _failure(user: SimUser) -> str:
    """The message of the user's last failed start, as the spawn page shows it."""
    url = user.base + f"hub/api/users/{user.name}/server/progress"
    timeout = aiohttp.ClientTimeout(total=10)
    async with user.session.get(url, headers=user._hub_headers(), timeout=timeout) as response:
        return await response.text()


def test_one_student_filling_the_disk_locks_out_only_themselves(workdir: Path, students,
                                                                 hubs) -> None:
    homes = workdir / "homes"
    _mount_tmpfs(homes, "64m")
    try:
        filler, other, third = (students.make(f"df{n}", password=PASSWORD) for n in (1, 2, 3))
        for student in (filler, other, third):
            _move_home(student, homes)
        config = write_config(workdir, name=f"{TEST_ACCOUNT_PREFIX}df", mode="system",
                              auth="pam", admins=(),
                              allowed=(filler.name, other.name, third.name),
                              extra="data: {min_free: 24M}\n")
        journaled(config, filler.name, other.name, third.name)
        # The attack: the filler writes 48M of the 64M disk; a fair share is 64M / 3.
        filler.python("""
            import os
            with open('big.bin', 'wb') as out:
                for _ in range(48):
                    out.write(os.urandom(1 << 20))
        """)
        hub = hubs.start(config)

        async def scenario() -> tuple[str, str, str]:
            async with SimUser(hub.url, other.name, PASSWORD) as o:
                await o.login()
                await o.start_server()
                await o.open_server()
                answer = await o.run_code("6*7")
            async with SimUser(hub.url, filler.name, PASSWORD) as f:
                await f.login()
                refused = ""
                try:
                    await f.start_server(deadline=60)
                except SimUserError as exc:
                    refused = str(exc)
                message = await _failure(f)
            return answer, refused, message

        answer, refused, message = asyncio.run(scenario())
        hub.stop()
    finally:
        for student in students.made:
            student.stop_all()
        subprocess.run(["umount", "-l", str(homes)], capture_output=True)
    assert answer == "42"  # the other student started, though the disk is nearly full
    assert refused, "the filler's server started"
    assert "more than your fair share" in message, message
    log = hub.log()
    assert f"{filler.name}: over their fair share of the disk" in log
    assert f"{other.name}: starts although" in log
