"""A real Chromium through a real nginx and TLS: hub.url as a person meets it.

Debian's Chromium (tests/support/browser.py) opens the http:// address, follows nginx's 301 to
https://, signs in, and runs a notebook cell, whose kernel talks over wss:// through nginx.
The certificate is self-signed (made by openssl in the `nginx` fixture's directory) and
Chromium trusts that certificate only: `--ignore-certificate-errors-spki-list` names the
SHA-256 of its public key, so any other certificate would still be refused. The hub runs in
personal mode with the shared password.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.browser import SPAWN_TIMEOUT_MS, STEP_TIMEOUT_MS, chromium_page
from tests.support.nginxsite import Nginx, files_tls, hub_yaml, hubkeeper, self_signed

if TYPE_CHECKING:
    from playwright.sync_api import Response

pytestmark = [pytest.mark.browser, pytest.mark.component, pytest.mark.root]

USER = "student1"  # hub_yaml's one allowed user
HSTS = "max-age=31536000"


def spki_sha256(cert: Path) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list wants: base64 of the SHA-256 of
    the certificate's SubjectPublicKeyInfo (DER)."""
    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def first_of(response: Response) -> Response:
    """The response to the first request of a redirect chain."""
    request = response.request
    while request.redirected_from is not None:
        request = request.redirected_from
    first = request.response()
    assert first is not None, request.url
    return first


@pytest.mark.timeout(900)  # apply, a hub, a spawn and JupyterLab on a busy 2-core machine
def test_chromium_signs_in_over_https_and_runs_a_cell_over_wss(
        place: Path, nginx: Nginx, hubs: Any, artifacts: Path,
        request: pytest.FixtureRequest) -> None:
    from playwright.sync_api import expect

    cert, key = self_signed(place, "localhost")
    config = hub_yaml(place, nginx, name=f"{TEST_ACCOUNT_PREFIX}-tlsb",
                      tls=files_tls(cert, key))
    applied = hubkeeper(config, "apply")
    assert applied.returncode == 0, applied.stderr
    hub = hubs.start(config)
    https = f"https://localhost:{nginx.https_port}"

    trust_this_certificate = f"--ignore-certificate-errors-spki-list={spki_sha256(cert)}"
    with chromium_page(request, artifacts, args=[trust_this_certificate]) as page:
        # Every HTML page nginx served over https carries HSTS ("always": redirects too).
        documents: list[Response] = []
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.on("response", lambda r: documents.append(r)
                if r.request.resource_type == "document" and r.url.startswith(https) else None)

        landed = page.goto(f"http://localhost:{nginx.http_port}/")
        assert landed is not None
        first = first_of(landed)
        assert first.url == f"http://localhost:{nginx.http_port}/"
        assert (first.status, first.header_value("location")) == (301, f"{https}/")
        assert landed.status == 200
        assert urlsplit(page.url)[:3] == ("https", f"localhost:{nginx.https_port}",
                                          "/hub/login"), page.url
        assert landed.header_value("strict-transport-security") == HSTS

        form = page.locator('form[action*="/hub/login"]')
        expect(form).to_be_visible(timeout=STEP_TIMEOUT_MS)
        form.locator('input[name="username"]').fill(USER)
        form.locator('input[name="password"]').fill(hub.password)
        with page.expect_response(lambda r: r.request.method == "POST"
                                  and urlsplit(r.url).path == "/hub/login") as posted:
            form.get_by_role("button", name="Sign in").click()
        assert posted.value.status == 302, posted.value.status

        launcher = page.locator(".jp-Launcher")
        expect(launcher).to_be_visible(timeout=SPAWN_TIMEOUT_MS)
        lab = urlsplit(page.url)
        assert (lab.scheme, lab.netloc) == ("https", f"localhost:{nginx.https_port}"), page.url
        assert lab.path.startswith(f"/user/{USER}/lab"), page.url

        launcher.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
        notebook = page.locator(".jp-NotebookPanel").last
        expect(notebook).to_be_visible(timeout=STEP_TIMEOUT_MS)
        # The status bar says Idle only once the kernel's websocket is connected and the
        # kernel has reported its status through it (the notebook's toolbar indicator starts
        # at "idle" before any kernel is there, so it cannot tell).
        kernel = page.locator('#jp-main-statusbar [title^="Change kernel"]')
        expect(kernel).to_have_text(re.compile(r"\| Idle$"), timeout=SPAWN_TIMEOUT_MS)
        cell = notebook.locator(".jp-CodeCell").first
        editor = cell.locator('.cm-content[contenteditable="true"]')
        editor.click()
        page.keyboard.type("1+1")
        expect(editor).to_have_text("1+1", timeout=STEP_TIMEOUT_MS)
        page.keyboard.press("Shift+Enter")
        expect(cell.locator(".jp-OutputArea-output")).to_have_text("2",
                                                                    timeout=STEP_TIMEOUT_MS)
        expect(cell.locator(".jp-InputPrompt")).to_have_text("[1]:", timeout=STEP_TIMEOUT_MS)
        kernel_channels = f"wss://localhost:{nginx.https_port}/user/{USER}/api/kernels/"
        assert any(url.startswith(kernel_channels) for url in sockets), sockets

        page.screenshot(path=str(artifacts / "browser-tls-notebook.png"))
        assert urlsplit(page.url).scheme == "https", page.url

        lab_pages = [r for r in documents
                     if urlsplit(r.url).path.startswith(f"/user/{USER}/lab")]
        assert lab_pages, [r.url for r in documents]
        missing = [(r.url, r.status) for r in documents
                   if r.header_value("strict-transport-security") != HSTS]
        assert not missing, missing
