"""The student's page at <hub>/services/hubkeeper/me/ in a real Chromium, on one real
system-mode hub (PAM logins of real accounts, a real snapshot) shared by this module.

A student restores yesterday's notebook next to the current one and then over it, downloads
a file and their whole work; they cannot reach another student's files by editing the URL,
a forged form without the XSRF token restores nothing, and the admin page refuses them.

The instructor uploads a roster with a bad row and sees its line, uploads the fixed one, sees
the plan and applies it; the new student logs in and runs code; the instructor locks,
unlocks and gives a new password from the page, takes a snapshot, and every action is
recorded with who asked."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hubkeeper.host.snapshots import latest_name
from hubkeeper.state.identity import web_account
from tests.conftest import TEST_ACCOUNT_PREFIX, remove_test_accounts, require_root
from tests.support.browser import STEP_TIMEOUT_MS, chromium_page
from tests.support.hubproc import (
    RunningHub,
    apply_accounts,
    free_ports,
    hk,
    start_hub,
    write_config,
)
from tests.support.simuser import SimUser, run_once

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.root]

PREFIX = TEST_ACCOUNT_PREFIX
ALICE, BOB, TEACHER = f"{PREFIX}pa", f"{PREFIX}pb", f"{PREFIX}pt"
CAROL = f"{PREFIX}pc"  # added from the instructor's page
GROUP = f"{PREFIX}cls"  # a Linux group too: prefixed, so the clean-up removes it
HUB_NAME = f"{PREFIX}page"
PASSWORD = "web-page-test-1"
DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "student-page.png"
ADMIN_IMAGE = DOCS_IMAGE.with_name("instructor-page.png")


@dataclass
class Course:
    hub: RunningHub
    dir: Path
    snapshot: str

    @property
    def me(self) -> str:
        return self.hub.url + "services/hubkeeper/me/"


def put(path: Path, text: str, account: str) -> None:
    """A file of `account`'s, with the folders on the way from its home."""
    entry = pwd.getpwnam(account)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    for item in [path, *path.relative_to(entry.pw_dir).parents]:
        os.lchown(Path(entry.pw_dir) / item, entry.pw_uid, entry.pw_gid)


@pytest.fixture(scope="module")
def course() -> Iterator[Course]:
    require_root()
    remove_test_accounts()
    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-page-"))
    os.chmod(workdir, 0o755)
    (port,) = free_ports(1)
    # the roster is a CSV (with passwords), so the instructor's page can replace it
    (workdir / "class.csv").write_text(
        "username,groups,password\n" + "".join(f"{name},{GROUP},{PASSWORD}\n"
                                               for name in (ALICE, BOB)))
    config = write_config(
        workdir, name=HUB_NAME, mode="system", auth="pam",
        users=f"  admins: [{TEACHER}]\n  roster: {{csv: class.csv}}\n",
        extra=f"web: {{enabled: true, port: {port}}}\n"
              f"snapshots: {{targets: [{workdir / 'backup'}]}}\n")
    apply_accounts(config, PASSWORD, (ALICE, BOB, TEACHER))
    home = Path(pwd.getpwnam(ALICE).pw_dir)
    put(home / "notebooks" / "week1.ipynb", "week 1 as handed in\n", ALICE)
    put(Path(pwd.getpwnam(BOB).pw_dir) / "thesis.md", "bob's thesis\n", BOB)
    hub = None
    try:
        hub = start_hub(config)
        taken = hk(config, "snapshot")
        assert taken.returncode == 0, taken.stdout + taken.stderr
        put(home / "notebooks" / "week1.ipynb", "week 1 broken since\n", ALICE)
        yield Course(hub, workdir, latest_name(workdir / "backup") or "")
    finally:
        if hub is not None:
            hub.stop()
            print(f"\n===== hubkeeper up log\n{hub.log()[-8000:]}")
        subprocess.run(["userdel", web_account(HUB_NAME)], capture_output=True)
        remove_test_accounts()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def page(request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Page]:
    with chromium_page(request, artifacts, accept_downloads=True) as fresh:
        yield fresh


def log_in(page: Page, course: Course, name: str) -> None:
    page.goto(course.hub.url + "hub/login?next=" + urllib.parse.quote("/hub/home"))
    form = page.locator('form[action*="/hub/login"]')
    form.locator('input[name="username"]').fill(name)
    form.locator('input[name="password"]').fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/hub/home", timeout=STEP_TIMEOUT_MS)


