"""A student attacks the snapshot and the archive of their own home (issue 17, finding 6).

Root copies every home. A student who swaps a folder of their home for a symlink while the
copy runs tries two things: to make root copy what only root may read (a decoy folder or
file made by the test, another student's home, `/`), and to make the whole snapshot fail for
everyone. Each test runs the real `hubkeeper snapshot` / `hubkeeper archive` as root against
real accounts while the attacker's loop swaps as fast as it can, then searches every byte
written for the decoy's secret.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from hubkeeper.host.snapshots import complete_snapshots
from hubkeeper.lifecycle.snapshot import verify_snapshot
from tests.attacks.conftest import Student, Students
from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import hk, pam_hub

pytestmark = [pytest.mark.attack, pytest.mark.component, pytest.mark.root]

P = TEST_ACCOUNT_PREFIX
FILES = 60  # files in the swapped folder: each one read is a chance for the race

# Runs as the attacker: exchanges `work` with each symlink and back, atomically
# (renameat2 RENAME_EXCHANGE), as fast as it can, until killed.
SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def exchange(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) != 0:
        raise OSError(ctypes.get_errno(), f"renameat2 {a} {b}")
os.chdir(os.path.expanduser("~"))
links = sys.argv[1:]
open(".swapping", "w").close()
while True:
    for link in links:
        exchange("work", link)
        exchange("work", link)
"""

# Runs as the attacker: a file of 64 MiB that waits for someone to open it (inotify), then
# grows by `step` bytes of holes (no disk used) every 5 ms, faster than anyone can read it,
# up to `cap`: a reader that reads until EOF never ends.
GROWER = """
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
path = os.path.expanduser("~/zz-growing.bin")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"grown by its owner\\n" * 1000)
os.ftruncate(fd, 64 << 20)  # long enough to read that the growing starts meanwhile
watch = libc.inotify_init1(0)
assert libc.inotify_add_watch(watch, path.encode(), 0x20) >= 0  # IN_OPEN
open(os.path.expanduser("~/.growing"), "w").close()
os.read(watch, 4096)
step, cap = int(sys.argv[1]), int(sys.argv[2])
size = os.fstat(fd).st_size
while size < cap:
    size += step
    os.ftruncate(fd, size)
    time.sleep(0.005)
"""


# Runs as the attacker: kills every rsync sending side it may signal, every 10 ms. The one
# reading its own home is its own (exec left its uid as the saved uid); others' are not.
KILLER = """
import os, signal, time
open(os.path.expanduser("~/.killing"), "w").close()
while True:
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"--server\\x00--sender" in f.read():  # not this code's own text
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    time.sleep(0.01)
"""


@dataclass
class Course:
    config: Path
    target: Path
    attacker: Student
    victim: Student
    decoy: Path  # root's, 0700: a secret file under every name the attacker uses
    secret: bytes  # in every decoy file
    victim_secret: bytes  # in every file of the victim's home


