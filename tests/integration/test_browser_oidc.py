"""A real Chromium logs in through a real OpenID Provider (npm oidc-provider, its own login
page): a student known only to the provider gets a Linux account at that first login
(system mode, users.accounts: first_login), JupyterLab opens and runs 1+1 in a console."""

from __future__ import annotations

import json
import pwd
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from hubkeeper.config import load
from tests.support.browser import SPAWN_TIMEOUT_MS, STEP_TIMEOUT_MS, chromium_page
from tests.support.oidc import FIRST_LOGIN_OIDC, PASSWORD, P, oidc_hub
from tests.support.procs import server_pids, uid_of

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.root]

SCREENSHOT = "browser-oidc-console.png"
ANN = f"{P}ann"


@pytest.fixture
def page(request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Page]:
    with chromium_page(request, artifacts) as fresh:
        yield fresh


def test_student_logs_in_with_the_provider_and_runs_code(
        workdir: Path, hubs: Any, artifacts: Path, page: Page, oidc_provider,
        clean_accounts) -> None:
    from playwright.sync_api import expect

    config = oidc_hub(workdir, oidc_provider, users="  accounts: first_login\n",
                      oidc=FIRST_LOGIN_OIDC)
    hub = hubs.start(config)
    with pytest.raises(KeyError):
        pwd.getpwnam(ANN)

    # The hub's login page offers the provider; its button leads to the provider's page.
    page.goto(hub.url + "hub/login")
    page.get_by_text("Sign in with 127.0.0.1").click()
    form = page.locator('form[action*="/interaction/"]')
    expect(form).to_be_visible(timeout=STEP_TIMEOUT_MS)
    assert urlsplit(page.url).netloc == urlsplit(oidc_provider.issuer).netloc, page.url
    form.locator('input[name="login"]').fill("ann")
    form.locator('input[name="password"]').fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()

    # Back at the hub: the account is made, the server spawned, JupyterLab drawn.
    launcher = page.locator(".jp-Launcher")
    expect(launcher).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
    assert urlsplit(page.url).path.startswith(f"/user/{ANN}/lab"), page.url
    account = pwd.getpwnam(ANN)

    # A Python console runs 1+1.
    launcher.locator('.jp-LauncherCard[data-category="Console"]').first.click()
    prompt = page.locator(".jp-CodeConsole-input .cm-content")
    expect(prompt).to_be_visible(timeout=STEP_TIMEOUT_MS)
    # Code typed while the kernel still connects is not run: wait until it is idle.
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(
        timeout=SPAWN_TIMEOUT_MS)
    prompt.click()
    page.keyboard.type("1+1")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-CodeConsole-content .jp-OutputArea-output")
    expect(output.last).to_have_text("2", timeout=SPAWN_TIMEOUT_MS)
    page.screenshot(path=str(artifacts / SCREENSHOT))

    # The server (and so the kernel) runs as ann's own account.
    servers = server_pids(load(config).spec.hub.api_port)
    assert list(servers.values()) == [ANN], servers
    assert all(uid_of(pid) == account.pw_uid for pid in servers)
    model = hub_api(hub, f"users/{ANN}")
    assert model["admin"] is False and model["servers"][""]["ready"]


def hub_api(hub: Any, path: str) -> dict[str, Any]:
    """GET the hub's REST API as hubkeeper's own service."""
    request = urllib.request.Request(
        hub.url + "hub/api/" + path,
        headers={"Authorization": f"token {hub.secret('api-token')}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)
