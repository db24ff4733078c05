"""Shared data as real users: a read-only dataset for everyone, a group folder for members."""

from __future__ import annotations

import asyncio
import csv
import grp
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import free_ports, hk
from tests.support.simuser import run_once

pytestmark = [pytest.mark.component, pytest.mark.root]

ANN, BO, TAS = f"{P}01", f"{P}02", f"{P}tas"
DATA = Path(f"/srv/{P}-data")
PROJECT = Path(f"/srv/{P}-projects/lab")


@pytest.fixture
def srv(clean_accounts):
    def remove() -> None:
        shutil.rmtree(DATA, ignore_errors=True)
        shutil.rmtree(PROJECT.parent, ignore_errors=True)

    remove()
    yield
    remove()


def write_hub(workdir: Path) -> Path:
    (workdir / "class.csv").write_text(f"username,groups\n{ANN},{TAS}\n{BO},\n")
    port, api_port, proxy_port = free_ports(3)
    config = workdir / "hub.yaml"
    config.write_text(
        f"hub: {{name: data, port: {port}, api_port: {api_port}, state_dir: state}}\n"
        f"proxy: {{api_port: {proxy_port}}}\n"
        "auth: {kind: pam}\n"
        f"users:\n  roster: {{csv: class.csv}}\n  groups: {{{TAS}: []}}\n"
        "data:\n"
        f"  shared:\n    - {{path: {DATA}, link: data}}\n"
        f"  group_folders:\n    - {{path: {PROJECT}, group: {TAS}, link: project}}\n")
    return config


TRY_WRITE = ("def attempt(path):\n    try:\n        open(path, 'w').write('x')\n"
             "        return 'written'\n    except PermissionError:\n        return 'denied'\n")


def test_read_only_data_and_a_group_folder(workdir: Path, hubs, srv) -> None:
    config = write_hub(workdir)
    applied = hk(config, "apply")
    assert applied.returncode == 0, applied.stderr
    for expected in (f"create-shared-dir {DATA}", f"create-group-folder {PROJECT}",
                     f"link-in-home {ANN} (data", f"link-in-home {ANN} (project",
                     f"link-in-home {BO} (data"):
        assert expected in applied.stdout, applied.stdout
    assert f"{BO} (project" not in applied.stdout
    info = DATA.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)
    info = PROJECT.stat()
    assert (info.st_uid, info.st_gid) == (0, grp.getgrnam(TAS).gr_gid)
    assert stat.S_IMODE(info.st_mode) == 0o2770
    (DATA / "dataset.csv").write_text("a,b\n1,2\n")
    assert json.loads(hk(config, "plan", "--json").stdout)["actions"] == []

    passwords = {}
    for path in (workdir / "state" / "credentials").glob("*.csv"):
        with open(path) as handle:
            passwords.update({r["username"]: r["password"] for r in csv.DictReader(handle)})
    hub = hubs.start(config)

    member = asyncio.run(run_once(hub.url, ANN, passwords[ANN], TRY_WRITE + (
        "(open('data/dataset.csv').read(), attempt('data/mine.txt'), "
        "attempt('project/notes.txt'))")))
    assert member == repr(("a,b\n1,2\n", "denied", "written"))
    notes = PROJECT / "notes.txt"
    info = notes.stat()
    assert info.st_gid == grp.getgrnam(TAS).gr_gid  # setgid: the group's file
    assert stat.S_IMODE(info.st_mode) & 0o060 == 0o060  # group read and write
    assert stat.S_IMODE(info.st_mode) & 0o007 == 0  # nothing for others

    other = asyncio.run(run_once(hub.url, BO, passwords[BO], TRY_WRITE + (
        f"import os\ntry:\n    os.listdir({str(PROJECT)!r})\n    seen = 'listed'\n"
        "except PermissionError:\n    seen = 'denied'\n"
        f"(seen, attempt({str(DATA / 'x')!r}), os.path.exists('project'))")))
    assert other == repr(("denied", "denied", False))


def test_a_users_own_file_is_never_replaced_by_a_link(workdir: Path, srv) -> None:
    config = write_hub(workdir)
    assert hk(config, "apply").returncode == 0
    home = Path(f"/home/{BO}")
    (home / "data").unlink()
    (home / "data").write_text("my own notes")
    planned = hk(config, "plan")
    assert f"/home/{BO}/data exists and is not a link" in planned.stdout
    assert hk(config, "apply").returncode == 0
    assert (home / "data").read_text() == "my own notes"


def test_a_writable_existing_shared_dir_is_refused(workdir: Path, srv) -> None:
    DATA.mkdir()
    os.chmod(DATA, 0o777)
    config = write_hub(workdir)
    result = hk(config, "apply")
    assert result.returncode == 2
    assert f"{config}:9:" in result.stderr and "users could write to it" in result.stderr
    assert stat.S_IMODE(DATA.stat().st_mode) == 0o777  # not ours: reported, not changed
    assert not PROJECT.exists()