def test_a_student_restores_yesterdays_notebook_from_the_page(course: Course, page: Page,
                                                              artifacts: Path) -> None:
    from playwright.sync_api import expect

    alice = pwd.getpwnam(ALICE)
    notebooks = Path(alice.pw_dir) / "notebooks"
    log_in(page, course, ALICE)
    page.goto(course.hub.url + "hub/home")
    page.locator("#hubkeeper-my-files").click()  # the hub's home page links the page
    expect(page.locator("#user")).to_have_text(ALICE)

    page.locator(f'a[data-snapshot="{course.snapshot}"]').click()
    page.locator("#entries a", has_text="notebooks/").click()
    row = page.locator('tr[data-name="week1.ipynb"]')
    expect(row).to_be_visible()
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS_IMAGE), full_page=True)
    page.screenshot(path=str(artifacts / "web-student-page.png"), full_page=True)

    # one file downloaded from the snapshot
    with page.expect_download() as download:
        row.locator("a.download").click()
    assert Path(download.value.path()).read_text() == "week 1 as handed in\n"

    # restored next to the current one, as the student
    row.get_by_role("button", name="Restore").click()
    day = f"{course.snapshot[:4]}-{course.snapshot[4:6]}-{course.snapshot[6:8]}"
    beside = notebooks / f"week1 (restored {day}).ipynb"
    expect(page.locator("#restored")).to_contain_text(f"notebooks/{beside.name}")
    assert beside.read_text() == "week 1 as handed in\n"
    assert (beside.stat().st_uid, beside.stat().st_gid) == (alice.pw_uid, alice.pw_gid)
    assert (notebooks / "week1.ipynb").read_text() == "week 1 broken since\n"

    # and with "replace", over it (what it replaced kept in before-restore-<time>/)
    row = page.locator('tr[data-name="week1.ipynb"]')
    row.locator('input[name="replace"]').check()
    row.get_by_role("button", name="Restore").click()
    expect(page.locator("#restored")).to_contain_text("notebooks/week1.ipynb")
    current = notebooks / "week1.ipynb"
    assert current.read_text() == "week 1 as handed in\n"
    assert current.stat().st_uid == alice.pw_uid
    (aside,) = Path(alice.pw_dir).glob("before-restore-*")
    assert (aside / "notebooks" / "week1.ipynb").read_text() == "week 1 broken since\n"

    # the whole work as a zip
    page.goto(course.me)
    with page.expect_download() as download:
        page.locator("#export").click()
    with zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())) as work:
        assert work.read("notebooks/week1.ipynb") == b"week 1 as handed in\n"

    # every request is in the helper's log, with the student's name from the hub's OAuth
    log = (course.hub.state / "logs" / "web-requests.jsonl").read_text()
    assert log.count('"op": "restore"') == 2 and f'"user": "{ALICE}"' in log


def test_a_student_reaches_only_their_own_files(course: Course, page: Page) -> None:
    from playwright.sync_api import expect

    log_in(page, course, ALICE)
    snapshot = urllib.parse.quote(course.snapshot)
    # a name in the URL is no way in: there is no such route, or it is not read at all
    assert page.goto(course.me + f"{BOB}/").status == 404
    page.goto(course.me + f"?user={BOB}&snapshot={snapshot}")
    expect(page.locator("#user")).to_have_text(ALICE)
    expect(page.locator("#entries")).not_to_contain_text("thesis.md")
    for path in (f"../{BOB}", f"/home/{BOB}", "../../.."):
        answer = page.goto(course.me + f"?snapshot={snapshot}&path={urllib.parse.quote(path)}")
        assert answer.status == 404, path
        expect(page.locator("#error")).to_contain_text("not a path inside the home")
    answer = page.goto(course.me + f"download?snapshot={snapshot}&path=../{BOB}/thesis.md")
    assert answer.status == 404
    assert "bob's thesis" not in page.content()

    # the admin page is the hub admins'
    assert page.goto(course.hub.url + "services/hubkeeper/").status == 403

    # a forged form post (no XSRF token) restores nothing
    before = sorted(Path(pwd.getpwnam(ALICE).pw_dir).rglob("*"))
    forged = page.request.post(course.me + "restore", form={
        "snapshot": course.snapshot, "path": "notebooks", "replace": "yes"},
        max_redirects=0)
    assert forged.status == 403, forged.status
    assert "_xsrf" in forged.text(), forged.text()[:500]
    assert sorted(Path(pwd.getpwnam(ALICE).pw_dir).rglob("*")) == before


