"""`hubkeeper users remove NAME` with real Linux accounts, a real hub and real archives.

The home is archived and verified before anything is removed; a removal killed with kill -9
(once the journal shows the account "removing") is finished by running it again; an account
hubkeeper did not create is never touched. Every name comes from TEST_ACCOUNT_PREFIX.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, apply_accounts, hk, ok, pam_hub, write_config
from tests.support.simuser import SimUser, SimUserError

pytestmark = [pytest.mark.component, pytest.mark.root]

ANN, BOB, WS1, WS2, WS3 = f"{P}ann", f"{P}bob", f"{P}ws1", f"{P}ws2", f"{P}ws3"
GROUP = f"{P}lab"
PASSWORD = "Remove-me-2026"
USERS = f"""\
users:
  admins: [{BOB}]   # the TA
  groups: {{{GROUP}: [{ANN}, {WS2}]}}
  roster:
    entries:
      - {{username: {ANN}, name: Ann A}}   # keep this comment
    ranges: ["{P}ws{{1..3}}"]
archive: {{dir: archives}}
"""


def journal(config: Path) -> dict:
    return json.loads((config.parent / "state" / "journal.json").read_text())


def exists(account: str) -> bool:
    try:
        pwd.getpwnam(account)
    except KeyError:
        return False
    return True


def make_hub(workdir: Path, hubs) -> Path:
    """A pam hub with its accounts made by `apply`, that ran once (it has a database)."""
    config = pam_hub(workdir, f"{P}-rm", USERS)
    apply_accounts(config, PASSWORD, (ANN, WS2))
    hubs.start(config).stop()
    return config


def nothing_removed(config: Path, text: str, user: str) -> None:
    assert config.read_text() == text
    assert exists(user) and Path(f"/home/{user}").is_dir()
    assert journal(config)["accounts"][user]["state"] == "created"
    assert not (config.parent / "state" / "removals.json").exists()


def test_remove_archives_then_removes_a_user_with_a_running_server(workdir: Path,
                                                                  clean_accounts,
                                                                  hubs) -> None:
    config = make_hub(workdir, hubs)
    home = Path(f"/home/{ANN}")
    (home / "thesis.md").write_text("# chapter 1\n")
    hub = hubs.start(config)

    async def start() -> None:
        async with SimUser(hub.url, ANN, PASSWORD) as user:
            await user.login()
            await user.start_server()

    asyncio.run(start())
    uid = pwd.getpwnam(ANN).pw_uid
    text = config.read_text()

    shown = ok(hk(config, "users", "remove", ANN))
    assert f"archive {home} into {workdir}/archives/ and verify the archive" in shown.stdout
    assert f"hub.yaml: removed from users.groups.{GROUP}" in shown.stdout
    assert f"remove the account {ANN} (userdel)" in shown.stdout
    assert f"run `hubkeeper users remove {ANN} --yes`" in shown.stdout
    assert config.read_text() == text and exists(ANN)  # only shown
    assert not (workdir / "archives").exists()

    done = json.loads(ok(hk(config, "users", "remove", ANN, "--yes", "--json")).stdout)
    assert done["status"] == "removed", done
    assert "server stopped, hub user deleted" in done["steps"]
    archive = Path(done["archive"])
    assert archive.parent == workdir / "archives" and archive.name.startswith(f"{P}-rm-{ANN}-")
    # the account, its home, its processes and its journal record are gone; nobody else's
    assert not exists(ANN) and not os.path.lexists(home)
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit()
                and _uid(pid) == uid]
    assert ANN not in journal(config)["accounts"]
    assert {WS1, WS2, WS3, BOB} <= set(journal(config)["accounts"])
    assert all(exists(name) for name in (WS1, WS2, WS3, BOB))
    # hub.yaml: the entry and the group membership gone, comments and the rest kept
    edited = config.read_text()
    assert ANN not in edited
    assert "# the TA" in edited and f"{GROUP}: [{WS2}]" in edited
    # the hub forgot the user; `plan` is at rest
    token = (hub.state / "secrets" / "api-token").read_text().strip()
    assert _hub_status(hub.url, ANN, token) == 404
    assert json.loads(ok(hk(config, "plan", "--json")).stdout)["actions"] == []
    # the archive: the same format as `hubkeeper archive`, verified, recorded, exportable
    verified = ok(hk(config, "archive", "verify", str(archive)))
    assert "match MANIFEST.json" in verified.stdout
    manifest = json.loads((archive / "MANIFEST.json").read_text())
    assert manifest["kind"] == "hubkeeper-archive" and manifest["user"] == ANN
    assert set(manifest["users"]) == {ANN} and manifest["data"] == {}
    recorded = json.loads((hub.state / "archives.json").read_text())
    assert recorded[-1]["path"] == str(archive) and recorded[-1]["user"] == ANN
    zips = workdir / "zips"
    ok(hk(config, "export", ANN, "--from", str(archive), "--to", str(zips)))
    (zipped,) = zips.glob("*.zip")
    with zipfile.ZipFile(zipped) as opened:
        assert opened.read("thesis.md") == b"# chapter 1\n"
    removals = json.loads((hub.state / "removals.json").read_text())["removals"]
    assert [(r["user"], r["state"], r["archive"]) for r in removals] == [
        (ANN, "removed", str(archive))]
    # again: nothing left to remove, said clearly
    again = hk(config, "users", "remove", ANN, "--yes")
    assert again.returncode == 1 and f"{ANN!r} is not on the roster" in again.stderr


def hub_users(config: Path) -> set[str]:
    import sqlite3

    database = config.parent / "state" / "jupyterhub.sqlite"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return {name for (name,) in connection.execute("SELECT name FROM users")}
    finally:
        connection.close()


def _uid(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _hub_status(url: str, user: str, token: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{url}hub/api/users/{user}",
                                     headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_refused_when_the_archive_cannot_be_written(workdir: Path, clean_accounts,
                                                    hubs) -> None:
    config = make_hub(workdir, hubs)
    text = config.read_text()
    (Path(f"/home/{WS1}") / "data.bin").write_bytes(os.urandom(1 << 20))
    tiny = workdir / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs",
                              str(tiny)], capture_output=True, text=True)
    assert mounted.returncode == 0, mounted.stderr
    try:
        full = hk(config, "users", "remove", WS1, "--yes", "--to", str(tiny))
        assert full.returncode == 1, full.stdout + full.stderr
        assert "No space left on device" in full.stderr, full.stderr
        assert list(tiny.iterdir()) == []  # the partial archive is cleaned away
    finally:
        subprocess.run(["umount", str(tiny)], check=True)
    nothing_removed(config, text, WS1)
    nowhere = hk(config, "users", "remove", WS1, "--yes", "--to", str(workdir / "no" / "such"))
    assert nowhere.returncode == 1
    assert f"neither {workdir}/no/such nor {workdir}/no exists" in nowhere.stderr
    nothing_removed(config, text, WS1)


def test_refused_when_the_home_changes_while_it_is_archived(workdir: Path, clean_accounts,
                                                            hubs) -> None:
    """The archive does not hold the home as it is (the check retire makes): a process of
    the student keeps writing; nothing is removed, and the refusal says why."""
    config = make_hub(workdir, hubs)
    text = config.read_text()
    log = Path(f"/home/{WS2}/run.log")
    writer = subprocess.Popen(["runuser", "-u", WS2, "--", "/bin/bash", "-c",
                               f"while :; do echo step >> {log}; done"],
                              start_new_session=True)
    try:
        while not log.exists():
            time.sleep(0.01)
        refused = hk(config, "users", "remove", WS2, "--yes")
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "REFUSED: nothing was removed" in refused.stdout
    assert f"{WS2}'s home /home/{WS2} changed since the archive" in refused.stdout
    assert "run.log: size, mtime changed since the archive" in refused.stdout
    nothing_removed(config, text, WS2)
    # once nothing writes, it goes through
    ok(hk(config, "users", "remove", WS2, "--yes"))
    assert not exists(WS2)


def test_killed_midway_then_run_again_finishes(workdir: Path, clean_accounts, hubs) -> None:
    config = make_hub(workdir, hubs)
    home = Path(f"/home/{WS3}")
    for folder in range(40):
        (home / f"f{folder}").mkdir()
        for number in range(250):
            (home / f"f{folder}" / f"{number}.txt").write_text(f"{folder}/{number}\n")
    journal_path = config.parent / "state" / "journal.json"
    assert WS3 in hub_users(config)  # the hub's database has the user (it ran once)
    proc = subprocess.Popen([HUBKEEPER, "--config", str(config), "users", "remove", WS3,
                             "--yes", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    seen = False
    while proc.poll() is None:
        try:
            record = json.loads(journal_path.read_text())["accounts"].get(WS3)
        except ValueError:  # never torn (atomic rename), but be sure
            continue
        if record and record["state"] == "removing":
            os.kill(proc.pid, signal.SIGKILL)
            seen = True
            break
        time.sleep(0.001)
    proc.wait()
    assert seen, f"the removal ended before the journal showed 'removing': {proc.stderr}"
    assert proc.returncode == -signal.SIGKILL
    removals = json.loads((config.parent / "state" / "removals.json").read_text())
    (begun,) = removals["removals"]
    assert begun["state"] == "removing" and begun["archive"]
    assert journal(config)["accounts"][WS3]["state"] == "removing"

    shown = ok(hk(config, "users", "remove", WS3))
    assert f"finish the removal begun {begun['started']}" in shown.stdout
    finished = ok(hk(config, "users", "remove", WS3, "--yes"))
    assert "(an interrupted removal finished)" in finished.stdout
    assert not exists(WS3) and not os.path.lexists(home)
    assert WS3 not in journal(config)["accounts"]
    assert WS3 not in config.read_text().replace(f"{P}ws{{", "")
    (done,) = json.loads((config.parent / "state" / "removals.json").read_text())["removals"]
    assert done["state"] == "removed" and done["archive"] == begun["archive"]
    zips = workdir / "zips"
    ok(hk(config, "export", WS3, "--from", begun["archive"], "--to", str(zips)))
    (zipped,) = zips.glob("*.zip")
    with zipfile.ZipFile(zipped) as opened:
        assert opened.read("f39/249.txt") == b"39/249\n"
    assert all(exists(name) for name in (WS1, WS2, ANN, BOB))
    # the hub was not running: it still had the user; its next start unregisters them
    hub = hubs.start(config)
    hub.wait_logged("roster: 1 change(s) made in the hub")  # up's hub half of apply
    token = (hub.state / "secrets" / "api-token").read_text().strip()
    assert _hub_status(hub.url, WS3, token) == 404
    assert _hub_status(hub.url, WS2, token) == 200


def test_never_removes_an_account_hubkeeper_did_not_create(workdir: Path, accounts) -> None:
    other = accounts(f"{P}other", home=True)
    home = Path(f"/home/{other}")
    (home / "keep.txt").write_text("mine\n")
    config = pam_hub(workdir, f"{P}-rm", f"users:\n  allowed: [{other}]  # listed by mistake\n"
                     "archive: {dir: archives}\n")
    (workdir / "state").mkdir(mode=0o700)
    text = config.read_text()
    refused = hk(config, "users", "remove", other, "--yes")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{other!r} is an account hubkeeper did not create" in refused.stderr
    assert exists(other) and (home / "keep.txt").read_text() == "mine\n"
    assert config.read_text() == text
    assert not (workdir / "archives").exists()


def test_personal_mode_removes_the_users_folder(workdir: Path, hubs) -> None:
    config = write_config(workdir, name=f"{P}-pm", allowed=("ada", "bea"),
                          extra="archive: {dir: archives}\n")
    hub = hubs.start(config)

    async def start(name: str) -> None:
        async with SimUser(hub.url, name, hub.password) as user:
            await user.login()
            await user.start_server()

    asyncio.run(start("ada"))
    folder = hub.state / "users" / "ada"
    assert folder.is_dir()
    (folder / "work.py").write_text("print(1)\n")
    done = json.loads(ok(hk(config, "users", "remove", "ada", "--yes", "--json")).stdout)
    assert done["status"] == "removed" and done["mode"] == "personal"
    assert "server stopped, hub user deleted" in done["steps"]
    assert not folder.exists() and (hub.state / "users").is_dir()
    assert "ada" not in config.read_text() and "bea" in config.read_text()
    ok(hk(config, "export", "ada", "--from", done["archive"], "--to", str(workdir / "zips")))
    (zipped,) = (workdir / "zips").glob("*.zip")
    with zipfile.ZipFile(zipped) as opened:
        assert opened.read("work.py") == b"print(1)\n"

    async def login_again() -> None:
        async with SimUser(hub.url, "ada", hub.password) as user:
            await user.login()

    # deleting the hub user took the name out of the running hub's allowed users
    with pytest.raises(SimUserError, match="login refused"):
        asyncio.run(login_again())

