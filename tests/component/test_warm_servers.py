"""servers.warm: servers forked from a warm parent (proc/warmparent.py), with a real system-
mode hub, real accounts and real servers: each runs as its account (uid, gid, groups), in its
folder, with its own environment and cgroup; stop works through the pidfd; a start the
parent cannot serve (killed) runs as today, says why, and the parent comes
back."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import pwd
import signal
import time
from pathlib import Path

import pytest

from hubkeeper.host import cgroups
from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import RunningHub, apply_accounts, write_config
from tests.support.procs import alive, children_running, ppid_of
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.component, pytest.mark.root]

PASSWORD = "Correct-Horse-7"
ANN, BOB = f"{TEST_ACCOUNT_PREFIX}1", f"{TEST_ACCOUNT_PREFIX}2"
WHO = ("import os, json; json.dumps({'pid': os.getpid(), 'ppid': os.getppid(), "
       "'ids': [os.getresuid(), os.getresgid(), sorted(os.getgroups())], 'cwd': os.getcwd(), "
       "'env': dict(os.environ), 'cgroup': open('/proc/self/cgroup').read(), "
       "'nnp': [l for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0]})")


def warm_parents(hub: RunningHub) -> list[int]:
    """The warm parents this hub runs (children of its jupyterhub process)."""
    return children_running(hub.hub_pid(), b"warmparent.py")


def wait_parent_ready(hub: RunningHub, count: int) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if hub.log().count(": ready at ") >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"no warm parent ready:\n{hub.log()[-3000:]}")


async def visit(hub: RunningHub, name: str, stop: bool = False) -> dict:
    """Log in, start, run WHO in a kernel; the server's own pid and parent from the kernel's
    parent; stop the server when asked."""
    async with SimUser(hub.url, name, PASSWORD) as user:
        await user.login()
        await user.start_server()
        await user.open_server()
        seen = json.loads(ast.literal_eval(await user.run_code(WHO)))
        seen["server_ppid"] = ppid_of(seen["ppid"])
        if stop:
            await user.stop_server()
        return seen


def test_servers_forked_from_the_warm_parent(workdir: Path, hubs, clean_accounts) -> None:
    enforcer = cgroups.detect()
    limits = enforcer.kind in ("cgroup1", "cgroup2")
    name = f"{TEST_ACCOUNT_PREFIX}warm"
    config = write_config(workdir, name=name, mode="system", auth="pam", admins=(),
                          allowed=(ANN, BOB),
                          extra="servers: {warm: true}\n"
                          + ("limits: {memory: 1G}\n" if limits else ""))
    apply_accounts(config, PASSWORD, (ANN, BOB))
    hub = hubs.start(config)
    try:
        # the default build's parent is started with the hub
        wait_parent_ready(hub, 1)
        (parent,) = warm_parents(hub)
        assert Path(hub.state / "run" / "warm").stat().st_mode & 0o777 == 0o700

        seen = {user: asyncio.run(visit(hub, user)) for user in (ANN, BOB)}
        assert hub.log().count("forking from the warm parent") == 2
        secrets = [(hub.state / "secrets" / entry).read_text().strip()
                   for entry in os.listdir(hub.state / "secrets")]
        for user, other in ((ANN, BOB), (BOB, ANN)):
            found, account = seen[user], pwd.getpwnam(user)
            assert found["server_ppid"] == parent  # forked by the warm parent
            uid, gid = account.pw_uid, account.pw_gid
            assert found["ids"] == [[uid] * 3, [gid] * 3,
                                    sorted(os.getgrouplist(user, gid))], found["ids"]
            assert found["cwd"] == account.pw_dir
            assert found["nnp"].split() == ["NoNewPrivs:", "1"]
            env = found["env"]
            assert env["JUPYTERHUB_USER"] == user and env["HOME"] == account.pw_dir
            assert env["USER"] == user
            text = json.dumps(env)
            assert other not in text  # nothing of the other student's
            assert not any(secret and secret in text for secret in secrets)
            assert not {"JPY_COOKIE_SECRET", "CONFIGPROXY_AUTH_TOKEN"} & set(env)
            if limits:
                assert f"hubkeeper/{name}/{user}" in found["cgroup"]
            # the server and its kernel are the user's: /proc says so too
            server = found["ppid"]
            assert Path(f"/proc/{server}").stat().st_uid == uid
        assert seen[ANN]["pid"] != seen[BOB]["pid"]

        # the parent dies: the running servers do not; the next start runs as today, says
        # why, and a new parent takes over
        os.kill(parent, signal.SIGKILL)
        asyncio.run(stop(hub, BOB))  # stop goes through the pidfd the hub holds
        assert not alive(seen[BOB]["ppid"])  # gone, or a zombie its new parent has not reaped
        again = asyncio.run(visit(hub, BOB, stop=True))
        assert again["server_ppid"] == hub.hub_pid()
        assert "exited with status -9; started again" in hub.log()
        wait_parent_ready(hub, 2)
        (new_parent,) = warm_parents(hub)
        assert new_parent != parent
        last = asyncio.run(visit(hub, BOB))
        assert last["server_ppid"] == new_parent
        asyncio.run(stop(hub, ANN))
        assert not alive(seen[ANN]["ppid"])

        # the hub is killed: its parent goes with it (PR_SET_PDEATHSIG), bob's server does
        # not; the next hub adopts it by pid and start time, and stops it through a pidfd
        os.kill(hub.hub_pid(), signal.SIGKILL)
        hub.proc.wait(timeout=30)
        end = time.monotonic() + 10
        while alive(new_parent) and time.monotonic() < end:
            time.sleep(0.1)
        assert not alive(new_parent)
        assert alive(last["ppid"])
        hub = hubs.start(config, log_name="up2.log")
        assert asyncio.run(still_there(hub, BOB)) == str(last["ppid"])
        asyncio.run(stop(hub, BOB))
        assert not alive(last["ppid"])
    finally:
        hub.stop()


async def still_there(hub: RunningHub, name: str) -> str:
    """The pid of the server that answers, without starting one."""
    async with SimUser(hub.url, name, PASSWORD) as user:
        await user.login()
        await user.open_server()
        return await user.run_code("__import__('os').getppid()")


async def stop(hub: RunningHub, name: str) -> None:
    async with SimUser(hub.url, name, PASSWORD) as user:
        await user.login()
        await user.stop_server()