def test_the_service_runs_as_its_own_journaled_account(course: Course) -> None:
    from hubkeeper.base.procs import cmdline, processes_of
    from hubkeeper.state.journal import Journal

    web = pwd.getpwnam(web_account(HUB_NAME))
    assert web.pw_uid != 0
    served = [pid for pid in processes_of(web.pw_uid)
              if "hubkeeper.proc.webpage" in cmdline(pid)]
    assert served, "the web service runs as its account"
    record = Journal.load(course.hub.state / "journal.json").accounts[web.pw_name]
    assert (record.origin, record.uid, record.state) == ("web", web.pw_uid, "created")
    folder = (course.hub.state / "web").stat()
    assert (folder.st_uid, folder.st_gid, folder.st_mode & 0o777) == (0, web.pw_gid, 0o750)


def test_an_admin_reaches_the_admin_page(course: Course) -> None:
    async def visit() -> tuple[int, str]:
        async with SimUser(course.hub.url, TEACHER, PASSWORD) as teacher:
            await teacher.login()
            async with teacher.session.get(course.hub.url + "services/hubkeeper/") as answer:
                return answer.status, await answer.text()

    status, text = asyncio.run(visit())
    assert status == 200, text[:500]
    assert 'id="admin-page"' in text


def run_code(course: Course, name: str, password: str, code: str) -> str:
    """run_once in a thread of its own: Playwright's sync API holds this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run_once(course.hub.url, name, password, code)).result()


def finish(page: Page) -> str:
    """Wait on a job's page (it reloads itself while the job runs) for its end; its state."""
    from playwright.sync_api import expect

    expect(page.locator("#job-state")).to_be_visible(timeout=120_000)
    return page.locator("#job-state").inner_text()


def upload(page: Page, course: Course, name: str, text: str) -> None:
    page.goto(course.hub.url + "services/hubkeeper/")
    form = page.locator("#roster-upload")
    form.locator('input[name="roster"]').set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": text.encode()}])
    form.get_by_role("button", name="Check it").click()


