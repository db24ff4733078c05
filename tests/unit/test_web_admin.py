"""The instructor's page's pure parts: what an action may become on the command line, what
is refused, the page's templates with real shapes, and the progress lines."""

from __future__ import annotations

import datetime as dt
import html
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.template import Loader

from hubkeeper.base import progress
from hubkeeper.context.hub import Hub
from hubkeeper.lifecycle import webadmin
from hubkeeper.lifecycle.userfiles import Refused
from hubkeeper.proc.webpage import TEMPLATES, age_text, size_text
from hubkeeper.render.schedule import next_start

HUB = """\
hub: {name: webadm, mode: personal}
users:
  admins: [teacher]
  groups: {students: [ann, bob]}
  locked: [bob]
  roster: {csv: roster.csv}
environments:
  python: {packages: []}
archive: {dir: archive}
"""


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    (tmp_path / "hub.yaml").write_text(HUB)
    (tmp_path / "roster.csv").write_text("username,groups\nann,students\n")
    return Hub.open(tmp_path / "hub.yaml", euid=1000)


def test_actions_become_fixed_commands(hub: Hub, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    assert webadmin.command_for(hub, "lock", {"name": "ann"}, uploads) == \
        ["users", "lock", "ann", "--json"]
    assert webadmin.command_for(hub, "add", {"name": "cat", "groups": ["students"]},
                                uploads) == ["users", "add", "cat", "-g", "students", "--json"]
    assert webadmin.command_for(hub, "prewarm", {"group": "students"}, uploads) == \
        ["prewarm", "--group", "students", "--json"]
    assert webadmin.command_for(hub, "rebuild", {"environment": "python"}, uploads) == \
        ["env", "rebuild", "python", "--json"]
    assert webadmin.command_for(hub, "snapshot", {}, uploads) == ["snapshot", "--json"]
    assert webadmin.command_for(hub, "archive", {}, uploads) == ["archive", "--json"]


@pytest.mark.parametrize(("action", "args", "why"), [
    ("shell", {}, "unknown action 'shell'"),
    ("lock", {}, "lock takes exactly name"),
    ("lock", {"name": "ann", "extra": 1}, "lock takes exactly name"),
    ("lock", {"name": "--all"}, "not a user name"),
    ("lock", {"name": "root; rm -rf /"}, "not a user name"),
    ("lock", {"name": "zed"}, "'zed' is not on the roster"),
    ("add", {"name": "ann", "groups": []}, "'ann' is already on the roster"),
    ("add", {"name": "cat", "groups": "students"}, "groups is a list"),
    ("add", {"name": "cat", "groups": ["-x"]}, "starts with '-'"),
    ("prewarm", {"group": "teachers"}, "not a group of the roster"),
    ("rebuild", {"environment": "../../etc"}, "not an environment of hub.yaml"),
    ("roster", {"upload": "../../../etc/shadow"}, "not an uploaded roster"),
    ("roster", {"upload": "a" * 64}, "was not uploaded"),
])
def test_anything_else_is_refused(hub: Hub, tmp_path: Path, action: str, args: dict,
                                  why: str) -> None:
    with pytest.raises(Refused, match=why):
        webadmin.command_for(hub, action, args, tmp_path / "uploads")


def test_only_an_active_admin_is_one(hub: Hub) -> None:
    assert webadmin.check_admin(hub, "teacher") == "teacher"
    for name in ("ann", "bob", "root", "", 7, "teacher/.."):
        with pytest.raises(Refused):
            webadmin.check_admin(hub, name)


def test_an_uploaded_roster_is_checked_by_line_then_planned(hub: Hub, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    bad = webadmin.check_roster(hub, "username,groups\nann,students\nBad Name,x\n", uploads,
                                "class.csv")
    (problem,) = bad["problems"]
    assert (problem["line"], problem["field"]) == (3, "username")
    assert "'Bad Name' is not a portable Linux name" in problem["message"]
    good = webadmin.check_roster(hub, "username,groups\nann,students\ncat,students\n",
                                 uploads, "class.csv")
    assert good["problems"] == [] and good["users"] == 4  # ann, cat, teacher, bob
    stored = webadmin.uploaded(uploads, good["upload"])
    assert stored.read_text().endswith("cat,students\n")
    assert stored.stat().st_mode & 0o777 == 0o600
    # the roster in place is untouched until an admin applies it
    assert (tmp_path / "roster.csv").read_text() == "username,groups\nann,students\n"
    with pytest.raises(Refused, match="at most"):
        webadmin.check_roster(hub, "x" * (webadmin.MAX_ROSTER + 1), uploads, "big.csv")


def test_credentials_are_read_only_from_the_hubs_credentials_folder(tmp_path: Path) -> None:
    folder = tmp_path / "credentials"
    folder.mkdir()
    (folder / "credentials-1.csv").write_text("username,password\nann,s3cret-pw\n")
    (tmp_path / "elsewhere.csv").write_text("username,password\nx,y\n")
    assert webadmin.credentials_in(tmp_path, str(folder / "credentials-1.csv")) == \
        [{"username": "ann", "password": "s3cret-pw"}]
    assert webadmin.credentials_in(tmp_path, str(tmp_path / "elsewhere.csv")) == []
    assert webadmin.credentials_in(tmp_path, str(folder / ".." / "elsewhere.csv")) == []
    assert webadmin.credentials_in(tmp_path, None) == []


def test_the_next_class() -> None:
    window = {"days": ["mon", "wed"], "start": "09:00", "end": "11:00"}
    monday = dt.datetime(2026, 12, 7, 8, 0)
    assert next_start(window, monday) == dt.datetime(2026, 12, 7, 9, 0)
    assert next_start(window, monday.replace(hour=10)) == dt.datetime(2026, 12, 7, 9, 0)
    assert next_start(window, monday.replace(hour=12)) == dt.datetime(2026, 12, 9, 9, 0)
    assert next_start(window, dt.datetime(2026, 12, 10, 12)) == dt.datetime(2026, 12, 14, 9)


def test_progress_lines_only_when_asked(tmp_path: Path) -> None:
    assert progress.last_step("x\nhubkeeper-progress 2 5 add ann\ny\n") == (2, 5, "add ann")
    assert progress.last_step("nothing") is None
    (tmp_path / "hub.yaml").write_text("hub: {name: prog, mode: personal, state_dir: "
                                       f"{tmp_path / 'state'}}}\nusers: {{allowed: [a, b]}}\n")
    command = [sys.executable, "-m", "hubkeeper", "-c", str(tmp_path / "hub.yaml"), "apply"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert progress.PREFIX not in quiet.stderr


GLANCE = {
    "roster": [{"name": "ann", "groups": ["students"], "admin": False, "locked": False},
               {"name": "bob", "groups": [], "admin": False, "locked": True}],
    "groups": ["students"], "environment_names": ["python"], "can_archive": True,
    "roster_csv": "roster.csv",
    "servers": [{"name": "ann", "state": "running", "memory": 52 << 20, "cpu": 3.5,
                 "last_activity": "2026-12-07T10:00:00Z"}],
    "servers_error": None, "waiting": 2.0,
    "next_class": {"group": "students", "start": "Mon 2026-12-07 09:00", "end": "11:00"},
    "homes": [{"user": "ann", "bytes": 5e6}, {"user": "bob", "bytes": 1e3}],
    "free": [{"path": "/home", "bytes": 7e10}], "metrics_error": None,
    "snapshots": [{"target": "/backup", "age": 90000.0, "failed": False, "why": None,
                   "stale": True}],
    "environments": {"environments": [{"name": "python", "default": True, "current": "b1",
                                       "builds": ["b1"], "up_to_date": True}]},
    "environments_error": None,
    "doctor": {"findings": [{"status": "warning", "subject": "disk", "explanation": "low"},
                            {"status": "ok", "subject": "hub", "explanation": "fine"}]},
    "doctor_error": None,
}


def render(name: str, **values) -> str:
    namespace = {"xsrf_form_html": lambda: '<input name="_xsrf">'}
    loader = Loader(str(TEMPLATES))
    page = loader.load(name).generate(
        _tt_modules=type("M", (), {"xsrf_form_html": staticmethod(
            namespace["xsrf_form_html"])}), **values).decode()
    return html.unescape(page)


def test_the_admin_page_shows_every_part() -> None:
    jobs = [{"id": "J1", "started": "2026-12-07T10:00:00+00:00", "admin": "teacher",
             "command": "hubkeeper users lock bob --json", "state": "done"}]
    page = render("admin.html", user="teacher", prefix="/services/hubkeeper/", seen=GLANCE,
                  jobs=jobs, size_text=size_text, age_text=age_text)
    assert 'data-user="ann"' in page and "52.0 MiB" in page and "3.5 %" in page
    assert "Waiting in the line of starts: 2" in page and "Mon 2026-12-07 09:00" in page
    assert 'class="stale"' in page and "1.0 days ago" in page  # older than a day: red
    assert "warning: disk: low" in page and "fine" not in page
    assert "Unlock" in page and "teacher" in page and "users lock bob" in page
    assert 'name="roster"' in page and "Prewarm now" in page and "Rebuild" in page


def test_the_roster_and_job_pages() -> None:
    bad = render("roster.html", prefix="/p/", filename="class.csv", checked={
        "problems": [{"line": 3, "field": "username", "message": "'Bad Name' is not valid"}],
        "hint": "fix it"})
    assert 'data-line="3"' in bad and "line 3: username: 'Bad Name' is not valid" in bad
    assert "apply-roster" not in bad
    plan = render("roster.html", prefix="/p/", filename="class.csv", checked={
        "problems": [], "users": 3, "upload": "d" * 64, "notes": [],
        "actions": [{"kind": "create-account", "subject": "cat", "detail": ""}]})
    assert "create-account" in plan and 'value="' + "d" * 64 in plan and "apply-roster" in plan
    running = render("job.html", prefix="/p/", job={
        "action": "roster", "command": "hubkeeper apply", "admin": "teacher", "started": "t",
        "state": "running", "progress": [2, 5, "create-account cat"], "messages": ""})
    assert 'http-equiv="refresh"' in running and 'value="2" max="5"' in running
    done = render("job.html", prefix="/p/", job={
        "action": "password", "command": "hubkeeper users password ann", "admin": "teacher",
        "started": "t", "state": "done", "exit": 0, "ended": "u", "result": {"user": "ann"},
        "credentials": [{"username": "ann", "password": "pw-123456"}], "messages": ""})
    assert "refresh" not in done and "pw-123456" in done and "done (exit 0)" in done


def test_ages_and_sizes_read_well() -> None:
    assert age_text(None) == "none yet" and age_text(30) == "30 seconds ago"
    assert age_text(7200) == "2.0 hours ago"
    assert size_text(1536) == "1.5 KiB"


def test_jobs_run_one_at_a_time_record_who_and_survive_their_helper(tmp_path: Path) -> None:
    import time

    from hubkeeper.base import procs
    from hubkeeper.lifecycle.webjobs import Jobs

    config = tmp_path / "hub.yaml"
    config.write_text(f"hub: {{name: jobs, mode: personal, state_dir: {tmp_path / 's'}}}\n"
                      "users: {allowed: [ann]}\n")
    jobs = Jobs(tmp_path / "jobs", config)
    job = jobs.start("render", ["render", "--json"], "teacher")
    deadline = time.monotonic() + 60
    while jobs.get(job.id).state == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    done = jobs.get(job.id)
    assert (done.state, done.exit, done.admin) == ("done", 0, "teacher")
    assert isinstance(done.result, dict)  # the command's JSON result, parsed
    assert (tmp_path / "jobs" / job.id / "job.json").stat().st_mode & 0o777 == 0o600

    # a command that runs long (a stand-in program for hubkeeper: it only sleeps)
    sleeper = tmp_path / "sleeper"
    sleeper.write_text("#!/bin/sh\necho 'hubkeeper-progress 1 4 create-account ann' >&2\n"
                       "exec sleep 60\n")
    sleeper.chmod(0o755)
    slow = Jobs(tmp_path / "jobs", config, python=str(sleeper))
    running = slow.start("snapshot", ["snapshot"], "teacher")
    with pytest.raises(Exception, match="teacher's snapshot .* is still running"):
        slow.start("archive", ["archive"], "other")
    deadline = time.monotonic() + 30
    while slow.get(running.id).progress != [1, 4, "create-account ann"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # the helper that waited for it is gone (the hub stopped), then the job dies: a helper
    # started later finds it interrupted, and the next action may start
    later = Jobs(tmp_path / "jobs", config, python=str(sleeper))
    procs.stop(running.pid)
    deadline = time.monotonic() + 30
    while later.get(running.id).state == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert later.get(running.id).state in ("interrupted", "failed")
    assert [j.id for j in later.list()][:2] == [running.id, job.id]
