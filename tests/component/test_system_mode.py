"""System mode as root: hub users are real Linux accounts (made and journaled by `hubkeeper
apply`), logged in with PAM, servers run under their uids, homes are private."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest

from hubkeeper.config import load
from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import apply_accounts, write_config
from tests.support.procs import server_pids, uid_of
from tests.support.simuser import SimUser, run_once

pytestmark = [pytest.mark.component, pytest.mark.root]

PASSWORD = "Correct-Horse-7"
ANN, BOB = f"{TEST_ACCOUNT_PREFIX}1", f"{TEST_ACCOUNT_PREFIX}2"


async def run_as(url: str, name: str, code: str) -> str:
    return await run_once(url, name, PASSWORD, code)


def test_servers_run_as_the_users_accounts_with_private_homes(workdir: Path, hubs,
                                                              clean_accounts) -> None:
    ann, bob = ANN, BOB
    config = write_config(workdir, mode="system", auth="pam", admins=(), allowed=(ann, bob))
    apply_accounts(config, PASSWORD, (ann, bob))
    subprocess.run(["rm", "-rf", "--", pwd.getpwnam(ann).pw_dir], check=True)  # home lost
    os.chmod(f"/home/{bob}", 0o755)  # an existing home others can read: reported, not changed
    hub = hubs.start(config)
    api_port = load(config).spec.hub.api_port

    code = "import os; open('mine.txt', 'w').write('x'); (os.getuid(), os.getcwd())"
    for name in (ann, bob):
        account = pwd.getpwnam(name)
        result = asyncio.run(run_as(hub.url, name, code))
        assert result == repr((account.pw_uid, account.pw_dir))
        mine = Path(account.pw_dir) / "mine.txt"
        assert mine.stat().st_uid == account.pw_uid

    servers = server_pids(api_port)
    assert sorted(servers.values()) == [ann, bob]
    for pid, name in servers.items():
        assert uid_of(pid) == pwd.getpwnam(name).pw_uid  # the real uid, read from /proc

    # ann had no home: hubkeeper created it private and hers.
    home = Path(pwd.getpwnam(ann).pw_dir)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert home.stat().st_uid == pwd.getpwnam(ann).pw_uid
    # bob's existing 0755 home was not touched, but the log says how to fix it.
    assert stat.S_IMODE(Path(f"/home/{bob}").stat().st_mode) == 0o755
    assert f"{bob}: home /home/{bob} has mode 755, so other users can read it" in hub.log()


def test_ann_cannot_read_a_private_home(workdir: Path, hubs, clean_accounts) -> None:
    ann, bob = ANN, BOB
    config = write_config(workdir, mode="system", auth="pam", admins=(), allowed=(ann, bob))
    apply_accounts(config, PASSWORD, (ann, bob))
    hub = hubs.start(config)
    asyncio.run(run_as(hub.url, bob, "open('secret.txt', 'w').write('s')"))
    probe = (f"import os\ntry:\n    os.listdir('/home/{bob}')\n    r = 'readable'\n"
             "except PermissionError:\n    r = 'denied'\nr")
    assert asyncio.run(run_as(hub.url, ann, probe)) == "'denied'"


def test_wrong_pam_password_is_refused(workdir: Path, hubs, clean_accounts) -> None:
    ann = ANN
    config = write_config(workdir, mode="system", auth="pam", admins=(), allowed=(ann,))
    apply_accounts(config, PASSWORD, (ann,))
    hub = hubs.start(config)

    async def attempt() -> None:
        async with SimUser(hub.url, ann, "wrong-password") as user:
            await user.login()

    from tests.support.simuser import SimUserError
    with pytest.raises(SimUserError, match="login refused"):
        asyncio.run(attempt())


def test_missing_account_is_an_error_before_anything_changes(workdir: Path,
                                                             clean_accounts) -> None:
    from tests.support.hubproc import HUBKEEPER

    config = write_config(workdir, mode="system", auth="pam", admins=(),
                          allowed=(f"{TEST_ACCOUNT_PREFIX}nobody",))
    result = subprocess.run([HUBKEEPER, "--config", str(config), "up"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert (f"{config}:13:13: users.allowed[0]: '{TEST_ACCOUNT_PREFIX}nobody' has no Linux account"
            in result.stderr)
    assert not (workdir / "state").exists()


def test_account_prefix_logs_in_the_prefixed_account(workdir: Path, hubs,
                                                     clean_accounts) -> None:
    """users.account_prefix: hub user 'ann' is Linux account '<prefix>p-ann' (PAM and uid)."""
    account = f"{TEST_ACCOUNT_PREFIX}p-ann"
    config = write_config(workdir, mode="system", auth="pam", admins=(), allowed=("ann",))
    config.write_text(config.read_text().replace(
        "users:\n", f"users:\n  account_prefix: {TEST_ACCOUNT_PREFIX}p-\n"))
    apply_accounts(config, PASSWORD, (account,))
    hub = hubs.start(config)
    uid = pwd.getpwnam(account).pw_uid
    assert asyncio.run(run_as(hub.url, "ann", "import os; os.getuid()")) == str(uid)

    async def wrong() -> None:
        async with SimUser(hub.url, "ann", "not-" + PASSWORD) as user:
            await user.login()

    from tests.support.simuser import SimUserError
    with pytest.raises(SimUserError, match="login refused"):
        asyncio.run(wrong())
