"""A student attacks `hubkeeper export` of their home (issue 17, finding 8): a file that
keeps growing while root reads it. Export reads a file up to the size it had when opened,
and says in its report that the file changed."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.attacks.homes_support import course, decoy, fingerprint, hk, wait_for

pytestmark = [pytest.mark.component, pytest.mark.root]

# The student's loop: the moment root opens the file (inotify IN_OPEN), keep making it
# 1 GiB longer every few milliseconds (a sparse file: no disk is used), for two minutes.
GROW_WHEN_OPENED = """
import ctypes, os, sys, time
path, ready = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
IN_OPEN = 0x20
watch = libc.inotify_init()
assert libc.inotify_add_watch(watch, path.encode(), IN_OPEN) >= 0
open(ready, "w").close()
os.read(watch, 4096)  # blocks until someone opens the file
fd = os.open(path, os.O_WRONLY)
size = os.fstat(fd).st_size
end = time.time() + 120
while time.time() < end:
    size += 1 << 30
    os.ftruncate(fd, size)
    time.sleep(0.005)
"""


def test_export_of_a_file_that_keeps_growing_ends(workdir: Path, students) -> None:
    config, (student,) = course(workdir, students, "e1")
    student.python("open('growing.log', 'wb').write(b'line\\n' * 200_000)")  # ~1 MB
    student.python("open('notes.txt', 'w').write('mine\\n')")
    ready = student.home / ".ready"
    student.start(GROW_WHEN_OPENED, str(student.home / "growing.log"), str(ready),
                  log=workdir / "attacker.log")
    wait_for(ready)
    out = workdir / "zips"

    try:
        done = hk(config, "export", student.name, "--to", str(out), timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("export was still reading the growing file after 90 s")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "growing.log: its size changed from 1000000 to" in done.stdout, done.stdout
    assert (student.home / "growing.log").stat().st_size > 1 << 30, "the attack ran"
    (made,) = out.glob("*.zip")
    with zipfile.ZipFile(made) as archive:
        assert archive.getinfo("growing.log").file_size == 1_000_000
        assert archive.read("notes.txt") == b"mine\n"
        assert archive.testzip() is None


def test_export_never_writes_the_zip_through_a_students_link(workdir: Path,
                                                             students) -> None:
    config, (student,) = course(workdir, students, "e2")
    target = decoy(workdir)
    before = fingerprint(target)
    student.run("ln", "-s", str(target), "zips")  # where the operator will put the zip

    done = hk(config, "export", student.name, "--to", str(student.home / "zips"))

    assert done.returncode == 1, done.stdout
    assert f"uid {student.uid} owns a folder on the way there" in done.stderr, done.stderr
    assert fingerprint(target) == before, "root wrote the zip into root's folder"

    # A folder to be made under the link: refused before root makes anything there.
    done = hk(config, "export", student.name, "--to", str(student.home / "zips" / "new"))
    assert done.returncode == 1, done.stdout
    assert f"uid {student.uid} owns a folder on the way there" in done.stderr, done.stderr
    assert fingerprint(target) == before, "root made a folder in root's folder"
