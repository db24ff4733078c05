"""A student attacks root's work in homes (issue 17, findings 1 and 8): the making of a home
(`apply`'s create-home, the spawner's ensure_home), the links `apply` puts in homes, the
seeding of ~/<environment>/ and `hubkeeper usage`'s walk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.host.dirs import link_in_home
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.hub.spawner import LocalSpawner
from hubkeeper.verbs.usage import tally
from tests.attacks.homes_support import (
    EXCHANGER,
    decoy,
    fingerprint,
    journal_of,
    wait_for,
)

pytestmark = [pytest.mark.component, pytest.mark.root]


def skeleton(workdir: Path, count: int) -> Path:
    """A skeleton (root's) with `count` folders d000.., each with a file and a folder named
    like the decoy's, so a walk by path that went into the decoy would chown its things."""
    skel = workdir / "skel"
    for i in range(count):
        (skel / f"d{i:03}" / "sub").mkdir(parents=True)
        (skel / f"d{i:03}" / "passwd").write_text("a starter file\n")
    (skel / ".profile").write_text("# the course's profile\n")
    os.chmod(skel, 0o755)
    return skel


def test_a_home_being_made_is_never_walked_while_its_owner_can_swap_folders(
        workdir: Path, students) -> None:
    student = students.make("h1")
    target = decoy(workdir)
    before = fingerprint(target)
    skel = skeleton(workdir, 300)
    homes = workdir / "homes"
    homes.mkdir(mode=0o755)
    new_home = homes / student.name
    ready = student.home / ".ready"
    # the student watches for the new home to become theirs, then swaps its folders
    student.start(EXCHANGER, str(target), str(ready), "300", str(new_home),
                  log=workdir / "attacker.log")
    wait_for(ready)

    entry = pwd.getpwnam(student.name)
    ShadowTools(skeleton=skel).create_home(student.name, str(new_home), entry.pw_uid,
                                           entry.pw_gid)

    assert fingerprint(target) == before, "root chowned the decoy while making the home"
    info = new_home.lstat()
    assert (info.st_uid, info.st_mode & 0o777) == (student.uid, 0o700)
    assert (new_home / ".profile").read_text() == "# the course's profile\n"
    assert (new_home / ".profile").stat().st_uid == student.uid


# The student's loop where a home is made in a folder they can write: whenever the new
# home is there as a folder, move it away and put a link to the decoy in its place, so that
# a chmod or chown by path after the mkdir lands on the decoy.
SWAP_NEW_HOME = """
import os, sys, time
decoy, home, ready = sys.argv[1:4]
open(ready, "w").close()
end = time.time() + 120
n = 0
while time.time() < end:
    try:
        if not os.path.islink(home):
            os.rename(home, f"{home}.{n}")
            n += 1
            os.symlink(decoy, home)
    except OSError:
        pass
"""

# The student's loop against a link made as root and then chowned by path: replace the new
# link with a hard link to a root's file they may write (so the kernel lets them link it),
# and root's chown lands on that file.
SWAP_NEW_LINK = """
import os, sys, time
victim, ready = sys.argv[1:3]
open(ready, "w").close()
end = time.time() + 120
while time.time() < end:
    try:
        if not os.path.lexists("hard"):
            os.link(victim, "hard")
        if os.path.islink("shared"):
            os.rename("hard", "shared")
    except OSError:
        pass
"""


def test_a_home_is_never_made_over_a_planted_link(workdir: Path, students) -> None:
    student = students.make("h2")
    target = decoy(workdir)
    os.chmod(target, 0o755)
    before = fingerprint(target)
    parent = workdir / "theirs"  # a parent the student can write: the worst case
    parent.mkdir()
    os.chown(parent, student.uid, student.uid)
    planted = parent / "home"
    student.run("ln", "-s", str(target), str(planted))  # (the student's cwd below)
    entry = pwd.getpwnam(student.name)

    # the spawner's first start makes the missing home, while the student swaps it
    ready = student.home / ".ready"
    subprocess.run(["usermod", "--home", str(planted), student.name], check=True)
    spawner = LocalSpawner(user=SimpleNamespace(name=student.name, groups=[]),
                           journal_path=journal_of(workdir, student))
    student.start(SWAP_NEW_HOME, str(target), str(planted), str(ready),
                  log=workdir / "attacker.log")
    wait_for(ready)
    for _ in range(300):
        if planted.is_symlink():
            planted.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # a start that fails is fine; a chown is not
            spawner.ensure_home()
    assert fingerprint(target) == before, "root chowned or chmodded the decoy"

    student.stop_all()  # and `apply`'s create-home never makes a home over a link
    if not planted.is_symlink():
        if planted.exists():
            planted.rename(parent / "made")
        planted.symlink_to(target)
    with pytest.raises(HubkeeperError, match="exists already"):
        ShadowTools(skeleton=skeleton(workdir, 2)).create_home(
            student.name, str(planted), entry.pw_uid, entry.pw_gid)
    assert fingerprint(target) == before


def test_apply_links_into_a_home_are_made_by_its_owner(workdir: Path, students) -> None:
    student = students.make("h3")
    target = decoy(workdir)
    os.chmod(target / "passwd", 0o666)  # root's, but the student may write (and link) it
    before = fingerprint(target)
    ready = student.home / ".ready"
    student.start(SWAP_NEW_LINK, str(target / "passwd"), str(ready),
                  log=workdir / "attacker.log")
    wait_for(ready)
    made = student.home / "shared"
    for _ in range(300):
        made.unlink(missing_ok=True)
        link_in_home(student.name, "shared", str(target))
    assert fingerprint(target) == before, "root chowned root's file through a swapped link"

    student.stop_all()
    made.unlink(missing_ok=True)
    link_in_home(student.name, "shared", str(target))
    assert os.readlink(made) == str(target)
    assert made.lstat().st_uid == student.uid
    link_in_home(student.name, "shared", "/elsewhere")  # a name that exists is left alone
    assert os.readlink(made) == str(target)


def test_seeding_never_writes_through_a_link_the_student_planted(workdir: Path,
                                                                 students) -> None:
    student = students.make("h4")
    target = decoy(workdir)
    before = fingerprint(target)
    template = workdir / "template"
    (template / "sub").mkdir(parents=True)
    (template / "week1.ipynb").write_text("{}\n")
    (template / "sub" / "shadow").write_text("the course's copy\n")
    (template / "passwd").write_text("the course's copy\n")
    os.chmod(template, 0o755)
    os.chmod(template / "sub", 0o755)
    # ~/python/ will be seeded: the student makes its sub/ a link to the decoy, and its
    # passwd a link to the decoy's passwd
    student.run("mkdir", "-p", "python")
    student.run("ln", "-s", str(target / "sub"), "python/sub")
    student.run("ln", "-s", str(target / "passwd"), "python/passwd")
    spawner = LocalSpawner(user=SimpleNamespace(name=student.name, groups=[]),
                           journal_path=journal_of(workdir, student),
                           environments={"python": {"path": str(workdir / "envs"),
                                                    "groups": [],
                                                    "home_template": str(template)}})

    folder = asyncio.run(spawner.seed_environment_folder("python"))

    assert fingerprint(target) == before, "seeding wrote through the student's links"
    assert folder == str(student.home / "python")
    assert (student.home / "python" / "week1.ipynb").stat().st_uid == student.uid


def test_usage_is_never_steered_out_of_the_home(workdir: Path, students) -> None:
    student = students.make("h5")
    big = workdir / "big"  # root's, large: a walk that follows links would count it
    big.mkdir()
    (big / "data").write_bytes(b"\0" * (8 << 20))
    os.chmod(big, 0o755)
    student.python("open('mine', 'w').write('x' * 1000)")
    student.run("ln", "-s", str(big), "through")
    # and a folder swapped for a link while root walks, over and over
    student.run("mkdir", "-p", "d000")
    ready = student.home / ".ready"
    student.start(EXCHANGER, str(big), str(ready), "1", str(student.home),
                  log=workdir / "attacker.log")
    wait_for(ready)
    for _ in range(200):
        counted = tally(str(student.home))
        assert counted.bytes < 1 << 20, "usage counted root's folder behind a link"
    shutil.rmtree(big)