def test_an_instructor_runs_the_course_from_the_page(course: Course, page: Page,
                                                     artifacts: Path) -> None:
    from playwright.sync_api import expect

    roster = course.dir / "class.csv"
    before = roster.read_text()
    log_in(page, course, TEACHER)
    page.goto(course.hub.url + "services/hubkeeper/")
    expect(page.locator("#admin-page")).to_be_visible()
    expect(page.locator(f'#roster tr[data-user="{ALICE}"]')).to_be_visible()
    target = str(course.dir / "backup")
    expect(page.locator(f'#snapshots tr[data-target="{target}"]')).not_to_have_class("stale")
    expect(page.locator("#doctor")).to_be_attached()
    expect(page.locator(f'#homes tr[data-user="{ALICE}"]')).to_contain_text("KiB")
    expect(page.locator(".free")).to_contain_text("Free in")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        page.screenshot(path=str(ADMIN_IMAGE), full_page=True)
    page.screenshot(path=str(artifacts / "web-instructor-page.png"), full_page=True)

    # a roster with one bad row: its line, and nothing changes
    rows = f"{ALICE},{GROUP},{PASSWORD}\n{BOB},{GROUP},{PASSWORD}\n"
    upload(page, course, "week2.csv",
           f"username,groups,password\n{rows}Carol Smith,{GROUP},{PASSWORD}\n")
    problem = page.locator('#roster-problems li[data-line="4"]')
    expect(problem).to_contain_text("username")
    expect(problem).to_contain_text("'Carol Smith' is not a portable Linux name")
    expect(page.locator("#apply-roster")).to_have_count(0)
    assert roster.read_text() == before

    # fixed: the plan names the new account; applied as a job, as the teacher
    upload(page, course, "week2.csv", f"username,groups,password\n{rows}{CAROL},{GROUP},"
                                      f"{PASSWORD}\n")
    expect(page.locator("#roster-plan")).to_contain_text(CAROL)
    page.locator("#apply-roster").click()
    assert "done" in finish(page), page.locator("#messages").all_inner_texts()
    assert CAROL in roster.read_text()
    (job,) = [place for place in (course.hub.state / "web" / "jobs").iterdir()
              if json.loads((place / "job.json").read_text())["action"] == "roster"]
    steps = [line for line in (job / "stderr").read_text().splitlines()
             if line.startswith("hubkeeper-progress ")]  # what the page's bar showed
    assert steps and steps[-1].split()[1] == steps[-1].split()[2], steps
    assert (course.dir / "class.csv.previous").read_text() == before
    # the new student logs in with the roster's password and runs code
    assert run_code(course, CAROL, PASSWORD, "6 * 7") == "42"
    # her server is on the page, with the memory its processes use now
    page.goto(course.hub.url + "services/hubkeeper/")
    expect(page.locator(f'#servers tr[data-user="{CAROL}"]')).to_contain_text("MiB")

    # lock and unlock from the roster table: hub.yaml's users.locked follows
    def press(user: str, label: str) -> str:
        page.goto(course.hub.url + "services/hubkeeper/")
        page.locator(f'#roster tr[data-user="{user}"]').get_by_role("button",
                                                                     name=label).click()
        return finish(page)

    assert "done" in press(CAROL, "Lock")
    assert CAROL in course.hub.config.read_text().split("locked:")[1].split("\n")[0]
    assert "done" in press(CAROL, "Unlock")
    assert "locked:" not in course.hub.config.read_text() or \
        CAROL not in course.hub.config.read_text().split("locked:")[1].split("\n")[0]

    # a new password, shown once on the job's page; it works
    assert "done" in press(CAROL, "New password")
    new_password = page.locator(f'#credentials tr:has-text("{CAROL}") code').inner_text()
    assert len(new_password) >= 12 and new_password != PASSWORD
    assert run_code(course, CAROL, new_password, "1 + 1") == "2"

    # a snapshot now, with the line of recent actions naming who asked
    page.goto(course.hub.url + "services/hubkeeper/")
    page.locator("#snapshot-now").click()
    assert "done" in finish(page)
    # the group's servers started now (prewarm): each is running on the page
    page.goto(course.hub.url + "services/hubkeeper/")
    page.locator("#prewarm").get_by_role("button", name="Prewarm now").click()
    assert "done" in finish(page), page.locator("#messages").all_inner_texts()
    page.goto(course.hub.url + "services/hubkeeper/")
    for name in (ALICE, BOB, CAROL):
        expect(page.locator(f'#servers tr[data-user="{name}"]')).to_contain_text("running")
    # a forged form (no XSRF token) from the teacher's own browser starts nothing
    forged = page.request.post(course.hub.url + "services/hubkeeper/action",
                               form={"action": "snapshot"}, max_redirects=0)
    assert forged.status == 403 and "_xsrf" in forged.text()
    page.goto(course.hub.url + "services/hubkeeper/")
    jobs = page.locator("#jobs")
    expect(jobs).to_contain_text("hubkeeper snapshot")
    expect(jobs).to_contain_text(f"users lock {CAROL}")
    assert jobs.inner_text().count(TEACHER) >= 5

    # the helper's log has every action with the admin's name (the roster by its digest)
    lines = [json.loads(line) for line in
             (course.hub.state / "logs" / "web-requests.jsonl").read_text().splitlines()]
    started = [line for line in lines if line["op"] == "start" and line["ok"]]
    assert [line["action"] for line in started] == ["roster", "lock", "unlock", "password",
                                                    "snapshot", "prewarm"]
    assert {line["admin"] for line in started} == {TEACHER}
    assert not any("csv" in line for line in lines), "a roster (with passwords) is not logged"


def test_a_student_cannot_act_as_an_instructor(course: Course, page: Page) -> None:
    log_in(page, course, BOB)
    prefix = course.hub.url + "services/hubkeeper/"
    page.goto(prefix + "me/")  # the page's XSRF cookie, as a real form would have it
    xsrf = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf")
    for path, form in (("action", {"action": "snapshot"}),
                       ("action", {"action": "lock", "name": ALICE}),
                       ("roster", {})):
        answer = page.request.post(prefix + path, form={**form, "_xsrf": xsrf},
                                   max_redirects=0)
        assert answer.status == 403, (path, answer.status, answer.text()[:300])
    assert page.goto(prefix + "job?id=x").status == 403


def test_the_web_services_own_token_can_do_nothing_in_the_api(course: Course) -> None:
    import urllib.error
    import urllib.request

    from hubkeeper.base.procs import cmdline, processes_of

    web = pwd.getpwnam(web_account(HUB_NAME))
    (pid,) = [pid for pid in processes_of(web.pw_uid)
              if "hubkeeper.proc.webpage" in cmdline(pid)]
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
    token = environ["JUPYTERHUB_API_TOKEN"]
    assert token != course.hub.secret("api-token")
    for path in ("users", f"users/{ALICE}/server"):
        request = urllib.request.Request(course.hub.url + f"hub/api/{path}",
                                         method="GET" if path == "users" else "POST",
                                         headers={"Authorization": f"token {token}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (403, 404), path
