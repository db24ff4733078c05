"""A real Chromium uses a real hub: the login form, a server start, JupyterLab's launcher.

Debian's Chromium (/usr/bin/chromium) driven by Playwright; no browser is downloaded. The hub
runs in personal mode with the shared password, as `hubkeeper up` on free ports.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import SPAWN_TIMEOUT_MS, STEP_TIMEOUT_MS, chromium_page
from tests.support.hubproc import RunningHub, write_config

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

USER = "student1"
SCREENSHOT = "browser-jupyterlab-launcher.png"


@pytest.fixture
def page(request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Page]:
    """A fresh page in a fresh Chromium (tests/support/browser.py)."""
    with chromium_page(request, artifacts) as fresh:
        yield fresh


def _start_hub(workdir: Path, hubs: Any, extra: str = "") -> RunningHub:
    return hubs.start(write_config(workdir, mode="personal", auth="shared-password",
                                   allowed=(USER, "student2"), extra=extra))


def _hub_api(hub: RunningHub, path: str) -> dict[str, Any]:
    """GET the hub's REST API as hubkeeper's own service (read:users, read:servers)."""
    request = urllib.request.Request(
        hub.url + "hub/api/" + path,
        headers={"Authorization": f"token {hub.secret('api-token')}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _submit_login(page: Page, hub: RunningHub, password: str) -> int:
    """Fill the hub's login form as a person would and sign in; return the POST's status."""
    from playwright.sync_api import expect

    page.goto(hub.url + "hub/login")
    form = page.locator('form[action*="/hub/login"]')
    expect(form).to_be_visible(timeout=STEP_TIMEOUT_MS)
    form.locator('input[name="username"]').fill(USER)
    form.locator('input[name="password"]').fill(password)
    with page.expect_response(lambda r: r.request.method == "POST"
                              and urlsplit(r.url).path == "/hub/login") as posted:
        form.get_by_role("button", name="Sign in").click()
    return posted.value.status


def test_login_reaches_jupyterlab_launcher(workdir: Path, hubs: Any, artifacts: Path,
                                           page: Page) -> None:
    from playwright.sync_api import expect

    hub = _start_hub(workdir, hubs, extra="limits: {memory: 512M}\n")

    status = _submit_login(page, hub, hub.password)
    assert status == 302, f"the login POST answered {status}, not a redirect"

    # The hub spawns the server, then the browser follows to /user/student1/lab and
    # JupyterLab draws its launcher: the splash screen goes, the launcher's sections appear.
    launcher = page.locator(".jp-Launcher")
    expect(launcher).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
    for section in ("Notebook", "Console", "Other"):
        title = launcher.locator(".jp-Launcher-sectionTitle", has_text=section)
        expect(title).to_be_visible(timeout=STEP_TIMEOUT_MS)
    python_card = launcher.locator(".jp-LauncherCard", has_text="Python 3").first
    expect(python_card).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(page.locator("#jupyterlab-splash")).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    # jupyter-resource-usage: the status bar shows memory use against the user's limit
    # (512M: "/ 512.00 MB", the extension counting in binary units)
    expect(page.locator("#jp-main-statusbar")).to_contain_text(
        re.compile(r"Mem:\s*[\d.]+\s*/\s*512(\.0+)?\s*MB"), timeout=STEP_TIMEOUT_MS)

    page.screenshot(path=str(artifacts / SCREENSHOT))

    url = urlsplit(page.url)
    hub_url = urlsplit(hub.url)
    assert (url.scheme, url.netloc) == (hub_url.scheme, hub_url.netloc), page.url
    assert url.path.startswith(f"/user/{USER}/lab"), page.url

    server = _hub_api(hub, f"users/{USER}")["servers"].get("")
    assert server and server["ready"], f"the hub does not report {USER}'s server ready: {server}"


def test_wrong_password_stays_on_login_page(workdir: Path, hubs: Any, page: Page) -> None:
    from playwright.sync_api import expect

    hub = _start_hub(workdir, hubs)

    status = _submit_login(page, hub, "not-" + hub.password)
    assert status == 403, f"a wrong password got HTTP {status}"

    # JupyterHub renders the login page again, with its message and the username kept.
    page.wait_for_load_state()
    url = urlsplit(page.url)
    assert url.path == "/hub/login", page.url
    error = page.locator("p.login_error")
    expect(error).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(error).to_have_text("Invalid username or password", timeout=STEP_TIMEOUT_MS)
    expect(page.locator('input[name="username"]')).to_have_value(USER, timeout=STEP_TIMEOUT_MS)
    expect(page.locator('input[name="password"]')).to_have_value("", timeout=STEP_TIMEOUT_MS)

    # Not logged in: no hub login cookie, and the user's lab sends the browser back to login.
    cookies = {cookie["name"] for cookie in page.context.cookies()}
    assert "jupyterhub-hub-login" not in cookies, cookies
    page.goto(hub.url + f"user/{USER}/lab")
    assert urlsplit(page.url).path == "/hub/login", page.url
    expect(page.locator('form[action*="/hub/login"]')).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(page.locator("p.login_error")).to_have_count(0, timeout=STEP_TIMEOUT_MS)

    # And nothing was started: the hub has no server for the user, the spawner made no home.
    user = _hub_api(hub, f"users/{USER}")
    assert user["servers"] == {} and user["pending"] is None, user
    assert not (hub.state / "users" / USER).exists()


def test_a_waiting_student_sees_their_place_in_line(workdir: Path, hubs: Any, artifacts: Path,
                                                    page: Page) -> None:
    """One start at a time, and student2's is slow (its hook sleeps): student1, logging in
    meanwhile, is sent to the spawn page, which shows their place in line, and then gets
    JupyterLab once student2's server is up."""
    from playwright.sync_api import expect

    hook = workdir / "slow.sh"
    hook.write_text('#!/bin/sh\n[ "$HUBKEEPER_USER" != student2 ] || sleep 8\n')
    hook.chmod(0o755)
    hub = hubs.start(write_config(
        workdir, mode="personal", auth="shared-password", allowed=(USER, "student2"),
        extra="starts: {at_once: 1}\nculling: {enabled: false}\n"
              "hooks: {as_root: [{script: slow.sh, timeout: 60s}]}\n"))
    request = urllib.request.Request(
        hub.url + "hub/api/users/student2/server", data=b"{}", method="POST",
        headers={"Authorization": f"token {hub.secret('api-token')}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (201, 202), response.status

    status = _submit_login(page, hub, hub.password)
    assert status == 302, f"the login POST answered {status}, not a redirect"
    message = page.locator("#progress-message")
    expect(message).to_contain_text("you are number 1 in line", timeout=STEP_TIMEOUT_MS)
    assert urlsplit(page.url).path == f"/hub/spawn-pending/{USER}", page.url
    page.screenshot(path=str(artifacts / "browser-spawn-page-in-line.png"))

    expect(page.locator(".jp-Launcher")).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
    assert urlsplit(page.url).path.startswith(f"/user/{USER}/lab"), page.url
    assert _hub_api(hub, "users/student2")["servers"][""]["ready"]
    log = hub.log()
    assert log.index("student2: start admitted") < log.index(f"{USER}: start admitted"), log
