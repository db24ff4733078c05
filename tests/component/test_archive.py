"""`hubkeeper archive`, `archive verify` and `export` on a hub with real accounts and homes.

One hub is set up for the module: `apply` creates the accounts, files of every kind are
written in their homes, the hub runs once (so its database has the users) and the archive is
written while it runs. Each damage test works on its own copy of that archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from tests.conftest import TEST_ACCOUNT_PREFIX, remove_test_accounts, require_root
from tests.support.hubproc import HUBKEEPER, pam_hub, start_hub

pytestmark = [pytest.mark.component, pytest.mark.root]

P = TEST_ACCOUNT_PREFIX
ANN, BOB, CAT = f"{P}01", f"{P}02", f"{P}03"
DATA = Path(f"/srv/{P}-archive-data")
ODD_NAME = "notes/résumé – 日本.txt"


def hk(config: Path | None, *args: str) -> subprocess.CompletedProcess:
    head = [HUBKEEPER] + (["--config", str(config)] if config else [])
    return subprocess.run([*head, *args], capture_output=True, text=True, timeout=300)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Course:
    root: Path
    config: Path
    archive: Path
    result: dict
    homes: dict[str, Path]


def _fill_home(user: str) -> Path:
    home = Path(pwd.getpwnam(user).pw_dir)
    entry = pwd.getpwnam(user)
    (home / "notes").mkdir()
    (home / "notes" / "week1.md").write_text(f"# {user}, week 1\n")
    (home / ODD_NAME).write_text("accents and kanji in the name\n")
    (home / "empty.txt").write_bytes(b"")
    (home / "private.txt").write_text("mine only\n")
    os.chmod(home / "private.txt", 0o600)
    (home / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(home / "run.sh", 0o755)
    (home / "data.bin").write_bytes(os.urandom(300_000) + bytes(2_000_000))
    os.symlink("notes/week1.md", home / "latest")
    for path in [home / "notes", *home.rglob("*")]:
        os.lchown(path, entry.pw_uid, entry.pw_gid)
    return home


@pytest.fixture(scope="module")
def course() -> Iterator[Course]:
    require_root()
    remove_test_accounts()
    shutil.rmtree(DATA, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix=f"{TEST_ACCOUNT_PREFIX}-archive-"))
    os.chmod(root, 0o755)
    hub = None
    try:
        (root / "class.csv").write_text(f"username\n{ANN}\n{BOB}\n{CAT}\n")
        config = pam_hub(
            root, "course",
            "users:\n  roster: {csv: class.csv}\n"
            f"data:\n  shared:\n    - {{path: {DATA}, link: data}}\n"
            "archive: {dir: archives}\n")
        applied = hk(config, "apply")
        assert applied.returncode == 0, applied.stderr
        homes = {user: _fill_home(user) for user in (ANN, BOB, CAT)}
        os.mkfifo(homes[CAT] / "pipe")  # not archivable: skipped and reported
        (DATA / "dataset.csv").write_text("a,b\n1,2\n")
        hub = start_hub(config)  # the hub's database gets the roster's users
        written = hk(config, "archive", "--json")  # while the hub runs: SQLite online backup
        hub.stop()
        assert written.returncode == 0, written.stderr
        result = json.loads(written.stdout)
        yield Course(root, config, Path(result["directory"]), result, homes)
    finally:
        if hub is not None:
            hub.stop()
        remove_test_accounts()
        shutil.rmtree(DATA, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def copy(course: Course, workdir: Path) -> Path:
    """A copy of the archive, to damage."""
    target = workdir / course.archive.name
    shutil.copytree(course.archive, target, symlinks=True)
    return target


def manifest(directory: Path) -> dict:
    return json.loads((directory / "MANIFEST.json").read_text())


def reseal(directory: Path, body: dict) -> None:
    """Rewrite MANIFEST.json and its .sha256 as a forger would: consistent with each other."""
    data = json.dumps(body, separators=(",", ":")).encode() + b"\n"
    (directory / "MANIFEST.json").write_bytes(data)
    (directory / "MANIFEST.json.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  MANIFEST.json\n")


def set_tar_hash(directory: Path, tar: str) -> None:
    """Make MANIFEST.json's entry for `tar` match the file as it is now."""
    body = manifest(directory)
    for entry in body["entries"]:
        if entry["path"] == tar:
            entry["sha256"] = sha256(directory / tar)
            entry["size"] = (directory / tar).stat().st_size
    reseal(directory, body)


