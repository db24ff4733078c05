"""`hubkeeper users password NAME`: a real shadow hash changed by chpasswd, PAM login through
a real hub with the new password (and not the old one); native: the running hub's
nativeauthenticator changes the sign-up password."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.component.test_auth_native_hub import _invite_codes, _log_in, _sign_up
from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, apply_accounts, hk, pam_hub, write_config
from tests.support.simuser import SimUser, SimUserError

pytestmark = [pytest.mark.component]

ANN, WS1 = f"{P}pwann", f"{P}pwws1"
OLD = "Old-password-2026"


def shadow_field(account: str) -> str:
    for line in Path("/etc/shadow").read_text().splitlines():
        if line.startswith(f"{account}:"):
            return line.split(":")[1]
    raise AssertionError(f"{account} not in /etc/shadow")


def password_in(path: Path, user: str) -> str:
    assert (path.stat().st_mode & 0o777) == 0o600
    with open(path, newline="") as handle:
        (row,) = [row for row in csv.DictReader(handle) if row["username"] == user]
    return row["password"]


async def _login(url: str, name: str, password: str) -> None:
    async with SimUser(url, name, password) as user:
        await user.login()


@pytest.mark.root
def test_pam_password_changes_the_shadow_hash_and_logs_in(workdir: Path, clean_accounts,
                                                          hubs) -> None:
    config = pam_hub(workdir, f"{P}-pw", f"users:\n  allowed: [{ANN}, {WS1}]\n"
                     f"  locked: [{WS1}]\n")
    apply_accounts(config, OLD, (ANN,))
    before = shadow_field(ANN)
    hub = hubs.start(config)
    asyncio.run(_login(hub.url, ANN, OLD))

    done = hk(config, "users", "password", ANN)  # stdout is a pipe: the password not shown
    assert done.returncode == 0, done.stdout + done.stderr
    credentials = Path(done.stdout.split(" written to ")[1].split(" (mode 0600)")[0])
    new = password_in(credentials, ANN)
    assert new not in done.stdout and "password:" not in done.stdout
    after = shadow_field(ANN)
    assert after != before and after.startswith("$y$")  # yescrypt, hashed by chpasswd
    journal = json.loads((hub.state / "journal.json").read_text())
    assert journal["accounts"][ANN]["password_set"] is True

    asyncio.run(_login(hub.url, ANN, new))  # PAM, through the hub's login form
    with pytest.raises(SimUserError, match="login refused"):
        asyncio.run(_login(hub.url, ANN, OLD))

    # on a terminal it is shown, once
    leader, follower = os.openpty()
    try:
        shown = subprocess.run([HUBKEEPER, "--config", str(config), "users", "password", ANN],
                               stdout=follower, stderr=subprocess.PIPE, timeout=300)
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
    assert shown.returncode == 0, shown.stderr
    text = output.decode()
    newest = Path(text.split(" written to ")[1].split(" (mode 0600)")[0])
    assert f"password: {password_in(newest, ANN)}" in text
    asyncio.run(_login(hub.url, ANN, password_in(newest, ANN)))

    # a locked user, an unknown one: refused, located, nothing changed
    locked = hk(config, "users", "password", WS1)
    assert locked.returncode == 2
    assert f"{config}:6:" in locked.stderr and f"'{WS1}' is locked" in locked.stderr
    unknown = hk(config, "users", "password", f"{P}nobody")
    assert unknown.returncode == 2
    assert f"command line: NAME: '{P}nobody' is not on the roster" in unknown.stderr
    assert shadow_field(ANN) != after  # only the two changes above
    assert json.loads(hk(config, "users", "password", ANN, "--json").stdout).keys() == {
        "account", "config", "file", "kind", "user"}  # never the password in JSON


def test_native_password_reset_while_the_hub_is_stopped(workdir: Path, hubs) -> None:
    config = write_config(workdir, auth="native", admins=("prof",), allowed=("ann",))
    applied = hk(config, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    codes = _invite_codes(workdir)
    hub = hubs.start(config)
    old = "correct horse battery"
    assert "The signup was successful" in _sign_up(hub.url, "ann", old, codes["ann"])
    running = hk(config, "users", "password", "ann")
    assert running.returncode == 1 and "is running: a native password" in running.stderr
    assert "/hub/change-password/ann" in running.stderr
    hub.stop()
    early = hk(config, "users", "password", "prof")
    assert early.returncode == 1 and "'prof' has not signed up yet" in early.stderr
    done = hk(config, "users", "password", "ann")
    assert done.returncode == 0, done.stdout + done.stderr
    credentials = Path(done.stdout.split(" written to ")[1].split(" (mode 0600)")[0])
    new = password_in(credentials, "ann")
    hub = hubs.start(config)
    _, page = _log_in(hub.url, "ann", new)
    assert page.status_code == 302, page.text[:300]
    _, page = _log_in(hub.url, "ann", old)
    assert page.status_code != 302
