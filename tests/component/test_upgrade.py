"""`hubkeeper upgrade` from a JupyterHub 5 hub to JupyterHub 6, for real (issue 20, 4a-4c).

One system-mode hub, made and used on an install of this tree with JupyterHub 5.5.4 (real
accounts with passwords, a group, a token, a running server with a file), goes through, in
order: the plan (nothing changes); a requirement that cannot install; a release whose hub
does not start, and the same release whose canary cannot run code; `upgrade` killed with
SIGKILL mid-way, then `rollback`, and killed again, then `upgrade` finishing it; `rollback`
by hand; and the upgrade to JupyterHub 6.1.1 in one
command, after which the users log in with their passwords and find their files, groups and
token, and the database is at JupyterHub 6's revision. Every failure must leave the hub
serving on 5.5.4 with the old database byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hubkeeper.config import load
from hubkeeper.host import hubdb
from hubkeeper.host import install as installs
from hubkeeper.host.canary import canary_account
from hubkeeper.state.statedir import state_paths
from tests.conftest import SESSION_WORKDIRS, TEST_ACCOUNT_PREFIX, remove_test_accounts, require_root
from tests.support.hubproc import pam_hub
from tests.support.simuser import SimUser
from tests.support.versions import (
    NEW_JUPYTERHUB,
    OLD_JUPYTERHUB,
    HubOfInstall,
    broken_wheel,
    build_install,
    build_wheel,
    hk,
    use_pip_cache,
)
from tests.support.wheel import clean_env

pytestmark = [pytest.mark.component, pytest.mark.root, pytest.mark.timeout(1800)]

PREFIX = TEST_ACCOUNT_PREFIX
ANN, BOB = f"{PREFIX}1", f"{PREFIX}2"
GROUP = f"{PREFIX}lab"
PASSWORD = "Upgrade-Horse-9"
NEW = "new"


@dataclass
class World:
    base: Path
    wheel: Path
    prefix: Path
    config: Path
    hub: HubOfInstall
    token: str  # Ann's API token, made on JupyterHub 5

    @property
    def old(self) -> Path:
        return self.prefix / "old"

    def current(self) -> str:
        return os.readlink(self.prefix / "current")

    def upgrade(self, *args: str) -> subprocess.CompletedProcess[str]:
        return hk(self.prefix / "current" / "bin" / "hubkeeper", self.config, "upgrade",
                  "--grace", "1", *args)

    def new_requirements(self, wheel: Path | None = None) -> list[str]:
        return ["--to", str(wheel or self.wheel), "--to", f"jupyterhub=={NEW_JUPYTERHUB}"]

    def revision(self) -> str | None:
        return hubdb.revision(self.hub.paths.database)

    def assert_put_back(self) -> None:
        """The last upgrade was undone with the database it kept, byte for byte (the hub
        writes to it again as soon as it runs, so the bytes are checked by the rollback
        itself against the digest taken with the hub stopped, and here the kept copy)."""
        record = json.loads(self.hub.paths.upgrade_record.read_text())
        assert record["state"] == "rolled-back", record
        kept = Path(record["database"]["kept"])
        assert hubdb.sha256(kept) == record["database"]["sha256"]
        assert hubdb.revision(kept) == self.revision()

    def assert_old_serving(self, revision: str | None) -> None:
        """The hub answers on JupyterHub 5 from the old install with the old database."""
        assert self.current() == "old"
        assert self.hub.answers() and self.hub.version() == OLD_JUPYTERHUB
        argv = Path(f"/proc/{self.hub.pid()}/cmdline").read_bytes().split(b"\0")
        assert argv[0].decode().startswith(str(self.old)), argv
        assert self.revision() == revision
        assert not self.hub.paths.announcement.exists()


async def _use_the_hub(url: str) -> str:
    """Ann logs in, starts her server, saves a file, runs code, makes a token; her server
    stays running. Bob logs in."""
    async with SimUser(url, ANN, PASSWORD) as ann:
        await ann.login()
        await ann.start_server()
        await ann.open_server()
        await ann.upload("before-upgrade.txt", b"written on JupyterHub 5\n")
        assert (await ann.run_code("1+1")).strip() == "2"
        async with ann.session.post(url + f"hub/api/users/{ANN}/tokens",
                                    json={"note": "made on 5"},
                                    headers=ann._hub_headers()) as response:
            assert response.status == 201, await response.text()
            token = (await response.json())["token"]
    async with SimUser(url, BOB, PASSWORD) as bob:
        await bob.login()
    return token


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    require_root()
    remove_test_accounts()
    use_pip_cache()
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-upgrade-"))
    SESSION_WORKDIRS.append(base)
    os.chmod(base, 0o755)  # the accounts execute the installs' python
    hub = None
    failed = True
    try:
        wheel = build_wheel(base / "wheel")
        prefix = base / "opt"
        build_install(prefix, "old", wheel, OLD_JUPYTERHUB)
        installs.activate(prefix, "old")
        (base / "hub").mkdir(mode=0o755)
        config = pam_hub(base / "hub", f"{PREFIX}up",
                         f"users:\n  allowed: [{ANN}, {BOB}]\n  groups: {{{GROUP}: [{ANN}]}}\n"
                         f"snapshots: {{targets: [{base / 'backup'}]}}\n")
        applied = hk(prefix / "old" / "bin" / "hubkeeper", config, "apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        subprocess.run(["chpasswd"], input=f"{ANN}:{PASSWORD}\n{BOB}:{PASSWORD}\n", text=True,
                       check=True)
        loaded = load(config)
        paths = state_paths(loaded, True)
        hub = HubOfInstall(config, paths, f"http://127.0.0.1:{loaded.spec.hub.port}/")
        hub.start(prefix / "old")
        token = asyncio.run(_use_the_hub(hub.url))
        failed = False
        yield World(base, wheel, prefix, config, hub, token)
    finally:
        if hub is not None:
            hub.stop()
        subprocess.run(["userdel", "--remove", canary_account(f"{PREFIX}up")],
                       capture_output=True)
        remove_test_accounts()
        if failed or request.session.testsfailed:
            print(f"\nkept for diagnosis: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def test_the_plan_names_what_changes_and_changes_nothing(world: World) -> None:
    revision, pid = world.revision(), world.hub.pid()
    done = hk(world.old / "bin" / "hubkeeper", world.config, "upgrade", "--plan", "--json",
              *world.new_requirements())
    assert done.returncode == 0, done.stdout + done.stderr
    planned = json.loads(done.stdout)
    changes = {c["package"]: (c["old"], c["new"]) for c in planned["changes"]}
    assert changes["jupyterhub"] == (OLD_JUPYTERHUB, NEW_JUPYTERHUB)
    assert planned["schema_may_change"] and planned["database_revision"]
    # read from 6.1.1's wheel; the upgrade test below finds the database at this revision
    assert re.fullmatch(r"[0-9a-f]{12}", planned["database_head"] or ""), planned
    assert planned["database_head"] != planned["database_revision"]
    assert planned["hub_running"] and planned["servers_running"] == 1
    assert planned["servers_restart"]
    assert not (world.prefix / planned["target"]).exists()
    assert world.hub.pid() == pid
    assert not world.hub.paths.upgrade_record.exists()
    world.assert_old_serving(revision)


def test_a_requirement_that_cannot_install_leaves_the_hub_as_it_was(world: World) -> None:
    revision, pid = world.revision(), world.hub.pid()
    done = world.upgrade("--to", str(world.wheel), "--to", "jupyterhub==5.5.4",
                         "--to", f"{PREFIX}-no-such-package==1.0", "--name", "unresolvable")
    assert done.returncode == 1
    assert "pip cannot resolve" in done.stderr + done.stdout
    assert world.hub.pid() == pid  # never stopped
    assert not world.hub.paths.upgrade_record.exists()
    world.assert_old_serving(revision)


# A broken release, built once: its hub does not start while `break-hub` lies beside
# hub.yaml; without it the hub starts, but no kernel runs code (ipykernel_launcher is
# shadowed by one that exits), so the canary cannot run `1+1`.
BROKEN_HUB_CONFIG = """\
import os
if os.path.exists(os.path.join(os.path.dirname(os.environ["HUBKEEPER_CONFIG"]), "break-hub")):
    raise SystemExit("this release cannot start a hub")
