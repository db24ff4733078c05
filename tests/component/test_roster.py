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
from tests.support.hubproc import HUBKEEPER, free_ports
from tests.support.procs import server_pids
from tests.support.simuser import SimUserError, run_once

pytestmark = [pytest.mark.component, pytest.mark.root]

ETC = [Path("/etc") / name for name in ("passwd", "group", "shadow", "gshadow")]


def hubkeeper(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout)


def write_csv(workdir: Path, names: list[str], tas: tuple[str, ...] = ()) -> None:
    with open(workdir / "class.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["username", "groups", "name", "email"])
        for name in names:
            groups = "hktesttas;hktestst" if name in tas else "hktestst"
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
        "  admins: [hktestprof]\n"
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
    token = (config.parent / "state" / "secrets" / "service-token").read_text().strip()
    request = urllib.request.Request(f"http://127.0.0.1:{spec.hub.port}/hub/api{path}",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_thirty_users_from_a_roster(workdir: Path, hubs, clean_accounts) -> None:
    names = [f"hktest{n:02d}" for n in range(1, 31)]
    config = write_roster(workdir, names, tas=("hktest01", "hktest02"))
    applied = hubkeeper(config, "apply")
    assert applied.returncode == 0, applied.stderr
    assert "applied" in applied.stdout

    for name in [*names, "hktestprof"]:
        account = pwd.getpwnam(name)
        home = Path(account.pw_dir)
        info = home.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, account.pw_uid), name
    assert set(grp.getgrnam("hktestst").gr_mem) == set(names)
    assert set(grp.getgrnam("hktesttas").gr_mem) == {"hktest01", "hktest02"}
    passwords = credentials(workdir)
    assert set(passwords) == {*names, "hktestprof"}
    shadow = {line.split(":")[0]: line.split(":")[1]
              for line in Path("/etc/shadow").read_text().splitlines()}
    for name in names:
        assert shadow[name].startswith("$") and passwords[name] not in shadow[name]  # hashed

    hub = hubs.start(config)
    users = {user["name"]: user for user in hub_api(config, "/users")}
    assert set(users) == {*names, "hktestprof"}
    assert [name for name, user in users.items() if user["admin"]] == ["hktestprof"]
    groups = {group["name"]: set(group["users"]) for group in hub_api(config, "/groups")}
    assert groups == {"hktestst": set(names), "hktesttas": {"hktest01", "hktest02"}}

    # A generated password logs in through PAM and the login form; A cannot read B's home.
    code = ("import os\ntry:\n    os.listdir('/home/hktest02')\n    r = 'readable'\n"
            "except PermissionError:\n    r = 'denied'\n(os.getuid(), r)")
    result = asyncio.run(run_once(hub.url, "hktest01", passwords["hktest01"], code))
    assert result == repr((pwd.getpwnam("hktest01").pw_uid, "denied"))

    # Idempotent: nothing to do, and not a byte or an mtime in /etc changes.
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in ETC}
    again = hubkeeper(config, "apply", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["actions"] == []
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in ETC} == before


def test_roster_edits_lock_and_unlock_while_the_hub_runs(workdir: Path, hubs,
                                                          clean_accounts) -> None:
    names = ["hktest01", "hktest02", "hktest03"]
    config = write_roster(workdir, names)
    assert hubkeeper(config, "apply").returncode == 0
    passwords = credentials(workdir)
    hub = hubs.start(config)
    api_port = load(config).spec.hub.api_port
    assert asyncio.run(run_once(hub.url, "hktest02", passwords["hktest02"],
                                "open('work.txt', 'w').write('mine')")) == "4"
    assert "hktest02" in server_pids(api_port).values()
    uid = pwd.getpwnam("hktest02").pw_uid

    # Removed from the roster: locked, server stopped, out of the hub; the home stays.
    write_csv(workdir, ["hktest01", "hktest03"])
    removed = hubkeeper(config, "apply")
    assert removed.returncode == 0, removed.stderr
    for expected in ("lock hktest02", "hub-stop-server hktest02", "hub-unregister hktest02"):
        assert expected in removed.stdout
    assert "hktest02" not in server_pids(api_port).values()
    assert Path("/etc/shadow").read_text().split("hktest02:", 1)[1].startswith("!")
    assert Path("/home/hktest02/work.txt").read_text() == "mine"
    assert "hktest02" not in {user["name"] for user in hub_api(config, "/users")}
    with pytest.raises(SimUserError, match="login refused"):
        asyncio.run(run_once(hub.url, "hktest02", passwords["hktest02"], "1"))

    # Back on the roster: unlocked, the same uid, in the hub again, the file is there.
    write_csv(workdir, names)
    readded = hubkeeper(config, "apply")
    assert readded.returncode == 0, readded.stderr
    assert "unlock hktest02" in readded.stdout
    assert pwd.getpwnam("hktest02").pw_uid == uid
    assert asyncio.run(run_once(hub.url, "hktest02", passwords["hktest02"],
                                "open('work.txt').read()")) == "'mine'"
    assert json.loads(hubkeeper(config, "plan", "--json").stdout)["actions"] == []


def test_killed_apply_converges(workdir: Path, clean_accounts) -> None:
    """kill -9 an apply of 200 users part-way, several times: the journal always parses, and
    the next apply finishes the job with every account recorded as ours."""
    names = [f"hktest{n:03d}" for n in range(1, 201)]
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
    return Path("/etc/passwd").read_text().count("\nhktest")


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_existing_accounts_and_groups_are_not_taken_over(workdir: Path, accounts) -> None:
    accounts("hktestmine")  # made outside hubkeeper
    subprocess.run(["groupadd", "hktestgrp"], check=True)
    config = write_roster(workdir, ["hktestmine", "hktest01"],
                          extra="  groups: {hktestgrp: [hktest01]}\n")
    before = {path: path.read_bytes() for path in ETC}
    result = hubkeeper(config, "apply")
    assert result.returncode == 2
    assert (f"{workdir / 'class.csv'}:2: username: 'hktestmine' is an existing account"
            in result.stderr)
    assert "group 'hktestgrp' already exists on this machine" in result.stderr
    assert {path: path.read_bytes() for path in ETC} == before
    assert not os.path.exists("/home/hktest01")
