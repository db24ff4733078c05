"""Personal mode as an ordinary account: no root anywhere, state next to hub.yaml."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, _answers, free_ports
from tests.support.procs import uid_of, wait_gone
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.component, pytest.mark.root]  # root only to create the account


def test_up_as_a_plain_user(accounts) -> None:
    name = accounts(f"{P}me", home=True)
    account = pwd.getpwnam(name)
    home = Path(account.pw_dir)
    work = Path(tempfile.mkdtemp(prefix=f"{P}-", dir=home))
    shutil.chown(work, account.pw_uid, account.pw_gid)
    port, api_port, proxy_port = free_ports(3)
    (work / "hub.yaml").write_text(
        f"hub: {{name: mine, port: {port}, api_port: {api_port}}}\n"
        f"proxy: {{api_port: {proxy_port}}}\nusers: {{allowed: [ada]}}\n")
    shutil.chown(work / "hub.yaml", account.pw_uid, account.pw_gid)
    output = work / "up.log"
    with open(output, "wb") as sink:
        up = subprocess.Popen(
            [HUBKEEPER, "--config", str(work / "hub.yaml"), "up"],
            user=account.pw_uid, group=account.pw_gid, extra_groups=[],
            stdout=sink, stderr=subprocess.STDOUT, cwd=work, start_new_session=True,
            env={"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"})
    url = f"http://127.0.0.1:{port}/"
    try:
        end = time.monotonic() + 120
        while not _answers(url) and up.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
        assert _answers(url), output.read_text()
        state = work / ".hubkeeper"  # the documented default when not root
        password = (state / "secrets" / "shared-password").read_text().strip()

        async def visit() -> str:
            async with SimUser(url, "ada", password) as user:
                await user.login()
                await user.start_server()
                await user.open_server()
                return await user.run_code("import os; (os.getuid(), os.getcwd())")

        assert asyncio.run(visit()) == repr((account.pw_uid, str(state / "users" / "ada")))
        hub_pid = int((state / "run" / "jupyterhub.pid").read_text())
        assert uid_of(hub_pid) == account.pw_uid
        text = output.read_text()
        assert "users are NOT isolated from each other" in text
        assert "allow_root" not in text
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=20)
        except subprocess.TimeoutExpired:
            up.kill()
    assert up.returncode == 0, output.read_text()
    assert wait_gone([hub_pid], deadline=2) == []
