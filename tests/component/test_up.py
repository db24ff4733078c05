"""`hubkeeper up` with a real hub, real proxy and real JupyterLab servers (personal mode)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hubkeeper.config import load
from tests.support.hubproc import HUBKEEPER, RunningHub, write_config
from tests.support.procs import proxy_pids, server_pids, wait_gone
from tests.support.simuser import SimUser

pytestmark = pytest.mark.component


def ports(hub: RunningHub) -> tuple[int, int]:
    spec = load(hub.config).spec
    return spec.hub.api_port, spec.proxy.api_port


async def visit(hub: RunningHub, name: str, code: str, *, start: bool = True,
                password: str | None = None) -> str:
    async with SimUser(hub.url, name, password or hub.password) as user:
        await user.login()
        if start:
            await user.start_server()
        await user.open_server()
        return await user.run_code(code)


async def stop_server(hub: RunningHub, name: str) -> None:
    async with SimUser(hub.url, name, hub.password) as user:
        await user.login()
        await user.stop_server()


def test_login_spawn_kernel_and_files_survive_restarts(workdir: Path, hubs) -> None:
    config = write_config(workdir)
    hub = hubs.start(config)
    api_port, proxy_api = ports(hub)
    cookie_secret = hub.secret("cookie-secret")

    assert asyncio.run(visit(hub, "student1", "1+1")) == "2"
    write = "open('note.txt', 'w').write('kept'); import os; os.getcwd()"
    cwd = asyncio.run(visit(hub, "student1", write, start=False))
    home = hub.state / "users" / "student1"
    assert cwd == repr(str(home))
    assert (home / "note.txt").read_text() == "kept"
    assert oct(home.stat().st_mode & 0o777) == "0o700"

    # Stop and start the server: the file is still there.
    asyncio.run(stop_server(hub, "student1"))
    assert server_pids(api_port) == {}
    assert asyncio.run(visit(hub, "student1", "open('note.txt').read()")) == "'kept'"
    servers = list(server_pids(api_port))
    proxies = proxy_pids(proxy_api)
    assert len(servers) == 1 and len(proxies) == 1

    # SIGTERM: hub, proxy and user server stop within 10 s.
    took = hub.stop(signal.SIGTERM)
    assert hub.proc.returncode == 0, hub.log()
    assert took < 10, f"stop took {took:.1f} s"
    assert wait_gone(servers + proxies, deadline=1) == []
    assert "stopped cleanly" in hub.log()

    # Start again: the user, the file and the cookie secret survive.
    again = hubs.start(config, log_name="up2.log")
    assert again.secret("cookie-secret") == cookie_secret
    assert asyncio.run(visit(again, "student1", "open('note.txt').read()")) == "'kept'"
    status = subprocess.run([HUBKEEPER, "--config", str(config), "status", "--json"],
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["reachable"] is True
    assert body["jupyterhub_version"].startswith(("5.", "6."))
    users = {user["name"]: user for user in body["users"]}
    assert set(users) == {"instructor", "student1", "student2"}
    assert users["instructor"]["admin"] is True
    assert users["student1"]["server"] == "running"
    assert users["student2"]["server"] is None


def test_ctrl_c_stops_everything(workdir: Path, hubs) -> None:
    hub = hubs.start(write_config(workdir))
    api_port, proxy_api = ports(hub)
    assert asyncio.run(visit(hub, "student2", "1+1")) == "2"
    pids = list(server_pids(api_port)) + proxy_pids(proxy_api) + [hub.hub_pid()]
    took = hub.stop(signal.SIGINT)
    assert took < 10, f"stop took {took:.1f} s"
    assert hub.proc.returncode == 0, hub.log()
    assert wait_gone(pids, deadline=1) == []


def test_kill_9_of_the_hub_is_recovered_by_the_next_up(workdir: Path, hubs) -> None:
    config = write_config(workdir)
    hub = hubs.start(config)
    api_port, proxy_api = ports(hub)
    assert asyncio.run(visit(hub, "student1", "x = 41; x + 1")) == "42"
    (old_server,) = server_pids(api_port)
    (old_proxy,) = proxy_pids(proxy_api)

    hub_pid = hub.hub_pid()
    subprocess.run(["kill", "-9", str(hub_pid)], check=True)
    hub.proc.wait(timeout=30)
    assert hub.proc.returncode == 1
    assert "the hub exited on its own" in hub.log()

    again = hubs.start(config, log_name="up2.log")
    # The orphaned proxy was replaced; the orphaned server was adopted, not duplicated.
    assert wait_gone([old_proxy], deadline=10) == []
    assert len(proxy_pids(proxy_api)) == 1
    assert list(server_pids(api_port)) == [old_server]
    assert asyncio.run(visit(again, "student1", "1+1", start=False)) == "2"
    pids = list(server_pids(api_port)) + proxy_pids(proxy_api)
    again.stop()
    assert wait_gone(pids, deadline=5) == []


def test_killing_up_itself_takes_the_hub_down(workdir: Path, hubs) -> None:
    """If the supervisor is killed -9, the kernel signals the hub, which cleans up."""
    hub = hubs.start(write_config(workdir))
    api_port, proxy_api = ports(hub)
    assert asyncio.run(visit(hub, "student1", "1+1")) == "2"
    pids = list(server_pids(api_port)) + proxy_pids(proxy_api) + [hub.hub_pid()]
    hub.proc.send_signal(signal.SIGKILL)
    hub.proc.wait(timeout=10)
    assert wait_gone(pids, deadline=15) == []


def test_a_second_up_on_the_same_state_dir_is_refused(workdir: Path, hubs) -> None:
    config = write_config(workdir)
    hub = hubs.start(config)
    began = time.monotonic()
    second = subprocess.run([HUBKEEPER, "--config", str(config), "up"],
                            capture_output=True, text=True, timeout=60)
    assert time.monotonic() - began < 30
    assert second.returncode == 1
    assert f"another hub already runs on {hub.state} (pid {hub.proc.pid})" in second.stderr
    assert hub.proc.poll() is None  # the running hub is untouched


def test_port_in_use_is_refused_before_anything_changes(workdir: Path) -> None:
    import socket

    config = write_config(workdir)
    port = load(config).spec.hub.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = subprocess.run([HUBKEEPER, "--config", str(config), "up"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{config}:5:9: hub.port: port {port} on 127.0.0.1 is in use" in result.stderr
    assert not (workdir / "state").exists()


def test_node_proxy(workdir: Path, hubs) -> None:
    hub = hubs.start(write_config(workdir, proxy="node"))
    _, proxy_api = ports(hub)
    (pid,) = proxy_pids(proxy_api)
    assert b"node" in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert asyncio.run(visit(hub, "student1", "1+1")) == "2"


def test_admin_logs_in_with_the_admin_password(workdir: Path, hubs) -> None:
    hub = hubs.start(write_config(workdir))

    async def admin_sees_users() -> list[str]:
        async with SimUser(hub.url, "instructor", hub.admin_password) as admin:
            await admin.login()
            async with admin.session.get(hub.url + "hub/api/users",
                                         headers=admin._hub_headers()) as response:
                assert response.status == 200
                return sorted(user["name"] for user in await response.json())

    assert asyncio.run(admin_sees_users()) == ["instructor", "student1", "student2"]

    async def student_with_admin_name_refused() -> None:
        async with SimUser(hub.url, "instructor", hub.password) as user:
            await user.login()

    from tests.support.simuser import SimUserError
    with pytest.raises(SimUserError, match="login refused"):
        asyncio.run(student_with_admin_name_refused())