def wait_for(path: Path, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def _decoy(workdir: Path, name: str, secret: bytes, names: list[str], mode: int) -> Path:
    decoy = workdir / name
    decoy.mkdir()
    for item in names:
        (decoy / item).write_bytes(secret)
        os.chmod(decoy / item, 0o600)
    os.chmod(decoy, mode)
    return decoy


@pytest.fixture
def course(workdir: Path, students: Students, hubs) -> Iterator[Course]:
    """Two real accounts made by `apply`, a hub run once (its database), a root-only decoy,
    the victim's private files, and the attacker's `work` folder mirroring every name."""
    target = workdir / "backup"
    config = pam_hub(workdir, "hostile", f"users:\n  allowed: [{P}01, {P}02]\n"
                     f"snapshots:\n  targets: [{target}]\n"
                     f"archive: {{dir: {workdir / 'archives'}}}\n")
    applied = hk(config, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    hubs.start(config).stop()
    attacker, victim = Student(f"{P}01"), Student(f"{P}02")
    students.made += [attacker, victim]  # their processes are killed at teardown
    names = [f"f{i:03d}" for i in range(FILES)]
    secret = b"DECOY-" + secrets.token_hex(16).encode()
    victim_secret = b"VICTIM-" + secrets.token_hex(16).encode()
    decoy = _decoy(workdir, "decoy", secret, names, 0o700)
    victim.python("""
        import os, sys
        for name in sys.argv[2:]:
            with open(name, "wb") as f:
                f.write(sys.argv[1].encode())
            os.chmod(name, 0o600)
    """, victim_secret.decode(), *names)
    # The attacker's own `work`, with the same names as the decoy and the victim's home,
    # and under work/<decoy's path> for when `work` points at `/`.
    attacker.python("""
        import os, sys
        decoy, victim, names = sys.argv[1], sys.argv[2], sys.argv[3:]
        for folder in ("work", "work" + decoy):
            os.makedirs(folder, exist_ok=True)
            for name in names:
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(b"the attacker's own work\\n")
        os.symlink(decoy, "to-decoy")
        os.symlink(victim, "to-victim")
        os.symlink("/", "to-root")
    """, str(decoy), str(victim.home), *names)
    yield Course(config, target, attacker, victim, decoy, secret, victim_secret)


def start_swapping(course: Course) -> None:
    course.attacker.start(SWAPPER, "to-decoy", "to-victim", "to-root")
    wait_for(course.attacker.home / ".swapping")


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Every regular file under `root` whose bytes hold `needle` (symlinks not followed)."""
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            if needle in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return found


def test_a_swapping_home_never_leaks_nor_loses_the_snapshot(course: Course) -> None:
    start_swapping(course)
    attacker, victim = course.attacker, course.victim
    warned = 0
    for run in range(3):
        if run == 2:  # and now the attacker also kills what reads its home, mid-copy
            attacker.python("open('big.bin', 'wb').write(__import__('os').urandom(50 << 20))")
            attacker.start(KILLER)
            wait_for(attacker.home / ".killing")
        taken = hk(course.config, "snapshot", "--json")
        assert taken.returncode == 0, f"run {run}: {taken.stdout}{taken.stderr}"
        (target,) = json.loads(taken.stdout)["targets"]
        assert target["ok"], target
        snapshot = Path(target["snapshot"])
        assert files_containing(snapshot, course.secret) == [], f"run {run}: decoy copied"
        leaked = files_containing(snapshot / "homes" / attacker.name, course.victim_secret)
        assert leaked == [], f"run {run}: the victim's files in the attacker's home"
        assert verify_snapshot(snapshot) == [], f"run {run}"
        incomplete = {item["source"]: item["why"] for item in target["incomplete"]}
        assert set(incomplete) <= {f"homes/{attacker.name}"}, incomplete
        warned += bool(incomplete)
        if run == 2:
            assert incomplete[f"homes/{attacker.name}"].startswith(
                "its reading side ended part-way"), target["incomplete"]
        # the victim's home is whole: every file, with its content
        copy = snapshot / "homes" / victim.name
        for path in victim.home.iterdir():
            if path.is_file() and not path.is_symlink():
                assert (copy / path.name).read_bytes() == path.read_bytes(), path
        manifest = json.loads((snapshot / "MANIFEST.json").read_text())
        assert set(manifest["incomplete"]) == set(incomplete)
        time.sleep(1.1)  # the next snapshot's name is the next second
    attacker.stop_all()
    assert warned >= 1, "the swaps never showed as a warning on the attacker's home"
    assert len(complete_snapshots(course.target)) == 3
    listing = hk(course.config, "snapshot", "list", "--json")
    shown = [item["incomplete"] for item in json.loads(listing.stdout)["targets"][0]
             ["snapshots"]]
    assert sum(bool(item) for item in shown) == warned


def test_a_link_to_a_root_only_file_is_never_copied_with_its_content(course: Course,
                                                                       workdir: Path) -> None:
    """A decoy folder anyone may enter, holding files only root may read: a link straight at
    one, and `work` swapped for a link to the folder while the copy runs."""
    names = [f"f{i:03d}" for i in range(FILES)]
    secret = b"ROOTONLY-" + secrets.token_hex(16).encode()
    open_decoy = _decoy(workdir, "open-decoy", secret, names, 0o755)
    attacker = course.attacker
    attacker.python("""
        import os, sys
        os.symlink(sys.argv[1] + "/f000", "direct")
        os.remove("to-decoy")
        os.symlink(sys.argv[1], "to-decoy")
    """, str(open_decoy))
    start_swapping(course)
    for run in range(3):
        taken = hk(course.config, "snapshot", "--json")
        assert taken.returncode == 0, f"run {run}: {taken.stdout}{taken.stderr}"
        (target,) = json.loads(taken.stdout)["targets"]
        snapshot = Path(target["snapshot"])
        assert files_containing(snapshot, secret) == [], f"run {run}: root-only file copied"
        direct = snapshot / "homes" / attacker.name / "direct"
        assert direct.is_symlink() and os.readlink(direct) == str(open_decoy / "f000")
        assert verify_snapshot(snapshot) == []
        time.sleep(1.1)
    assert all((open_decoy / name).read_bytes() == secret for name in names)
    assert os.stat(open_decoy / "f000").st_uid == 0


def tars_holding(archive: Path, needle: bytes) -> list[str]:
    """The .tar.zst files of an archive whose decompressed bytes hold `needle` (streamed:
    a tar may hold gigabytes of a sparse file's zeros)."""
    found = []
    for path in sorted(archive.rglob("*.tar.zst")):
        with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(
                raw, read_across_frames=True) as stream:
            tail = b""
            while chunk := stream.read(1 << 20):
                if needle in tail + chunk:
                    found.append(str(path.relative_to(archive)))
                    break
                tail = chunk[-len(needle):]
    return found


def test_an_archive_of_a_swapping_growing_home_holds_only_that_home(course: Course) -> None:
    attacker = course.attacker
    attacker.start(GROWER, str(256 << 20), str(1 << 40))
    wait_for(attacker.home / ".growing")
    start_swapping(course)
    started = time.monotonic()
    written = hk(course.config, "archive", "--json", timeout=150)
    took = time.monotonic() - started
    assert written.returncode == 0, written.stdout + written.stderr
    growing = attacker.home / "zz-growing.bin"
    final_size = growing.stat().st_size
    attacker.stop_all()
    growing.unlink()
    archive = Path(json.loads(written.stdout)["directory"])
    verified = hk(course.config, "archive", "verify", str(archive))
    assert verified.returncode == 0, verified.stdout
    assert tars_holding(archive, course.secret) == [], "the decoy's secret was archived"
    assert tars_holding(archive, course.victim_secret) == [f"users/{course.victim.name}.tar.zst"]
    manifest = json.loads((archive / "MANIFEST.json").read_text())
    members = {m["path"]: m for m in manifest["users"][attacker.name]["members"]}
    grown = members["zz-growing.bin"]["size"]
    assert 0 < grown < final_size, (grown, final_size)  # the size at open, not "until EOF"
    assert took < 120, f"the archive took {took:.0f} s"
