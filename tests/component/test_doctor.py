"""`hubkeeper doctor` on a real system-mode hub: real accounts made by `hubkeeper apply`, a
real shared folder and group folder with ACLs, a real hub started with `hubkeeper up`.

Every name is built from TEST_ACCOUNT_PREFIX (HK_TEST_PREFIX), so that runs side by side
with another prefix never see these accounts, folders or hubs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubkeeper.base.procs import alive, wait_until
from hubkeeper.config import load
from hubkeeper.host.running import orphan_proxy, running_hub
from hubkeeper.state.statedir import StatePaths
from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import hk, pam_hub

pytestmark = [pytest.mark.component, pytest.mark.root]

USERS = [f"{P}01", f"{P}02"]
GROUP = f"{P}tas"
DATA = Path(f"/srv/{P}-data")
PROJECTS = Path(f"/srv/{P}-projects")
FOLDER = PROJECTS / "lab"
CHECKS = ["hub", "state", "homes", "data", "journal", "disk", "tls", "service", "containers",
          "extra_config"]


@pytest.fixture
def workdir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A temporary directory named by the prefix, kept when the test failed."""
    path = Path(tempfile.mkdtemp(prefix=f"{P}-doctor-"))
    os.chmod(path, 0o755)
    yield path
    failed = any(getattr(request.node, f"rep_{when}", None) is not None
                 and getattr(request.node, f"rep_{when}").failed for when in ("setup", "call"))
    if failed:
        print(f"\nkept for diagnosis: {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def machine(accounts) -> Iterator:
    """Root, no account or folder of an earlier run; `accounts` (useradd by hand) to make
    accounts hubkeeper did not create. Everything is removed afterwards."""

    def remove() -> None:
        shutil.rmtree(DATA, ignore_errors=True)
        shutil.rmtree(PROJECTS, ignore_errors=True)
        for user in [*USERS, f"{P}03"]:  # homes of accounts removed with userdel in a test
            shutil.rmtree(f"/home/{user}", ignore_errors=True)

    remove()
    yield accounts
    remove()


def write_hub(workdir: Path, users: list[str] = USERS) -> Path:
    return pam_hub(
        workdir, f"{P}-doctor",
        f"users:\n  allowed: [{', '.join(users)}]\n  groups: {{{GROUP}: [{users[0]}]}}\n"
        "data:\n"
        "  min_free: 1M\n"
        f"  shared:\n    - {{path: {DATA}, link: data}}\n"
        f"  group_folders:\n    - {{path: {FOLDER}, group: {GROUP}}}\n")


def applied(workdir: Path) -> Path:
    config = write_hub(workdir)
    result = hk(config, "apply")
    assert result.returncode == 0, result.stdout + result.stderr
    return config


def doctor(config: Path, *args: str) -> tuple[int, dict]:
    result = hk(config, "doctor", "--json", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert body["exit_code"] == result.returncode
    return result.returncode, body


def found(body: dict, check: str | None = None, status: str | None = None,
          subject: str | None = None) -> list[dict]:
    return [f for f in body["findings"]
            if (check is None or f["check"] == check) and (status is None or f["status"] == status)
            and (subject is None or f["subject"] == subject)]


def no_quota(finding: dict) -> bool:
    """A fact of this machine, not of the hub: its kernel has no user quotas, so doctor says
    that one student can fill the homes' disk (test_clean_after_apply checks it)."""
    return finding["check"] == "disk" and "has no user quotas" in finding["explanation"]


def not_ok(body: dict) -> list[dict]:
    return [f for f in body["findings"] if f["status"] != "ok" and not no_quota(f)]


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def only_the_stopped_hub(body: dict) -> None:
    """The one thing a freshly applied hub has to say: it is not running (a warning)."""
    left = not_ok(body)
    assert [(f["check"], f["status"]) for f in left] == [("hub", "warning")], left
    assert "The hub is not running" in left[0]["explanation"]


def test_clean_after_apply_and_the_json_shape(workdir: Path, machine) -> None:
    config = applied(workdir)
    code, body = doctor(config)
    assert code == 0
    only_the_stopped_hub(body)
    assert [c["name"] for c in body["checks"]] == CHECKS
    assert body["mode"] == "system" and body["fixing"] is False and body["changes"] == []
    # the warnings: the hub is not running, and no user quotas on the homes' disk (this
    # machine's kernel has none: CONFIG_QUOTA is off)
    assert body["counts"] == {"ok": len(found(body, status="ok")), "warning": 2, "problem": 0}
    [quota] = found(body, "disk", "warning")
    assert "no user quotas, so one student can fill the disk" in quota["explanation"]
    for finding in body["findings"]:
        assert set(finding) == {"check", "status", "subject", "explanation", "fix"}
        assert finding["check"] in CHECKS
        assert finding["status"] in ("ok", "warning", "problem")
        assert finding["explanation"].endswith(".")
    # Each part was looked at, and found as apply made it.
    assert {f["subject"] for f in found(body, "homes", "ok")} == {f"/home/{u}" for u in USERS}
    assert {f["subject"] for f in found(body, "data", "ok")} == {str(DATA), str(FOLDER)}
    assert {f["subject"] for f in found(body, "journal", "ok")} == {*USERS, GROUP}
    assert found(body, "state", "ok", str(workdir / "state" / "journal.json"))
    assert found(body, "disk", "ok")

    text = hk(config, "doctor")
    assert text.returncode == 0
    assert "Users' homes" in text.stdout and "0 problems and 2 warnings found" in text.stdout


def test_a_home_made_0755_is_fixed_to_0700_and_nothing_inside_changes(workdir: Path,
                                                                     machine) -> None:
    config = applied(workdir)
    home = Path(f"/home/{USERS[0]}")
    os.chmod(home, 0o755)
    inside = home / "notes"
    inside.mkdir(mode=0o755)
    (inside / "a.txt").write_text("x")
    os.chmod(inside / "a.txt", 0o644)

    code, body = doctor(config)
    assert code == 1
    [problem] = not_ok(body)[1:]  # after the stopped hub's warning
    assert (problem["check"], problem["status"], problem["subject"]) == (
        "homes", "problem", str(home))
    assert f"chmod 0700 {home}" in problem["explanation"]
    assert problem["fix"] == {"command": f"chmod 0700 {home}", "before": "0755",
                              "after": "0700", "safe": True}
    assert mode(home) == 0o755, "doctor without --fix changes nothing"

    code, body = doctor(config, "--fix")
    assert code == 0
    assert body["changes"] == [{"check": "homes", "subject": str(home),
                                "command": f"chmod 0700 {home}", "before": "0755",
                                "after": "0700", "error": None}]
    only_the_stopped_hub(body)
    assert mode(home) == 0o700
    assert (mode(inside), mode(inside / "a.txt")) == (0o755, 0o644), "never recursive"
    text = hk(config, "doctor", "--fix")
    assert text.returncode == 0
    assert "nothing was safe to repair; nothing was changed" in text.stdout

    code, body = doctor(config)
    assert code == 0 and body["changes"] == []
    only_the_stopped_hub(body)


def test_an_account_hubkeeper_did_not_create_is_reported_and_never_touched(
        workdir: Path, machine) -> None:
    config = applied(workdir)
    stranger = machine(f"{P}03", home=True)  # useradd by hand: Debian makes the home 0755
    write_hub(workdir, [*USERS, stranger]).replace(config)
    home = Path(f"/home/{stranger}")

    def etc_lines() -> list[str]:
        return [line for name in ("passwd", "shadow", "group")
                for line in Path("/etc", name).read_text().splitlines()
                if line.startswith(f"{stranger}:")]

    before = (etc_lines(), os.lstat(home))
    assert mode(home) & 0o077, "the test needs a home others can read"

    code, body = doctor(config, "--fix")
    assert code == 1
    [reported] = found(body, "journal", "problem", stranger)
    assert "hubkeeper did not create it" in reported["explanation"]
    assert "put it back from a snapshot" in reported["explanation"]
    [home_note] = found(body, "homes", subject=str(home))
    assert home_note["status"] == "warning"
    assert home_note["fix"]["safe"] is False
    assert f"chmod 0700 {home}" in home_note["explanation"]
    assert body["changes"] == []
    after = (etc_lines(), os.lstat(home))
    assert after[0] == before[0]
    assert (after[1].st_mode, after[1].st_uid, after[1].st_gid, after[1].st_ino) == (
        before[1].st_mode, before[1].st_uid, before[1].st_gid, before[1].st_ino)


def test_a_journaled_account_removed_with_userdel_has_drifted(workdir: Path,
                                                              machine) -> None:
    config = applied(workdir)
    uid = int(subprocess.run(["id", "-u", USERS[1]], capture_output=True, text=True,
                             check=True).stdout)
    subprocess.run(["userdel", USERS[1]], check=True)

    code, body = doctor(config, "--fix")
    assert code == 1
    [drifted] = found(body, "journal", "problem", USERS[1])
    assert f"(uid {uid}), and it is gone" in drifted["explanation"]
    assert "`hubkeeper apply` creates it again" in drifted["explanation"]
    assert body["changes"] == []
    assert subprocess.run(["id", USERS[1]], capture_output=True).returncode != 0


def test_a_data_folder_made_0777_and_a_lost_acl_are_fixed(workdir: Path, machine) -> None:
    config = applied(workdir)
    dataset = DATA / "dataset.csv"
    dataset.write_text("a,b\n")
    os.chmod(dataset, 0o666)
    os.chmod(DATA, 0o777)
    subprocess.run(["setfacl", "-b", "--", str(FOLDER)], check=True)
    os.chmod(FOLDER, 0o2770)

    code, body = doctor(config)
    assert code == 1
    shared = found(body, "data", "problem", str(DATA))[0]
    assert "mode 0777, not 0755" in shared["explanation"]
    folder = found(body, "data", "problem", str(FOLDER))[0]
    assert "default:group::rwx" in folder["explanation"]

    code, body = doctor(config, "--fix")
    assert code == 0, not_ok(body)
    changes = {change["subject"]: change for change in body["changes"]}
    assert changes[str(DATA)]["command"] == f"chmod 0755 {DATA}"
    assert (changes[str(DATA)]["before"], changes[str(DATA)]["after"]) == (
        "root:root 0777", "root:root 0755")
    assert changes[str(FOLDER)]["command"].startswith("setfacl -m ")
    assert mode(DATA) == 0o755 and mode(dataset) == 0o666, "the folder itself only"
    acl = subprocess.run(["getfacl", "--omit-header", "--absolute-names", str(FOLDER)],
                         capture_output=True, text=True, check=True).stdout
    assert "default:group::rwx" in acl and "default:other::---" in acl
    only_the_stopped_hub(body)


def test_a_running_hub_then_a_killed_one_and_a_secret_made_0644(workdir: Path, machine,
                                                                 hubs) -> None:
    config = applied(workdir)
    hub = hubs.start(config)
    code, body = doctor(config)
    assert code == 0, not_ok(body)
    assert not_ok(body) == []
    reached = [f["explanation"] for f in found(body, "hub", "ok")]
    assert len(reached) == 3, reached
    assert "answers at http://127.0.0.1:" in reached[0] and "JupyterHub " in reached[0]
    assert "The proxy passes users' requests" in reached[1]
    assert "The proxy's API answers" in reached[2]

    # The hub killed (kill -9): `up` sees it die and exits; the hub could not remove its pid
    # file nor stop its proxy, which stays behind.
    paths = StatePaths(workdir / "state")
    hub_pid = hub.hub_pid()
    api_port = load(config).spec.hub.api_port
    assert wait_until(lambda: _cullers_of(api_port), 30), "no idle culler runs"
    os.kill(hub_pid, signal.SIGKILL)
    hub.proc.wait(timeout=60)
    assert wait_until(lambda: running_hub(paths) is None, 30)
    # The hub's managed service (the idle culler) dies with it; the proxy does not.
    assert wait_until(lambda: not _cullers_of(api_port), 30), _cullers_of(api_port)
    orphan = orphan_proxy(paths, _proxy_api_port(config))
    assert orphan is not None, "the proxy of a killed hub stays running"
    try:
        code, body = doctor(config)
        assert code == 0, not_ok(body)
        explanations = " ".join(f["explanation"] for f in found(body, "hub", "warning"))
        assert "The hub is not running" in explanations
        assert f"{paths.hub_pid} names pid {hub_pid}, which no longer runs" in explanations
        assert f"A proxy (pid {orphan}) left by a hub that was killed" in explanations
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGTERM)
        assert wait_until(lambda: not alive(orphan), 30)

    secret = paths.secret("proxy-token")
    os.chmod(secret, 0o644)
    code, body = doctor(config)
    assert code == 1
    [problem] = found(body, "state", "problem")
    assert problem["subject"] == str(secret)
    assert "other users on this machine can read a secret" in problem["explanation"]
    code, body = doctor(config, "--fix")
    assert code == 0, not_ok(body)
    assert [(c["command"], c["before"], c["after"]) for c in body["changes"]] == [
        (f"chmod 0600 {secret}", "0644", "0600")]
    assert mode(secret) == 0o600


def _cullers_of(api_port: int) -> list[int]:
    """The idle cullers talking to the hub API on api_port."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except (OSError, ValueError):
            continue
        if b"jupyterhub_idle_culler" in command and f":{api_port}/".encode() in environ:
            found.append(int(entry.name))
    return found


def _proxy_api_port(config: Path) -> int:
    return load(config).spec.proxy.api_port


def test_bad_input_exits_2_and_changes_nothing(workdir: Path, machine) -> None:
    missing = hk(workdir / "nope.yaml", "doctor", "--fix")
    assert missing.returncode == 2
    assert f"{workdir / 'nope.yaml'}: no such file" in missing.stderr

    config = applied(workdir)
    home = Path(f"/home/{USERS[0]}")
    os.chmod(home, 0o755)
    good = config.read_text()
    config.write_text(good.replace("allowed:", "alowed:"))
    broken = hk(config, "doctor", "--fix")
    assert broken.returncode == 2
    assert f"{config}:" in broken.stderr and "users.alowed: unknown key" in broken.stderr
    assert broken.stdout == ""
    assert mode(home) == 0o755, "bad input: nothing was changed"
    config.write_text(good)
    assert doctor(config)[0] == 1