def rewrite_tar(path: Path, keep) -> None:
    """Re-pack a .tar.zst with plain tarfile + zstandard, keeping the members `keep` allows
    (and giving `keep` the chance to change their data)."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    with open(path, "rb") as handle, \
            zstandard.ZstdDecompressor().stream_reader(handle) as reader, \
            tarfile.open(fileobj=reader, mode="r|") as tar:
        for info in tar:
            data = tar.extractfile(info).read() if info.isreg() else None
            kept = keep(info, data)
            if kept is not False:
                members.append((info, data if kept is True else kept))
    with open(path, "wb") as handle, \
            zstandard.ZstdCompressor().stream_writer(handle, closefd=False) as writer, \
            tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def verify(directory: Path) -> subprocess.CompletedProcess:
    return hk(None, "archive", "verify", str(directory))


def problems(directory: Path) -> list[str]:
    result = hk(None, "archive", "verify", "--json", str(directory))
    body = json.loads(result.stdout)
    assert result.returncode == (0 if body["ok"] else 1)
    return body["problems"]


# -- a sound archive --------------------------------------------------------------------


def test_the_archive_verifies_and_holds_every_home(course: Course) -> None:
    result = verify(course.archive)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert course.result["users"] == 3 and course.result["data_dirs"] == 1
    assert stat.S_IMODE(course.archive.stat().st_mode) == 0o700
    assert not list(course.archive.parent.glob(".partial-*"))
    assert course.archive.parent == course.root / "archives"  # archive.dir, relative to hub.yaml
    names = sorted(str(p.relative_to(course.archive)) for p in course.archive.rglob("*")
                   if p.is_file())
    assert names == sorted(["MANIFEST.json", "MANIFEST.json.sha256", "hub.tar.zst",
                            f"users/{ANN}.tar.zst", f"users/{BOB}.tar.zst",
                            f"users/{CAT}.tar.zst",
                            f"data/{str(DATA).lstrip('/')}.tar.zst"])
    checked = subprocess.run(["sha256sum", "-c", "MANIFEST.json.sha256"], cwd=course.archive,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout


def test_the_tars_are_standard_and_match_the_live_files(course: Course) -> None:
    body = manifest(course.archive)
    for user, home in course.homes.items():
        section = body["users"][user]
        account = pwd.getpwnam(user)
        assert (section["account"], section["home"], section["uid"]) == (
            user, str(home), account.pw_uid)
        listing = subprocess.run(["tar", "-I", "zstd", "-tvf",
                                  str(course.archive / section["tar"])],
                                 capture_output=True, text=True)
        assert listing.returncode == 0, listing.stderr
        assert "latest -> notes/week1.md" in listing.stdout  # a symlink, kept as one
        assert ODD_NAME in listing.stdout
        members = {m["path"]: m for m in section["members"]}
        assert not any(p.startswith(("./", "/")) for p in members)
        live = {str(p.relative_to(home)) for p in home.rglob("*") if not p.is_fifo()}
        assert set(members) == live  # with /etc/skel's files and apply's link to the data
        assert {"notes", "notes/week1.md", ODD_NAME, "empty.txt", "private.txt", "run.sh",
                "data.bin", "latest"} <= live
        for path, member in members.items():
            live = home / path
            info = live.lstat()
            assert (member["uid"], member["gid"]) == (account.pw_uid, account.pw_gid)
            assert member["mode"] == info.st_mode
            if member["type"] == "f":
                assert member["sha256"] == sha256(live), path
                assert member["size"] == info.st_size
                assert member["mtime_ns"] == info.st_mtime_ns
        assert stat.S_IMODE(members["private.txt"]["mode"]) == 0o600
        assert stat.S_IMODE(members["run.sh"]["mode"]) == 0o755
        assert members["empty.txt"]["size"] == 0
        assert members["latest"] == {**members["latest"], "type": "l",
                                     "link": "notes/week1.md"}
    data = body["data"][str(DATA)]
    assert data["kind"] == "shared"
    assert [m["path"] for m in data["members"]] == ["dataset.csv"]
    entries = {e["path"]: e for e in body["entries"]}
    for tar, entry in entries.items():
        assert entry["sha256"] == sha256(course.archive / tar)


def test_a_fifo_is_skipped_and_reported(course: Course) -> None:
    assert any(f"{course.homes[CAT] / 'pipe'}: a fifo" in item
               for item in course.result["skipped"])
    assert "pipe" not in {m["path"] for m in manifest(course.archive)["users"][CAT]["members"]}


def test_extracted_with_gnu_tar_the_files_are_the_same(course: Course, workdir: Path) -> None:
    target = workdir / "out"
    target.mkdir()
    tar = course.archive / f"users/{ANN}.tar.zst"
    subprocess.run(["tar", "-I", "zstd", "-xpf", str(tar), "-C", str(target),
                    "--numeric-owner"], check=True)
    home = course.homes[ANN]
    for path in ("notes/week1.md", ODD_NAME, "private.txt", "data.bin"):
        got, want = (target / path).stat(), (home / path).stat()
        assert (target / path).read_bytes() == (home / path).read_bytes()
        assert (got.st_mode, got.st_uid, got.st_mtime_ns) == (
            want.st_mode, want.st_uid, want.st_mtime_ns)
    assert os.readlink(target / "latest") == "notes/week1.md"


def _hub_tar_members(archive: Path) -> dict[str, bytes]:
    out = {}
    with open(archive / "hub.tar.zst", "rb") as handle, \
            zstandard.ZstdDecompressor().stream_reader(handle) as reader, \
            tarfile.open(fileobj=reader, mode="r|") as tar:
        for info in tar:
            out[info.name] = tar.extractfile(info).read()
    return out


def test_the_hub_files_and_database_are_archived_without_secrets(course: Course,
                                                                 workdir: Path) -> None:
    members = _hub_tar_members(course.archive)
    assert {"hub/config/hub.yaml", "hub/config/class.csv", "hub/state/journal.json",
            "hub/state/VERSION", "hub/roster.json", "hub/jupyterhub.sqlite"} <= set(members)
    assert not [name for name in members if "secret" in name]
    database = workdir / "hub.sqlite"
    database.write_bytes(members["hub/jupyterhub.sqlite"])
    with sqlite3.connect(database) as db:
        users = {name for (name,) in db.execute("SELECT name FROM users")}
    assert {ANN, BOB, CAT} <= users
    roster = json.loads(members["hub/roster.json"])
    assert [m["name"] for m in roster["members"]] == [ANN, BOB, CAT]
    secrets = [p.read_bytes().strip() for p in (course.root / "state/secrets").iterdir()]
    assert secrets
    for tar in course.archive.rglob("*.tar.zst"):
        with open(tar, "rb") as handle:
            plain = zstandard.ZstdDecompressor().stream_reader(handle).read()
        for secret in secrets:
            assert secret not in plain, f"a secret is in {tar}"


def test_the_archive_is_recorded(course: Course) -> None:
    records = json.loads((course.root / "state/archives.json").read_text())
    assert records[-1]["path"] == str(course.archive)
    assert records[-1]["manifest_sha256"] == sha256(course.archive / "MANIFEST.json")
    assert records[-1]["manifest_sha256"] == course.result["manifest_sha256"]
    assert stat.S_IMODE((course.root / "state/archives.json").stat().st_mode) == 0o600


# -- damage, each named ------------------------------------------------------------------


def test_a_flipped_byte_is_named(copy: Path) -> None:
    tar = copy / f"users/{ANN}.tar.zst"
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0x01
    tar.write_bytes(bytes(data))
    result = verify(copy)
    assert result.returncode == 1
    assert f"users/{ANN}.tar.zst: SHA-256 differs from MANIFEST.json" in result.stdout
    assert all(ANN in line for line in problems(copy))


def test_a_truncated_tar_is_named(copy: Path) -> None:
    tar = copy / f"users/{BOB}.tar.zst"
    os.truncate(tar, tar.stat().st_size - 7)
    found = problems(copy)
    assert f"users/{BOB}.tar.zst: SHA-256 differs from MANIFEST.json" in found
    assert any(line.startswith(f"users/{BOB}.tar.zst: size differs") for line in found)
    assert f"users/{BOB}.tar.zst: is truncated: it ends in the middle of a zstd frame" in found


def test_a_truncated_tar_is_found_even_with_a_forged_hash(copy: Path) -> None:
    tar = f"users/{BOB}.tar.zst"
    os.truncate(copy / tar, (copy / tar).stat().st_size // 2)
    set_tar_hash(copy, tar)
    found = problems(copy)
    assert found and all(line.startswith(f"{tar}: ") for line in found)
    assert "data.bin" in "\n".join(found) or "could not be checked" in "\n".join(found)


def test_a_missing_member_is_named(copy: Path) -> None:
    tar = f"users/{BOB}.tar.zst"
    rewrite_tar(copy / tar, lambda info, data: info.name != "private.txt")
    set_tar_hash(copy, tar)  # so only the member check can see it
    assert problems(copy) == [
        f"{tar}: private.txt: listed in MANIFEST.json but missing from the tar"]


def test_a_changed_member_is_named_when_the_tar_hash_was_rewritten(copy: Path) -> None:
    tar = f"users/{ANN}.tar.zst"
    rewrite_tar(copy / tar, lambda info, data: (b"X" * len(data) if info.name == ODD_NAME
                                                else True))
    set_tar_hash(copy, tar)
    assert problems(copy) == [f"{tar}: {ODD_NAME}: SHA-256 differs from MANIFEST.json"]


def test_a_member_not_listed_is_named(copy: Path) -> None:
    tar = f"users/{ANN}.tar.zst"
    body = manifest(copy)
    body["users"][ANN]["members"] = [m for m in body["users"][ANN]["members"]
                                     if m["path"] != "run.sh"]
    reseal(copy, body)
    assert problems(copy) == [f"{tar}: run.sh: in the tar but not in MANIFEST.json"]


def test_a_missing_tar_is_named(copy: Path) -> None:
    (copy / f"users/{CAT}.tar.zst").unlink()
    result = verify(copy)
    assert result.returncode == 1
    assert f"users/{CAT}.tar.zst: missing" in result.stdout


def test_an_unlisted_tar_is_named_but_a_note_beside_the_manifest_is_not(copy: Path) -> None:
    (copy / "RETIREMENT.json").write_text("{}\n")  # what retire leaves in the archive
    assert problems(copy) == []
    (copy / f"users/{P}99.tar.zst").write_bytes(b"not ours")
    assert problems(copy) == [f"users/{P}99.tar.zst: not in MANIFEST.json"]


def test_a_damaged_manifest_is_named(copy: Path) -> None:
    path = copy / "MANIFEST.json"
    path.write_bytes(path.read_bytes().replace(ANN.encode(), BOB.encode(), 1))
    found = problems(copy)
    assert len(found) == 1 and found[0].startswith("MANIFEST.json: ")
    assert "damaged" in found[0]


# -- export --------------------------------------------------------------------------------


def zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()
                if not info.is_dir()}


def home_files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*")
            if p.is_file() and not p.is_symlink()}


def test_export_gives_the_home_as_a_zip(course: Course, workdir: Path) -> None:
    result = hk(course.config, "export", ANN, "--to", str(workdir / "zips"), "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    path = Path(body["zip"])
    assert path.parent == workdir / "zips"
    assert path.name.startswith(f"{ANN}-course-") and path.suffix == ".zip"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert zip_files(path) == home_files(course.homes[ANN])
    assert "latest: a symlink; not in the zip" in body["skipped"]
    with zipfile.ZipFile(path) as archive:
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in archive.infolist()}
    assert (modes["private.txt"], modes["run.sh"]) == (0o600, 0o755)


def test_export_from_the_archive(course: Course, workdir: Path) -> None:
    result = hk(None, "export", CAT, "--from", str(course.archive), "--to", str(workdir))
    assert result.returncode == 0, result.stderr
    (path,) = workdir.glob(f"{CAT}-course-*.zip")
    files = home_files(course.homes[CAT])
    assert zip_files(path) == files
    assert "pipe" not in files  # a fifo: not a file, never archived


def test_export_from_a_damaged_archive_writes_nothing(copy: Path, workdir: Path) -> None:
    tar = f"users/{ANN}.tar.zst"
    rewrite_tar(copy / tar, lambda info, data: (b"Y" * len(data) if info.name == "data.bin"
                                                else True))
    set_tar_hash(copy, tar)
    out = workdir / "zips"
    out.mkdir()
    result = hk(None, "export", ANN, "--from", str(copy), "--to", str(out))
    assert result.returncode == 1
    assert "data.bin: SHA-256 differs from MANIFEST.json" in result.stderr
    assert list(out.iterdir()) == []


# -- bad input changes nothing -------------------------------------------------------------


def test_an_unknown_user_is_refused_with_the_known_ones(course: Course, workdir: Path) -> None:
    for args in (["--config", str(course.config)], ["--from", str(course.archive)]):
        result = hk(None, "export", f"{P}99", "--to", str(workdir), *args)
        assert result.returncode == 1
        assert f"'{P}99' has no home" in result.stderr
        assert f"{ANN}, {BOB}, {CAT}" in result.stderr
    assert list(workdir.iterdir()) == []


def test_no_archive_dir_and_no_to_is_refused(course: Course) -> None:
    bare = course.root / "bare.yaml"
    bare.write_text(course.config.read_text().replace("archive: {dir: archives}\n", ""))
    before = (course.root / "state/archives.json").read_bytes()
    try:
        result = hk(bare, "archive")
    finally:
        bare.unlink()
    assert result.returncode == 1
    assert "archive.dir" in result.stderr and "--to" in result.stderr
    assert (course.root / "state/archives.json").read_bytes() == before


def test_a_target_inside_a_home_or_the_state_is_refused(course: Course) -> None:
    home = course.homes[BOB]
    before = sorted(p.name for p in home.iterdir())
    for target in (home / "backup", course.root / "state" / "archives", DATA):
        result = hk(course.config, "archive", "--to", str(target))
        assert result.returncode == 1
        assert "the archive would hold itself" in result.stderr
        assert not target.exists() or target == DATA
    assert sorted(p.name for p in home.iterdir()) == before


def test_verify_of_a_missing_folder_is_an_error(workdir: Path) -> None:
    result = hk(None, "archive", "verify", str(workdir / "nope"))
    assert result.returncode == 1
    assert "is not a folder" in result.stderr


def test_one_archive_at_a_time(course: Course) -> None:
    from hubkeeper.base.locks import PidLock

    before = (course.root / "state/archives.json").read_bytes()
    with PidLock(course.root / "state/run/archive.lock", "held", hint=""):
        result = hk(course.config, "archive")
    assert result.returncode == 1
    assert f"another archive of this hub is being written (pid {os.getpid()})" in result.stderr
    assert (course.root / "state/archives.json").read_bytes() == before