from hubkeeper.hub.launch import config_for_this_process
c = get_config()  # noqa: F821
c.merge(config_for_this_process())
"""
BROKEN_SINGLEUSER = """\
import os, sys
os.environ["PYTHONPATH"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nokernel")
sys.modules.setdefault("rfc3987_syntax", None)
sys.argv[0] = "jupyterhub-singleuser"
import runpy
runpy.run_module("jupyterhub.singleuser", run_name="__main__", alter_sys=True)
"""


def test_a_release_whose_hub_does_not_start_is_rolled_back(world: World) -> None:
    revision = world.revision()
    (world.config.parent / "break-hub").touch()
    broken = broken_wheel(world.base / "broken", {
        "hub/jupyterhub_config.py": BROKEN_HUB_CONFIG,
        "proc/singleuser.py": BROKEN_SINGLEUSER,
        "proc/nokernel/ipykernel_launcher.py": "raise SystemExit(3)\n"})
    done = world.upgrade(*world.new_requirements(broken), "--name", "broken")
    (world.config.parent / "break-hub").unlink()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED at step start" in done.stdout, done.stdout
    assert "everything was put back" in done.stdout
    record = json.loads(world.hub.paths.upgrade_record.read_text())
    assert record["state"] == "rolled-back" and record["error"]["step"] == "start"
    assert record["database"]["to_revision"] != record["database"]["from_revision"]
    assert "the old one back, byte for byte" in done.stdout
    world.assert_put_back()
    world.assert_old_serving(revision)


def test_a_release_whose_canary_cannot_run_code_is_rolled_back(world: World) -> None:
    revision = world.revision()
    done = world.upgrade("--name", "broken", *world.new_requirements(
        next((world.base / "broken" / "wheel").glob("*.whl"))))  # built: reused
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED at step canary: canary, running 1+1 in a kernel" in done.stdout, done.stdout
    assert "the hub answers on broken" in done.stdout  # it started, and served no code
    world.assert_put_back()
    world.assert_old_serving(revision)
    installs.remove(world.prefix, "broken")


def _kill_at(world: World, step: str) -> None:
    """Run `upgrade` and SIGKILL it as soon as its record says `step` began."""
    record = world.hub.paths.upgrade_record
    before = record.read_text() if record.exists() else ""
    proc = subprocess.Popen(
        [str(world.prefix / "current" / "bin" / "hubkeeper"), "--config", str(world.config),
         "upgrade", "--grace", "1", *world.new_requirements(), "--name", NEW],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env(),
        cwd=world.config.parent)
    end = time.monotonic() + 900
    while time.monotonic() < end and proc.poll() is None:
        text = record.read_text() if record.exists() else ""
        if text != before and json.loads(text).get("step") == step:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert proc.wait() == -signal.SIGKILL, f"upgrade ended before step {step}"


def test_kill_9_mid_upgrade_then_rollback_or_upgrade_gives_a_hub_that_starts(
        world: World) -> None:
    revision = world.revision()
    _kill_at(world, "database")  # the hub is stopped; the copy may be half upgraded
    assert not world.hub.answers()
    done = hk(world.old / "bin" / "hubkeeper", world.config, "rollback")
    assert done.returncode == 0, done.stdout + done.stderr
    world.assert_old_serving(revision)

    _kill_at(world, "start")  # the new install is current, the new database in place
    done = world.upgrade()  # finishes the upgrade the record says did not finish
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finishing the upgrade" in done.stderr
    assert world.current() == NEW and world.hub.version() == NEW_JUPYTERHUB

    done = hk(world.prefix / "current" / "bin" / "hubkeeper", world.config, "rollback")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the old one back, byte for byte" in done.stdout
    world.assert_put_back()
    world.assert_old_serving(revision)


def test_a_jupyterhub_5_hub_upgrades_to_6_with_one_command(world: World) -> None:
    db = world.hub.paths.database
    old_revision = hubdb.revision(db)
    done = world.upgrade(*world.new_requirements(), "--name", NEW)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"upgraded {PREFIX}up to {NEW}" in done.stdout
    assert world.current() == NEW and world.hub.version() == NEW_JUPYTERHUB
    assert hubdb.revision(db) == hubdb.head_revision(world.prefix / NEW) != old_revision
    record = json.loads(world.hub.paths.upgrade_record.read_text())
    assert record["state"] == "done" and record["canary"]["result"] == "2"
    assert record["snapshot"]  # the snapshot machinery ran first
    kept = Path(record["database"]["kept"])  # the old database, byte for byte, for rollback
    assert hubdb.sha256(kept) == record["database"]["sha256"]
    assert hubdb.revision(kept) == old_revision
    assert not world.hub.paths.announcement.exists()

    async def afterwards() -> None:
        async with SimUser(world.hub.url, ANN, PASSWORD) as ann:
            await ann.login()  # her password, through PAM, on JupyterHub 6
            user = await ann.model()
            assert GROUP in user["groups"]
            await ann.start_server()
            await ann.open_server()
            assert (await ann.run_code("open('before-upgrade.txt').read()")).strip() == \
                repr("written on JupyterHub 5\n")
        async with SimUser(world.hub.url, BOB, PASSWORD) as bob:
            await bob.login()

    asyncio.run(afterwards())
    request = urllib.request.Request(world.hub.url + "hub/api/user",
                                     headers={"Authorization": f"token {world.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # the token made on 5
        assert json.loads(response.read())["name"] == ANN
