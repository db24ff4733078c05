"""Issue 4's whole promise in one course, as real students: an instructor declares two
environments, a read-only dataset, a group-writable project folder and two start-up scripts,
runs `hubkeeper apply` once, starts the hub, and each student gets exactly that."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import HUBKEEPER, free_ports
from tests.support.simuser import run_once

pytestmark = [pytest.mark.component, pytest.mark.root]

ANN, BO, LAB = f"{P}01", f"{P}02", f"{P}lab"
DATA = Path(f"/srv/{P}-course-data")
PROJECT = Path(f"/srv/{P}-course-projects/lab")


@pytest.fixture
def course(workdir: Path, clean_accounts):
    for path in (DATA, PROJECT.parent):
        shutil.rmtree(path, ignore_errors=True)
    yield workdir
    for path in (DATA, PROJECT.parent):
        shutil.rmtree(path, ignore_errors=True)


def write_course(workdir: Path) -> Path:
    (workdir / "class.csv").write_text(f"username,groups\n{ANN},{LAB}\n{BO},\n")
    (workdir / "tpl").mkdir(mode=0o755)
    (workdir / "tpl" / "week1.txt").write_text("read me first\n")
    os.chmod(workdir / "tpl" / "week1.txt", 0o644)
    hooks = workdir / "hooks"
    hooks.mkdir(mode=0o755)
    out = workdir / "out"
    out.mkdir()
    os.chmod(out, 0o777)  # the as_user hook writes here too (mkdir's mode meets the umask)
    for name, line in (("root.sh", f'echo "root $(id -u) $HUBKEEPER_USER" >> {out}/log; '
                                   f'chmod 666 {out}/log'),
                       ("user.sh", f'echo "user $(id -u) $HUBKEEPER_ENVIRONMENT" >> {out}/log')):
        (hooks / name).write_text(f"#!/bin/sh\n{line}\n")
        os.chmod(hooks / name, 0o755)
    port, api_port, proxy_port = free_ports(3)
    config = workdir / "hub.yaml"
    config.write_text(f"""\
hub: {{name: course, port: {port}, api_port: {api_port}, state_dir: state}}
proxy: {{api_port: {proxy_port}}}
users:
  roster: {{csv: class.csv}}
environments:
  basics: {{packages: [tabulate], default: true}}
  lab: {{packages: [toolz], groups: [{LAB}], home_template: tpl}}
data:
  shared: [{{path: {DATA}, link: data}}]
  group_folders: [{{path: {PROJECT}, group: {LAB}, link: project}}]
hooks:
  as_root: [{{script: hooks/root.sh}}]
  as_user: [{{script: hooks/user.sh}}]
""")
    return config


async def visit(url: str, name: str, password: str, environment: str | None,
                code: str) -> str:
    return await run_once(url, name, password, code,
                          body={"environment": environment} if environment else None)


PROBE = """\
import json, os, sys
def attempt(path):
    try:
        open(path, 'w').write('x'); return 'written'
    except OSError as exc:
        return type(exc).__name__
r = {'cwd': os.getcwd(),
     'env': os.path.basename(os.path.dirname(os.path.realpath(sys.prefix))),
     'dataset': open(os.path.expanduser('~/data/scores.csv')).read(),
     'write_data': attempt(os.path.expanduser('~/data/mine.txt')),
     'project': attempt(os.path.expanduser('~/project/notes.txt')),
     'week1': os.path.exists('week1.txt')}
for m in ('tabulate', 'toolz'):
    try:
        __import__(m); r[m] = True
    except ImportError:
        r[m] = False
json.dumps(r)"""


def test_a_course_in_one_apply(course: Path, hubs) -> None:
    config = write_course(course)
    env = {**os.environ, "PIP_CACHE_DIR": str(course / "pip-cache")}
    applied = subprocess.run([HUBKEEPER, "--config", str(config), "apply"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert applied.returncode == 0, applied.stderr
    (DATA / "scores.csv").write_text("a,b\n1,2\n")
    os.chmod(DATA / "scores.csv", 0o644)
    passwords: dict[str, str] = {}
    for path in (course / "state" / "credentials").glob("*.csv"):
        with open(path) as handle:
            passwords.update({r["username"]: r["password"] for r in csv.DictReader(handle)})
    again = subprocess.run([HUBKEEPER, "--config", str(config), "plan", "--json"],
                           capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["actions"] == []  # one apply did it all

    hub = hubs.start(config)
    import ast

    ann = json.loads(ast.literal_eval(asyncio.run(
        visit(hub.url, ANN, passwords[ANN], "lab", PROBE))))
    home = pwd.getpwnam(ANN).pw_dir
    assert ann == {"cwd": f"{home}/lab", "env": "lab", "dataset": "a,b\n1,2\n",
                   "write_data": "PermissionError", "project": "written", "week1": True,
                   "tabulate": False, "toolz": True}
    bo = json.loads(ast.literal_eval(asyncio.run(visit(
        hub.url, BO, passwords[BO], None,
        PROBE.replace("'project': attempt(os.path.expanduser('~/project/notes.txt'))",
                      "'project': os.path.exists(os.path.expanduser('~/project'))")))))
    home = pwd.getpwnam(BO).pw_dir
    assert bo == {"cwd": f"{home}/basics", "env": "basics", "dataset": "a,b\n1,2\n",
                  "write_data": "PermissionError", "project": False, "week1": False,
                  "tabulate": True, "toolz": False}
    uid_ann, uid_bo = (pwd.getpwnam(n).pw_uid for n in (ANN, BO))
    assert (course / "out" / "log").read_text().splitlines() == [
        f"root 0 {ANN}", f"user {uid_ann} lab", f"root 0 {BO}", f"user {uid_bo} basics"]
