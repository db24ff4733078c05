"""Idle culling and per-user limits with a real hub, real servers and the kernel's cgroups."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from hubkeeper.host import cgroups
from tests.conftest import TEST_ACCOUNT_PREFIX, require, require_root
from tests.support.hubproc import write_config
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.component]


async def _server_of(user: SimUser) -> dict | None:
    return (await user.model()).get("servers", {}).get("")


def test_an_idle_server_is_culled_and_an_active_one_is_not(workdir: Path, hubs) -> None:
    """culling: {idle: 20s, every: 5s}. student1 starts a server and leaves; student2 keeps
    using theirs (a contents request every 2 s). After idle + 2 rounds of the culler the
    first is stopped and the second still runs; nobody's hub user is deleted. The servers
    are forked from the warm parent (servers.warm, personal mode), and student2's kernel from
    its server's kernel parent (servers.warm_kernels): the culler stops one through the pidfd
    the hub holds (tests/component/test_warm_servers.py: system mode)."""
    config = write_config(workdir, name=f"{TEST_ACCOUNT_PREFIX}cull",
                          extra="culling: {idle: 20s, every: 5s}\n"
                          "servers: {warm: true, warm_kernels: true}\n")
    hub = hubs.start(config)
    hub.wait_logged(": ready at ", deadline=60)  # the warm parent, started with the hub

    async def scenario() -> tuple[dict | None, dict | None, list[str]]:
        async with SimUser(hub.url, "student1", hub.password) as idle, \
                SimUser(hub.url, "student2", hub.password) as busy:
            for user in (idle, busy):
                await user.login()
                await user.start_server()
                await user.open_server()
            # a forked server forks its kernels too (servers.warm_kernels)
            assert await busy.run_code("6 * 7") == "42"
            contents = hub.url + "user/student2/api/contents"
            end = time.monotonic() + 60
            while time.monotonic() < end and await _server_of(idle):
                async with busy.session.get(contents) as response:
                    assert response.status == 200
                await asyncio.sleep(2)
            gone_idle, still_busy = await _server_of(idle), await _server_of(busy)
            async with busy.session.get(contents) as response:  # still serving
                assert response.status == 200
            async with SimUser(hub.url, "instructor", hub.admin_password) as admin:
                await admin.login()
                async with admin.session.get(hub.url + "hub/api/users",
                                             headers=admin._hub_headers()) as response:
                    names = [user["name"] for user in await response.json()]
            return gone_idle, still_busy, names

    gone_idle, still_busy, names = asyncio.run(scenario())
    assert gone_idle is None, "the idle server was not culled within 60 s"
    assert still_busy is not None and still_busy["ready"]
    assert {"student1", "student2", "instructor"} <= set(names)  # users are never culled
    assert "Culling server student1" in hub.log()
    assert "Culling server student2" not in hub.log()
    for name in ("student1", "student2"):
        assert f"{name}: forking from the warm parent" in hub.log()
    assert "server started without the warm parent" not in hub.log()
    assert "forked from the warm parent" in hub.log().split("student2: forking")[1]
    assert "started the normal way" not in hub.log()


def _cgroup_dirs(hub_name: str) -> list[Path]:
    return [path for path in Path("/sys/fs/cgroup").glob(f"**/hubkeeper/{hub_name}")
            if path.is_dir()]


def _remove_cgroups(hub_name: str) -> None:
    for directory in _cgroup_dirs(hub_name):
        for child in sorted(directory.glob("*/"), reverse=True):
            if (child / "cgroup.procs").exists():
                child.rmdir()
        directory.rmdir()


def test_limits_put_the_server_and_its_kernels_in_a_cgroup(workdir: Path, hubs) -> None:
    """limits: memory 512M, cpu 0.5 for everyone, 1 CPU for group tas. The server, its kernel
    and a child of the kernel are inside the user's cgroup; a child allocating 2 GB is
    killed by the kernel's OOM killer (it is the largest process of the group when the
    limit is reached, so the server survives); the group goes when the server stops."""
    require_root()
    enforcer = cgroups.detect()
    require(enforcer.kind in ("cgroup1", "cgroup2"),
            f"writable cgroup memory and cpu controllers (found: {enforcer.describe()})")
    name = f"{TEST_ACCOUNT_PREFIX}lim"
    _remove_cgroups(name)
    config = write_config(workdir, name=name, extra=(
        "limits: {memory: 512M, cpu: 0.5, groups: {tas: {cpu: 1}}}\n"))
    text = config.read_text()
    allowed = "  allowed: [student1, student2]\n"
    config.write_text(text.replace(allowed, allowed + "  groups: {tas: [student2]}\n"))
    hub = hubs.start(config)
    oom = ("__import__('subprocess').run([__import__('sys').executable, '-c', "
           "'bytearray(2 << 30)']).returncode")
    try:
        async def visit(user_name: str) -> tuple[str, str, dict]:
            async with SimUser(hub.url, user_name, hub.password) as user:
                await user.login()
                await user.start_server()
                await user.open_server()
                inside = await user.run_code("open('/proc/self/cgroup').read()")
                killed = await user.run_code(oom)
                # jupyter-resource-usage: what JupyterLab's status bar shows
                metrics = await user.server_get("api/metrics/v1")
                assert isinstance(metrics, dict)
                return inside, killed, metrics

        inside, killed, metrics = asyncio.run(visit("student1"))
        # the user's own limit, in bytes, and CPU against their 0.5 CPU
        assert metrics["limits"]["memory"]["rss"] == 512 * 1024**2, metrics
        assert metrics["limits"]["cpu"]["cpu"] == 0.5, metrics
        assert metrics["rss"] > 0 and "cpu_percent" in metrics, metrics
        assert f"hubkeeper/{name}/student1" in inside
        assert killed == "-9"  # SIGKILL from the OOM killer: the limit holds for children
        group = cgroups.UserGroup(enforcer, name, "student1")
        assert group.members(), "the server is not in its cgroup"
        if enforcer.kind == "cgroup1":
            memory, cpu, *pids = group.directories
            assert int((memory / "memory.limit_in_bytes").read_text()) == 512 * 1024**2
            assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50_000
        else:
            (directory,) = group.directories
            memory = cpu = directory
            pids = [directory] if enforcer.pids else []
            assert (directory / "memory.max").read_text().strip() == str(512 * 1024**2)
            assert (directory / "cpu.max").read_text().split()[0] == "50000"
        for directory in pids:  # the process limit is on by default (limits.pids)
            assert (directory / "pids.max").read_text().strip() == "1024"

        tas = cgroups.UserGroup(enforcer, name, "student2")
        asyncio.run(visit("student2"))
        cpu = tas.directories[1] if enforcer.kind == "cgroup1" else tas.directories[0]
        quota = (cpu / ("cpu.cfs_quota_us" if enforcer.kind == "cgroup1"
                        else "cpu.max")).read_text().split()[0]
        assert int(quota) == 100_000  # the group's 1 CPU replaces the hub's 0.5

        async def stop(user_name: str) -> None:
            async with SimUser(hub.url, user_name, hub.password) as user:
                await user.login()
                await user.stop_server()

        asyncio.run(stop("student1"))
        assert not any(d.exists() for d in group.directories)
    finally:
        hub.stop()
        _remove_cgroups(name)
    assert "NOT enforced" not in hub.log()


def test_limits_are_reported_as_not_enforced_without_cgroups(tmp_path: Path) -> None:
    """detect() on a machine without controllers (an empty cgroup root) says so in words."""
    require_root()
    enforcer = cgroups.detect(root=tmp_path, systemd_dir=tmp_path / "no-systemd")
    assert enforcer.kind == "none"
    assert enforcer.describe().startswith("NOT enforced: neither systemd nor writable")
    shutil.rmtree(tmp_path, ignore_errors=True)
