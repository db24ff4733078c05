"""A student attacks `hubkeeper retire` (issue 17, finding 1): folders in their home or in a
data folder swapped for links to root's folders, so that removing theirs removes root's.
Retire removes by directory descriptors (shutil.rmtree with dir_fd), never through a link,
not even at the top of what it removes."""

from __future__ import annotations

import contextlib
import os
import pwd
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.lifecycle.removal import remove_tree
from hubkeeper.lifecycle.retirement import tree_problem
from tests.attacks.homes_support import course, decoy, fingerprint, hk, wait_for

pytestmark = [pytest.mark.component, pytest.mark.root]

# The student's loop in a folder they can write that holds a folder of root's about to be
# removed: keep swapping it for a link to the decoy and back (plain renames in one folder).
SWAP_BACK_AND_FORTH = """
import os, sys, time
folder, decoy, ready = sys.argv[1:4]
aside = folder + ".real"
open(ready, "w").close()
end = time.time() + 120
while time.time() < end:
    try:
        os.rename(folder, aside)
        os.symlink(decoy, folder)
        time.sleep(0.0003)
        os.unlink(folder)
        os.rename(aside, folder)
        time.sleep(0.0001)
    except OSError:
        pass
"""


def test_retire_removes_a_home_without_following_the_links_in_it(workdir: Path,
                                                                  students) -> None:
    config, (student,) = course(workdir, students, "t1", more="archive: {dir: archives}\n")
    target = decoy(workdir)
    before = fingerprint(target)
    student.python("open('notes.txt', 'w').write('week 1\\n')")
    # folders of the student's swapped for links to root's folder and to its file
    student.run("ln", "-s", str(target), "work")
    student.run("ln", "-s", str(target / "sub"), "data")
    student.run("ln", "-s", str(target / "passwd"), "passwd")
    home = student.home
    archived = hk(config, "archive")
    assert archived.returncode == 0, archived.stdout + archived.stderr

    done = hk(config, "retire", "--yes")

    assert done.returncode == 0, done.stdout + done.stderr
    assert not os.path.lexists(home)
    assert fingerprint(target) == before, "retire removed or changed root's folder"


def test_removal_never_follows_a_folder_swapped_for_a_link(workdir: Path, students) -> None:
    student = students.make("t2")
    target = decoy(workdir)
    before = fingerprint(target)
    parent = workdir / "theirs"  # a data folder's parent the student can write: worst case
    parent.mkdir()
    os.chown(parent, student.uid, student.uid)
    folder = parent / "data"
    ready = student.home / ".ready"
    student.start(SWAP_BACK_AND_FORTH, str(folder), str(target), str(ready),
                  log=workdir / "attacker.log")
    wait_for(ready)
    tried = 0
    for _ in range(1500):
        if not os.path.lexists(folder) and not os.path.lexists(f"{folder}.real"):
            stage = workdir / "stage"  # made aside and moved in: never written through a link
            stage.mkdir()
            (stage / "results.csv").write_text("root's data folder\n")
            with contextlib.suppress(OSError):
                stage.rename(folder)
            if stage.exists():
                remove_tree(stage)
        # what Remover.data does: the check, then the removal
        with contextlib.suppress(HubkeeperError):
            if tree_problem(folder, 0, {}) is None:
                tried += 1
                remove_tree(folder)
    assert target.is_dir(), "root removed root's folder through a link"
    assert fingerprint(target) == before, "root removed what was in root's folder"
    assert tried, "the removal ran"
    assert pwd.getpwuid(os.lstat(parent).st_uid).pw_name == student.name
