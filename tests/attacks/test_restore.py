"""A student attacks the operator's `hubkeeper restore` of their own files (issue 17,
finding 1): links planted where root used to write, and folders swapped while root walked.

The restore writes into a home as the home's owner (rsync's receiving side runs as that
account), so whatever a student plants can only steer writes the student could make."""

from __future__ import annotations

import datetime as dt
import pwd
from pathlib import Path

import pytest

from tests.attacks.homes_support import EXCHANGER, course, decoy, fingerprint, hk, wait_for

pytestmark = [pytest.mark.component, pytest.mark.root]

# The student's loop: keep ~/before-restore-<every second of the next 20> pointing at the
# decoy, as the issue describes (the name is the UTC second of the restore).
HOLD_ASIDE_LINKS = """
import datetime as dt, os, sys, time
decoy, ready = sys.argv[1], sys.argv[2]
end = time.time() + 120
while time.time() < end:
    now = dt.datetime.now(dt.timezone.utc)
    for ahead in range(20):
        stamp = (now + dt.timedelta(seconds=ahead)).strftime("%Y%m%dT%H%M%S")
        try:
            os.symlink(decoy, f"before-restore-{stamp}")
        except FileExistsError:
            pass
    open(ready, "w").close()
    time.sleep(0.05)
"""


def test_links_held_at_the_set_aside_name_never_reach_roots_folder(workdir: Path,
                                                                   students) -> None:
    config, (student,) = course(workdir, students, "r1")
    home = student.home
    student.python("open('notes.txt', 'w').write('as handed in\\n')")
    taken = hk(config, "snapshot")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    # a size of its own: rsync's quick check must see a change, whatever the clock says
    student.python("open('notes.txt', 'w').write('broken since the snapshot\\n')")
    target = decoy(workdir)
    before = fingerprint(target)
    ready = home / ".links-ready"
    student.start(HOLD_ASIDE_LINKS, str(target), str(ready), log=workdir / "attacker.log")
    wait_for(ready)
    assert any(home.glob("before-restore-*")), "the student's links are in place"

    done = hk(config, "restore", student.name, "notes.txt")

    assert fingerprint(target) == before, "root's folder was written or chowned"
    if done.returncode == 0:
        notes = home / "notes.txt"
        assert notes.read_text() == "as handed in\n"
        assert notes.stat().st_uid == student.uid
    else:  # the student's own link stopped the student's own restore: a clear error
        assert "rsync failed restoring notes.txt" in done.stderr, done.stderr
        assert (home / "notes.txt").read_text() == "broken since the snapshot\n"


def test_folders_swapped_inside_the_set_aside_folder_are_never_walked(workdir: Path,
                                                                      students) -> None:
    config, (student,) = course(workdir, students, "r2")
    home = student.home
    # many folders, each with a folder with a file the restore sets aside: the walk of the
    # set-aside folder by path that chowned folders went through hundreds of names, each a
    # chance for the student's exchange to land between its check and its use
    student.python("""
        import os
        for i in range(400):
            os.makedirs(f"d{i:03}/sub", exist_ok=True)
            open(f"d{i:03}/sub/f", "w").write("as handed in\\n")
    """)
    taken = hk(config, "snapshot")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    student.python("""
        for i in range(400):
            open(f"d{i:03}/sub/f", "w").write("changed\\n")
    """)
    target = decoy(workdir)
    before = fingerprint(target)
    ready = home / ".swapper-ready"
    now = dt.datetime.now(dt.timezone.utc)  # the set-aside folder is named by the second
    watched = [f"before-restore-{(now + dt.timedelta(seconds=s)):%Y%m%dT%H%M%S}"
               for s in range(-2, 90)]
    student.start(EXCHANGER, str(target), str(ready), "400", *watched,
                  log=workdir / "attacker.log")
    wait_for(ready)

    done = hk(config, "restore", student.name)

    assert fingerprint(target) == before, "root chowned or wrote root's folder"
    (aside,) = home.glob("before-restore-*")
    assert aside.lstat().st_uid == student.uid, "the set-aside folder is the student's"
    if done.returncode == 0:
        assert (home / "d000" / "sub" / "f").read_text() == "as handed in\n"
        assert (home / "d399" / "sub" / "f").stat().st_uid == student.uid
    else:  # the student's links broke the student's own restore: a clear error
        assert "rsync failed restoring everything" in done.stderr, done.stderr


def test_restore_to_a_folder_in_a_home_is_written_by_that_homes_owner(workdir: Path,
                                                                      students) -> None:
    config, (alice, bob) = course(workdir, students, "r3", "r4")
    bob.python("open('thesis.md', 'w').write('bob\\'s thesis\\n')")
    taken = hk(config, "snapshot")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    target = decoy(workdir)
    before = fingerprint(target)
    # alice knows the operator will look at bob's files in her home, and plants a link there
    alice.run("ln", "-s", str(target), "inspect")

    done = hk(config, "restore", bob.name, "--to", str(alice.home / "inspect"))

    assert fingerprint(target) == before, "root wrote bob's files into root's folder"
    assert done.returncode == 1
    assert f"as uid {alice.uid}" in done.stderr, done.stderr

    # a folder of root's is written by root, with the snapshot's owners
    elsewhere = workdir / "inspection"
    copied = hk(config, "restore", bob.name, "--to", str(elsewhere))
    assert copied.returncode == 0, copied.stderr
    thesis = elsewhere / "thesis.md"
    assert thesis.read_text() == "bob's thesis\n"
    assert thesis.stat().st_uid == pwd.getpwnam(bob.name).pw_uid
