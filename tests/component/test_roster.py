"""A roster becomes real accounts, groups and hub users: `hubkeeper apply`, as root."""

from __future__ import annotations

import asyncio
import csv
import grp
import json
import os
import pwd
import random
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from hubkeeper.config import load
from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, free_ports
from tests.support.procs import server_pids
from tests.support.simuser import SimUserError, run_once

pytestmark = [pytest.mark.component, pytest.mark.root]

ETC = [Path("/etc") / name for name in ("passwd", "group", "shadow", "gshadow")]
A01, A02, A03 = f"{P}01", f"{P}02", f"{P}03"
PROF, ST, TAS = f"{P}prof", f"{P}st", f"{P}tas"


def hubkeeper(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout)


def write_csv(workdir: Path, names: list[str], tas: tuple[str, ...] = ()) -> None:
    with open(workdir / "class.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["username", "groups", "name", "email"])
        for name in names:
            groups = f"{TAS};{ST}" if name in tas else ST
            writer.writerow([name, groups, f"Student {name[-2:]}", f"{name}@example.org"])


def write_roster(workdir: Path, names: list[str], *, tas: tuple[str, ...] = (),
                 extra: str = "") -> Path:
    write_csv(workdir, names, tas)
    port, api_port, proxy_port = free_ports(3)
    config = workdir / "hub.yaml"
    config.write_text(
        f"hub: {{name: roster, port: {port}, api_port: {api_port}, state_dir: state}}\n"
        f"proxy: {{api_port: {proxy_port}}}\n"
        "auth: {kind: pam}\n"
        "users:\n"
        f"  admins: [{PROF}]\n"
        "  roster: {csv: class.csv}\n" + extra)
    return config


def credentials(workdir: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((workdir / "state" / "credentials").glob("*.csv")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with open(path) as handle:
            found.update({row["username"]: row["password"] for row in csv.DictReader(handle)})
    return found


def hub_api(config: Path, path: str):
    import urllib.request

    spec = load(config).spec
    token = (config.parent / "state" / "secrets" / "api-token").read_text().strip()
    request = urllib.request.Request(f"http://127.0.0.1:{spec.hub.port}/hub/api{path}",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_thirty_users_from_a_roster(workdir: Path, hubs, clean_accounts) -> None:
    names = [f"{P}{n:02d}" for n in range(1, 31)]
    config = write_roster(workdir, names, tas=(A01, A02))
    applied = hubkeeper(config, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "applied" in applied.stdout

    for name in [*names, PROF]:
        account = pwd.getpwnam(name)
        home = Path(account.pw_dir)
        info = home.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, account.pw_uid), name
    assert set(grp.getgrnam(ST).gr_mem) == set(names)
    assert set(grp.getgrnam(TAS).gr_mem) == {A01, A02}
    passwords = credentials(workdir)
    assert set(passwords) == {*names, PROF}
    shadow = {line.split(":")[0]: line.split(":")[1]
              for line in Path("/etc/shadow").read_text().splitlines()}
    for name in names:
        assert shadow[name].startswith("$") and passwords[name] not in shadow[name]  # hashed

    hub = hubs.start(config)
    users = {user["name"]: user for user in hub_api(config, "/users")}
    assert set(users) == {*names, PROF}
    assert [name for name, user in users.items() if user["admin"]] == [PROF]
    groups = {group["name"]: set(group["users"]) for group in hub_api(config, "/groups")}
    assert groups == {ST: set(names), TAS: {A01, A02}}

    # A generated password logs in through PAM and the login form; A cannot read B's home.
    code = (f"import os\ntry:\n    os.listdir('/home/{A02}')\n    r = 'readable'\n"
            "except PermissionError:\n    r = 'denied'\n(os.getuid(), r)")
    result = asyncio.run(run_once(hub.url, A01, passwords[A01], code))
    assert result == repr((pwd.getpwnam(A01).pw_uid, "denied"))

    # Idempotent: nothing to do, and not a byte or an mtime in /etc changes.
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in ETC}
    again = hubkeeper(config, "apply", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["actions"] == []
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in ETC} == before


def test_roster_edits_lock_and_unlock_while_the_hub_runs(workdir: Path, hubs,
                                                          clean_accounts) -> None:
    names = [A01, A02, A03]
    config = write_roster(workdir, names)
    assert hubkeeper(config, "apply").returncode == 0
    passwords = credentials(workdir)
    hub = hubs.start(config)
    api_port = load(config).spec.hub.api_port
    assert asyncio.run(run_once(hub.url, A02, passwords[A02],
                                "open('work.txt', 'w').write('mine')")) == "4"
    assert A02 in server_pids(api_port).values()
    uid = pwd.getpwnam(A02).pw_uid

    # Removed from the roster: locked, server stopped, out of the hub; the home stays.
    write_csv(workdir, [A01, A03])
    removed = hubkeeper(config, "apply")
    assert removed.returncode == 0, removed.stderr
    for expected in (f"lock {A02}", f"hub-stop-server {A02}", f"hub-unregister {A02}"):
        assert expected in removed.stdout
    assert A02 not in server_pids(api_port).values()
    assert Path("/etc/shadow").read_text().split(f"{A02}:", 1)[1].startswith("!")
    assert Path(f"/home/{A02}/work.txt").read_text() == "mine"
    assert A02 not in {user["name"] for user in hub_api(config, "/users")}
    with pytest.raises(SimUserError, match="login refused"):
        asyncio.run(run_once(hub.url, A02, passwords[A02], "1"))

    # Back on the roster: unlocked, the same uid, in the hub again, the file is there.
    write_csv(workdir, names)
    readded = hubkeeper(config, "apply")
    assert readded.returncode == 0, readded.stderr
    assert f"unlock {A02}" in readded.stdout
    assert pwd.getpwnam(A02).pw_uid == uid
    assert asyncio.run(run_once(hub.url, A02, passwords[A02],
                                "open('work.txt').read()")) == "'mine'"
    assert json.loads(hubkeeper(config, "plan", "--json").stdout)["actions"] == []


def test_killed_apply_converges(workdir: Path, clean_accounts) -> None:
    """kill -9 an apply of 200 users part-way, several times: the journal always parses, and
    the next apply finishes the job with every account recorded as ours."""
    names = [f"{P}{n:03d}" for n in range(1, 201)]
    config = write_roster(workdir, names)
    journal = workdir / "state" / "journal.json"
    rng = random.Random(7)
    for target in (40, 100, 160):  # kill when this many accounts exist, give or take
        proc = subprocess.Popen([HUBKEEPER, "--config", str(config), "apply"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 120
        while _count() < target + rng.randrange(5) and proc.poll() is None \
                and time.monotonic() < end:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "apply finished before it was killed"
        body = json.loads(journal.read_text())  # never torn
        assert body["schema"] == 1
    made = sum(1 for name in names if _exists(name))
    assert 0 < made < len(names), f"the kills should land part-way ({made} made)"
    final = hubkeeper(config, "apply")
    assert final.returncode == 0, final.stderr
    body = json.loads(journal.read_text())
    assert {name for name, record in body["accounts"].items()
            if record["state"] == "created" and record["password_set"]} >= set(names)
    assert all(_exists(name) for name in names)
    assert json.loads(hubkeeper(config, "plan", "--json").stdout)["actions"] == []


def _count() -> int:
    return Path("/etc/passwd").read_text().count(f"\n{P}")


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_existing_accounts_and_groups_are_not_taken_over(workdir: Path, accounts) -> None:
    accounts(f"{P}mine")  # made outside hubkeeper
    subprocess.run(["groupadd", f"{P}grp"], check=True)
    config = write_roster(workdir, [f"{P}mine", A01],
                          extra=f"  groups: {{{P}grp: [{A01}]}}\n")
    before = {path: path.read_bytes() for path in ETC}
    result = hubkeeper(config, "apply")
    assert result.returncode == 2
    assert (f"{workdir / 'class.csv'}:2: username: '{P}mine' is an existing account"
            in result.stderr)
    assert f"group '{P}grp' already exists on this machine" in result.stderr
    assert {path: path.read_bytes() for path in ETC} == before
    assert not os.path.exists(f"/home/{A01}")
