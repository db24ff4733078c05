"""A student attacks `hubkeeper users remove` (issue 19): root archives their home and then
removes it, so links in the home to root's files must neither be read into the archive nor
followed by the removal."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from tests.attacks.homes_support import course, decoy, fingerprint, hk

pytestmark = [pytest.mark.component, pytest.mark.root]


def members(archive: Path, user: str) -> dict[str, tarfile.TarInfo]:
    raw = zstandard.ZstdDecompressor().stream_reader(
        (archive / "users" / f"{user}.tar.zst").open("rb")).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {member.name.removeprefix("./"): member for member in tar.getmembers()}


def test_remove_archives_links_as_links_and_never_removes_through_them(workdir: Path,
                                                                        students) -> None:
    config, (student,) = course(workdir, students, "r1", more="archive: {dir: archives}\n")
    target = decoy(workdir)
    before = fingerprint(target)
    student.python("open('notes.txt', 'w').write('week 1\\n')")
    student.run("ln", "-s", str(target), "work")  # a folder of root's
    student.run("ln", "-s", str(target / "passwd"), "passwd")  # a file of root's
    student.run("ln", "-s", "/etc/shadow", "shadow")
    home = student.home
    (workdir / "class.csv").write_text("username\n")  # the operator takes the row out first

    done = hk(config, "users", "remove", student.name, "--yes", "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    assert not os.path.lexists(home)
    assert fingerprint(target) == before, "users remove changed root's folder"
    archive = Path(json.loads(done.stdout)["archive"])
    found = members(archive, student.name)
    for name, points_to in (("work", str(target)), ("passwd", str(target / "passwd")),
                            ("shadow", "/etc/shadow")):
        assert found[name].issym() and found[name].linkname == points_to, name
    assert not any(name.startswith("work/") for name in found), "root's folder was archived"
    assert found["notes.txt"].isfile()
