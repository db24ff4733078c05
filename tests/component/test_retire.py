"""`hubkeeper retire` with real accounts, homes, data folders, an environment and a real hub.

Every name is built from TEST_ACCOUNT_PREFIX, so that runs with another HK_TEST_PREFIX on the
same machine never see (or remove) these accounts. Beside the hub's own accounts each test
has an account hubkeeper did not create and a home-like folder nobody's journal lists: they
must come out of every retire byte for byte, with their /etc lines unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hubkeeper.context.hub import Hub
from hubkeeper.verbs.archive import archive as archive_verb
from hubkeeper.verbs.archive import verify as verify_archive
from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, hk, ok, pam_hub, write_config

pytestmark = [pytest.mark.component, pytest.mark.root]

USERS = [f"{P}01", f"{P}02", f"{P}03"]
GROUP = f"{P}tas"
DATA = Path(f"/srv/{P}-data")
PROJECTS = Path(f"/srv/{P}-projects")
FOLDER = PROJECTS / "lab"
ADMIN = f"{P}admin"  # an account of the machine's own, never on the roster
SOMEONE = Path(f"/home/{P}someone")  # a folder in /home that no account and no journal has
ETC = ("passwd", "group", "shadow", "gshadow")


@pytest.fixture
def machine(accounts):
    """Root, no leftover of an earlier run, an unmanaged account with files in its home and
    an unmanaged folder in /home; all removed afterwards."""

    def remove() -> None:
        for path in (DATA, PROJECTS, SOMEONE):
            shutil.rmtree(path, ignore_errors=True)
        for user in USERS:  # homes of accounts already gone (the fixture removes by account)
            home = Path(f"/home/{user}")
            if home.is_symlink():
                home.unlink()
            shutil.rmtree(home, ignore_errors=True)

    remove()
    accounts(ADMIN, home=True)
    home = Path(f"/home/{ADMIN}")
    (home / "thesis.tex").write_text("\\section{Unrelated}\n")
    (home / "link").symlink_to("thesis.tex")
    SOMEONE.mkdir(mode=0o750)
    (SOMEONE / "keep").mkdir()
    (SOMEONE / "keep" / "data.bin").write_bytes(os.urandom(4096))
    os.chown(SOMEONE / "keep" / "data.bin", 4321, 4321)
    yield
    remove()


def write_hub(workdir: Path, environments: bool = False) -> Path:
    rows = "".join(f"{user},{GROUP if user == USERS[0] else ''}\n" for user in USERS)
    (workdir / "class.csv").write_text("username,groups\n" + rows)
    config = pam_hub(
        workdir, f"{P}-course",
        f"users:\n  roster: {{csv: class.csv}}\n  groups: {{{GROUP}: []}}\n"
        "data:\n"
        f"  shared:\n    - {{path: {DATA}, link: data}}\n"
        f"  group_folders:\n    - {{path: {FOLDER}, group: {GROUP}, link: project}}\n"
        "archive: {dir: archives}\n"
        + ("environments:\n  plain: {}\n" if environments else ""))
    return config


def make_hub(workdir: Path, hubs, environments: bool = False) -> Path:
    """A hub that ran once (it has a database), with files in a home and the data folders."""
    config = write_hub(workdir, environments)
    ok(hk(config, "apply"))
    hubs.start(config).stop()
    (Path(f"/home/{USERS[1]}") / "notes.txt").write_text("week 1\n")
    (DATA / "dataset.csv").write_text("a,b\n1,2\n")
    (FOLDER / "shared.md").write_text("group work\n")
    return config


def archive(config: Path) -> Path:
    """A real archive (hubkeeper.verbs.archive, in this process: the test runs as root)."""
    return Path(archive_verb(Hub.open(config), None).directory)


def journal(config: Path) -> dict:
    return json.loads((config.parent / "state" / "journal.json").read_text())


def digest_tree(root: Path) -> dict[str, tuple]:
    """Every entry under root with its metadata and content hash (or link target)."""
    found: dict[str, tuple] = {}
    for directory, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = Path(directory, name)
            info = path.lstat()
            if path.is_symlink():
                content = os.readlink(path)
            elif path.is_file():
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = None
            found[str(path.relative_to(root))] = (info.st_mode, info.st_uid, info.st_gid,
                                                  info.st_size, info.st_mtime_ns, content)
    return found


def unmanaged(names: set[str]) -> dict[str, list[str]]:
    """The /etc lines of every account and group retire must not touch: the machine's own
    (not hk*, so other test runs in parallel do not disturb the comparison) and ADMIN's."""
    lines = {}
    for name in ETC:
        text = Path("/etc", name).read_text().splitlines()
        lines[name] = [line for line in text
                       if (entry := line.split(":")[0]) not in names
                       and (not entry.startswith("hk") or entry == ADMIN)]
        assert any(line.startswith(f"{ADMIN}:") for line in lines[name])
    return lines


