"""Course material that updates (materials:), as root with a real Linux account: a local git
repository is the instructor's; a real server start clones it into ~/<environment>/course as
the student; the instructor changes a notebook the student never touched and one the student
edited; `hubkeeper materials publish` and a restart bring the first and keep the second.
Everything pulled is the student's, and git's hooks in the student's clone run as the
student, never as root."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, journaled, write_config
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.component]

PASSWORD = "Correct-Horse-7"
GIT_ID = ["-c", "user.name=Instructor", "-c", "user.email=instructor@example.org"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *GIT_ID, *args], check=True,
                          capture_output=True, text=True).stdout


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def instructors_repo(where: Path) -> Path:
    repo = where / "course.git"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"week1.ipynb": "week 1\n", "week3.ipynb": "week 3, with a typo\n"},
           "the first weeks")
    return repo


def hubkeeper(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_CACHE_DIR": str(config.parent / "pip-cache")}
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, env=env, timeout=300)


async def in_server(url: str, name: str, code: str, start: bool = False) -> str:
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        if start:
            await user.start_server(deadline=120)
        await user.open_server()
        return await user.run_code(code)


async def restart(url: str, name: str) -> None:
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        await user.stop_server()
        await user.start_server(deadline=120)


def owners(tree: Path) -> set[int]:
    found = {tree.lstat().st_uid}
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            found.add(os.lstat(os.path.join(root, name)).st_uid)
    return found


@pytest.mark.root
def test_material_follows_the_instructor_and_keeps_the_students_edit(
        workdir: Path, hubs, accounts) -> None:
    ann = accounts(f"{P}1", password=PASSWORD)
    uid = pwd.getpwnam(ann).pw_uid
    repo = instructors_repo(workdir)
    extra = (f"environments:\n  py: {{}}\nmaterials:\n"
             f"  - {{repo: {repo}, target: course, environments: [py]}}\n"
             # a repository that is not there: logged, and the server starts anyway
             f"  - {{repo: {workdir}/gone.git, target: gone, timeout: 20s}}\n")
    config = write_config(workdir, mode="system", auth="pam", admins=(), allowed=(ann,),
                          extra=extra)
    built = hubkeeper(config, "env", "build", "-q")
    assert built.returncode == 0, built.stderr
    hub = hubs.start(journaled(config, ann))

    # The first start clones it, as the student, into ~/py/course.
    course = Path(pwd.getpwnam(ann).pw_dir) / "py" / "course"
    # The student edits week 3 in their server, and plants git hooks in their clone: a
    # pull that root ran would run them as root.
    plant = (
        "import os, pathlib\n"
        "c = pathlib.Path.home() / 'py' / 'course'\n"
        "(c / 'week3.ipynb').write_text('week 3, my answers\\n')\n"
        "for hook in ('post-merge', 'post-commit'):\n"
        "    p = c / '.git' / 'hooks' / hook\n"
        "    p.write_text('#!/bin/sh\\nid -u >> \"$HOME/hooks-ran-as\"\\n')\n"
        "    p.chmod(0o755)\n"
        "sorted(os.listdir(c))")
    listed = asyncio.run(in_server(hub.url, ann, plant, start=True))
    assert listed == "['.git', 'week1.ipynb', 'week3.ipynb']"
    assert owners(course) == {uid}
    log = (hub.state / "logs" / "hooks" / f"{ann}.log").read_text()
    assert f"materials: {course}: cloned (2 files)" in log
    assert f"{workdir}/gone.git could not be pulled into" in hub.log()
    assert "Traceback" not in log  # nbgitpuller's, for what the report says in one line

    # The instructor fixes week 1's notebook and week 3's typo, and adds week 4.
    commit(repo, {"week1.ipynb": "week 1, fixed\n", "week3.ipynb": "week 3, no typo\n",
                  "week4.ipynb": "week 4\n"}, "fixes and week 4")
    published = hubkeeper(config, "materials", "publish", "--json")
    assert published.returncode == 1, published.stdout + published.stderr  # gone.git failed
    result = json.loads(published.stdout)
    reports = {Path(pull["report"]["folder"]).name: pull for pull in result["pulls"]}
    assert reports["course"]["user"] == ann and reports["course"]["environment"] == "py"
    assert reports["course"]["report"]["status"] == "updated"
    assert reports["course"]["report"]["updated"] == ["week1.ipynb", "week4.ipynb"]
    assert reports["course"]["report"]["kept"] == ["week3.ipynb"]
    assert reports["gone"]["report"]["status"] == "failed"
    assert "gone.git" in reports["gone"]["report"]["error"]
    assert (course / "week1.ipynb").read_text() == "week 1, fixed\n"
    assert (course / "week3.ipynb").read_text() == "week 3, my answers\n"
    assert (course / "week4.ipynb").read_text() == "week 4\n"
    assert owners(course) == {uid}  # pulled as the student, not by root
    ran_as = Path(pwd.getpwnam(ann).pw_dir) / "hooks-ran-as"
    assert ran_as.read_text().split() and set(ran_as.read_text().split()) == {str(uid)}
    assert ran_as.stat().st_uid == uid
    text = hubkeeper(config, "materials", "publish", "--user", ann).stdout
    assert text.startswith(f"hub '{P}': materials published to 1 running server\n")
    assert f"{ann}: {course}: up to date" in text
    assert f"{ann}: {course.parent}/gone: failed: cannot read {workdir}/gone.git: " in text

    # A restart pulls too: the next fix of week 1 arrives, week 3 stays the student's.
    commit(repo, {"week1.ipynb": "week 1, fixed again\n"}, "another fix")
    asyncio.run(restart(hub.url, ann))
    assert (course / "week1.ipynb").read_text() == "week 1, fixed again\n"
    assert (course / "week3.ipynb").read_text() == "week 3, my answers\n"
    assert owners(course) == {uid}
    assert set(ran_as.read_text().split()) == {str(uid)}

    unknown = hubkeeper(config, "materials", "publish", "--user", f"{P}nobody")
    assert unknown.returncode == 2
    assert f"--user: '{P}nobody' is not on the roster" in unknown.stderr


def run_pull(repo: Path | str, folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-I", "-m", "hubkeeper.proc.materials", str(repo),
                           "", str(folder)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_folder_that_is_not_the_materials_clone_is_never_merged_into(workdir: Path) -> None:
    repo = instructors_repo(workdir)
    home = workdir / "home"
    (home / "course").mkdir(parents=True)
    (home / "course" / "mine.txt").write_text("the student's own\n")
    refused = run_pull(repo, home / "course")
    assert refused["status"] == "failed"
    assert refused["error"] == (f"{home}/course exists and is not a clone of {repo}; move it "
                                "away (or rename it) to receive the material")
    (workdir / "other").mkdir()
    other = instructors_repo(workdir / "other")
    assert run_pull(other, home / "theirs")["status"] == "cloned"
    wrong = run_pull(repo, home / "theirs")
    assert wrong["status"] == "failed" and f"is a clone of {other}, not of {repo}" in \
        wrong["error"]
    os.symlink("/etc", home / "link")
    assert "is a symbolic link" in run_pull(repo, home / "link")["error"]
    assert sorted(os.listdir(home / "course")) == ["mine.txt"]
    # The student deletes a notebook: the next pull brings it back (nbgitpuller's rule).
    assert run_pull(repo, home / "fresh")["status"] == "cloned"
    (home / "fresh" / "week1.ipynb").unlink()
    assert run_pull(repo, home / "fresh")["status"] == "unchanged"
    assert (home / "fresh" / "week1.ipynb").read_text() == "week 1\n"