def snapshot_unmanaged(journal_names: set[str]) -> dict:
    return {"etc": unmanaged(journal_names), "admin": digest_tree(Path(f"/home/{ADMIN}")),
            "someone": digest_tree(SOMEONE)}


def nothing_removed(config: Path) -> None:
    for user in USERS:
        assert Path(f"/home/{user}").is_dir()
        assert subprocess.run(["id", user], capture_output=True).returncode == 0
    assert (DATA / "dataset.csv").exists() and (FOLDER / "shared.md").exists()
    assert not (config.parent / "state" / "RETIRED.json").exists()
    assert journal(config)["accounts"].keys() == set(USERS)


def test_refuses_without_an_archive(workdir: Path, machine, hubs) -> None:
    config = make_hub(workdir, hubs)
    for args in ((), ("--yes",)):
        result = hk(config, "retire", *args)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "no archive of this hub is recorded" in result.stdout
        assert "REFUSED: nothing was removed" in result.stdout
    nothing_removed(config)


def test_refuses_when_a_home_changed_after_the_archive(workdir: Path, machine, hubs) -> None:
    config = make_hub(workdir, hubs)
    archive(config)
    time.sleep(0.01)
    with open(f"/home/{USERS[1]}/notes.txt", "a") as notes:
        notes.write("week 2\n")
    result = hk(config, "retire", "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{USERS[1]}'s home /home/{USERS[1]} changed since the archive" in result.stdout
    assert "notes.txt: size, mtime changed since the archive" in result.stdout
    assert "take a new archive" in result.stdout
    nothing_removed(config)
    plan = json.loads(hk(config, "retire", "--json").stdout)
    assert plan["status"] == "refused" and not plan["archive"]["ok"]
    assert plan["archive"]["changes"] == {
        USERS[1]: ["notes.txt: size, mtime changed since the archive"]}
    # A new file in a data folder is found as well.
    archive(config)
    (DATA / "late.csv").write_text("x\n")
    result = hk(config, "retire")
    assert result.returncode == 1
    assert f"the data folder {DATA} changed" in result.stdout
    assert "late.csv: new since the archive" in result.stdout
    nothing_removed(config)


def test_refuses_a_damaged_archive(workdir: Path, machine, hubs) -> None:
    config = make_hub(workdir, hubs)
    directory = archive(config)
    tar = directory / "users" / f"{USERS[0]}.tar.zst"
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    result = hk(config, "retire", "--yes")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"archive: users/{USERS[0]}.tar.zst" in result.stdout
    nothing_removed(config)


def test_retire_removes_exactly_the_journal(workdir: Path, machine, hubs) -> None:
    config = make_hub(workdir, hubs, environments=True)
    state = config.parent / "state"
    assert (state / "envs" / "plain").is_dir()
    listed = journal(config)
    names = set(listed["accounts"]) | set(listed["groups"])
    assert set(listed["accounts"]) == set(USERS) and set(listed["groups"]) == {GROUP}
    assert set(listed["dirs"]) == {str(DATA), str(FOLDER)}
    hub = hubs.start(config)
    directory = archive(config)
    before = snapshot_unmanaged(names)

    plan = json.loads(ok(hk(config, "retire", "--json")).stdout)
    assert plan["status"] == "plan" and plan["archive"]["ok"]
    assert plan["archive"]["manifest_sha256"] == hashlib.sha256(
        (directory / "MANIFEST.json").read_bytes()).hexdigest()
    planned = {(item["kind"], item["name"]) for item in plan["items"]}
    assert planned == {
        ("hub", str(hub.proc.pid)), *(("account", u) for u in USERS),
        *(("home", f"/home/{u}") for u in USERS), ("group", GROUP), ("data", str(DATA)),
        ("data", str(FOLDER)), ("environment", "plain"), ("state", str(state))}
    assert not any(item["refused"] for item in plan["items"])
    assert "run `hubkeeper retire --yes`" in ok(hk(config, "retire")).stdout

    result = ok(hk(config, "retire", "--yes", "--json"))
    done = json.loads(result.stdout)
    assert done["status"] == "retired" and done["hub_stopped"] == hub.proc.pid
    assert hub.proc.wait(timeout=30) == 0  # `up` stopped on request, cleanly
    removed = {(item["kind"], item["name"]) for item in done["items"]}
    assert removed == planned

    for user in USERS:
        assert subprocess.run(["id", user], capture_output=True).returncode != 0
        assert not os.path.lexists(f"/home/{user}")
    assert subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0
    assert not DATA.exists() and not FOLDER.exists()
    assert PROJECTS.is_dir()  # its parent was made by mkdir -p, not journaled: kept
    assert [p.name for p in state.iterdir()] == ["RETIRED.json"]
    assert snapshot_unmanaged(names) == before

    record = json.loads((state / "RETIRED.json").read_text())
    assert record["state"] == "retired" and record["archive"]["path"] == str(directory)
    assert record["archive"]["manifest_sha256"] == plan["archive"]["manifest_sha256"]
    assert json.loads((directory / "RETIREMENT.json").read_text()) == record
    assert verify_archive(directory).problems == ()  # the record beside it is no damage
    assert {(e["kind"], e["name"]) for e in record["removed"]} == planned
    assert record["kept"] == []

    for verb in ("up", "apply"):
        refused = hk(config, verb, timeout=60)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"hub '{P}-course' was retired on {record['finished']}" in refused.stderr
        assert "a new hub needs a new hub.state_dir" in refused.stderr
    again = ok(hk(config, "retire", "--yes"))
    assert "was already retired" in again.stdout
    assert [p.name for p in state.iterdir()] == ["RETIRED.json"]
    assert snapshot_unmanaged(names) == before


def test_a_killed_retire_finishes_when_run_again(workdir: Path, machine, hubs) -> None:
    config = make_hub(workdir, hubs)
    many = Path(f"/home/{USERS[0]}/many")  # slow to remove: the kill lands mid-way
    many.mkdir()
    for index in range(20000):
        (many / f"{index}.txt").write_text(f"{index}\n")
    subprocess.run(["chown", "-R", f"{USERS[0]}:", str(many)], check=True)
    names = set(journal(config)["accounts"]) | set(journal(config)["groups"])
    archive(config)
    before = snapshot_unmanaged(names)

    proc = subprocess.Popen([HUBKEEPER, "--config", str(config), "retire", "--yes", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while f"\n{USERS[0]}:" in "\n" + Path("/etc/passwd").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "retire did not start"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    record = json.loads((config.parent / "state" / "RETIRED.json").read_text())
    assert record["state"] == "retiring"  # really killed half-way
    assert subprocess.run(["id", USERS[2]], capture_output=True).returncode == 0
    refused = hk(config, "apply")
    assert refused.returncode == 1 and "began and did not finish" in refused.stderr

    plan = ok(hk(config, "retire"))
    assert "what a killed retire left" in plan.stdout
    done = json.loads(ok(hk(config, "retire", "--yes", "--json")).stdout)
    assert done["status"] == "retired" and done["resumed"]
    removed = {(item["kind"], item["name"]) for item in done["items"]}
    assert {("account", u) for u in USERS} | {("home", f"/home/{u}") for u in USERS} <= removed
    for user in USERS:
        assert subprocess.run(["id", user], capture_output=True).returncode != 0
        assert not os.path.lexists(f"/home/{user}")
    assert not DATA.exists() and not FOLDER.exists()
    assert snapshot_unmanaged(names) == before


def test_a_home_that_is_not_safe_to_remove_is_kept(workdir: Path, machine, hubs) -> None:
    config = make_hub(workdir, hubs)
    home = Path(f"/home/{USERS[2]}")
    shutil.rmtree(home)
    home.symlink_to(SOMEONE)  # the journal's home path now leads to an unrelated folder
    names = set(journal(config)["accounts"]) | set(journal(config)["groups"])
    archive(config)
    before = snapshot_unmanaged(names)
    done = json.loads(ok(hk(config, "retire", "--yes", "--json")).stdout)
    kept = [item for item in done["items"] if item["refused"]]
    assert kept == [{"kind": "home", "name": str(home), "detail": f"of {USERS[2]}",
                     "refused": "is not a directory (a symbolic link or a file is never "
                     "followed)"}]
    assert subprocess.run(["id", USERS[2]], capture_output=True).returncode != 0
    assert home.is_symlink()
    assert snapshot_unmanaged(names) == before
    record = json.loads((config.parent / "state" / "RETIRED.json").read_text())
    assert record["kept"] == kept
    again = ok(hk(config, "retire")).stdout
    assert "was already retired" in again and f"{home}  (of {USERS[2]}): is not a" in again


def test_personal_mode_retires_the_state_and_its_homes(workdir: Path, hubs) -> None:
    """Personal mode: no accounts; the users' folders are in the state directory."""
    config = write_config(workdir, name=f"{P}-personal", mode="personal",
                          extra="archive: {dir: archives}\n")
    hubs.start(config).stop()
    state = config.parent / "state"
    home = state / "users" / "student1"
    home.mkdir(parents=True, exist_ok=True)
    (home / "work.py").write_text("print('mine')\n")
    directory = archive(config)
    (home / "late.py").write_text("")
    refused = hk(config, "retire", "--yes")
    assert refused.returncode == 1 and "late.py: new since the archive" in refused.stdout
    directory = archive(config)
    done = json.loads(ok(hk(config, "retire", "--yes", "--json")).stdout)
    assert {(i["kind"], i["name"]) for i in done["items"]} == {("home", str(home)),
                                                                ("state", str(state))}
    assert [p.name for p in state.iterdir()] == ["RETIRED.json"]
    assert (directory / "RETIREMENT.json").exists()


def _hub_with_unit(workdir: Path, hubs, name: str) -> tuple[Path, Path]:
    config = write_config(workdir, name=name, mode="personal", extra=(
        f"archive: {{dir: archives}}\nservice: {{unit_dir: {workdir / 'units'}}}\n"))
    hubs.start(config).stop()
    ok(hk(config, "service", "install"))  # no systemd here: written, not started
    unit = workdir / "units" / f"hubkeeper-{name}.service"
    assert unit.exists()
    archive(config)
    return config, unit


def test_retire_removes_the_systemd_unit_it_installed(workdir: Path, hubs) -> None:
    """A retired hub must not come back at the next boot: its unit goes first."""
    config, unit = _hub_with_unit(workdir, hubs, f"{P}-unit")
    plan = json.loads(hk(config, "retire", "--json").stdout)
    assert {"kind": "file", "name": str(unit), "detail": "systemd-unit", "refused": None} \
        in plan["items"]
    done = json.loads(ok(hk(config, "retire", "--yes", "--json")).stdout)
    assert ("file", str(unit)) in {(i["kind"], i["name"]) for i in done["items"]
                                   if not i.get("refused")}
    assert not unit.exists()


def test_retire_keeps_a_unit_changed_by_hand_and_says_why(workdir: Path, hubs) -> None:
    config, unit = _hub_with_unit(workdir, hubs, f"{P}-unit2")
    unit.write_text(unit.read_text() + "# local change\n")
    done = json.loads(ok(hk(config, "retire", "--yes", "--json")).stdout)
    (kept,) = [i for i in done["items"] if i["kind"] == "file"]
    assert kept["name"] == str(unit) and "changed by hand" in kept["refused"]
    assert unit.read_text().endswith("# local change\n")
