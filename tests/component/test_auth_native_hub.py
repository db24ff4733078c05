"""auth.kind native in a running hub: sign-up, an admin's approval, login (real hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.component

STRONG = "correct horse battery"


def _form_token(session, url: str) -> str:
    import re

    page = session.get(url)
    assert page.status_code == 200, page.text[:500]
    match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert match, f"no _xsrf field on {url}"
    return match.group(1)


def _sign_up(hub_url: str, name: str, password: str, code: str = "") -> str:
    import requests

    with requests.Session() as session:
        page = session.get(hub_url + "hub/signup")
        assert "invite_code_input" in page.text  # hubkeeper's field, added to the form
        token = _form_token(session, hub_url + "hub/signup")
        page = session.post(hub_url + "hub/signup", data={
            "_xsrf": token, "username": name, "signup_password": password,
            "signup_password_confirmation": password, "invite_code": code})
        assert page.status_code == 200, page.text[:500]
        return page.text


def _invite_codes(workdir: Path) -> dict[str, str]:
    import csv

    codes = {}
    for path in (workdir / "state" / "credentials").glob("*.csv"):
        with open(path, newline="") as handle:
            codes.update({row["username"]: row["invite_code"] for row in csv.DictReader(handle)})
    return codes


def _log_in(hub_url: str, name: str, password: str):
    import requests

    session = requests.Session()
    token = _form_token(session, hub_url + "hub/login")
    page = session.post(hub_url + "hub/login", allow_redirects=False,
                        data={"_xsrf": token, "username": name, "password": password})
    return session, page


def test_sign_up_approval_and_login_in_a_running_hub(hubs, workdir: Path) -> None:
    import subprocess

    from tests.support.hubproc import HUBKEEPER, write_config

    config = write_config(workdir, auth="native", admins=("prof",), allowed=("ann",))
    applied = subprocess.run([HUBKEEPER, "--config", str(config), "apply"],
                             capture_output=True, text=True, timeout=120)
    assert "invite codes" in applied.stdout, applied.stdout + applied.stderr
    codes = _invite_codes(workdir)
    assert set(codes) == {"prof", "ann"}
    hub = hubs.start(config)
    # A roster name (here the admin's) is not the first comer's: it needs its invite code.
    assert "signing up as prof needs the invite code" in _sign_up(hub.url, "prof", STRONG)
    assert "The signup was successful" in _sign_up(hub.url, "prof", STRONG, codes["prof"])
    _sign_up(hub.url, "newbie", STRONG)  # not on the roster: waits for an admin

    _, page = _log_in(hub.url, "newbie", STRONG)
    assert page.status_code == 200  # the form again (JupyterHub 6 removed statsd: was a 500)
    assert "has not been authorized by an administrator yet" in page.text

    prof, page = _log_in(hub.url, "prof", STRONG)
    assert page.status_code == 302, page.text[:500]
    home = prof.get(hub.url + "hub/home")
    assert "Authorize Users" in home.text  # nativeauthenticator's page.html (template_paths)
    assert "newbie" in prof.get(hub.url + "hub/authorize").text
    assert prof.get(hub.url + "hub/authorize/newbie", allow_redirects=False).status_code == 302

    _, page = _log_in(hub.url, "newbie", STRONG)
    assert page.status_code == 302, page.text[:500]

    # an error during a login POST (here: no form token) is a page, not a crash
    import requests

    page = requests.post(hub.url + "hub/login", data={"username": "prof", "password": "x"})
    assert page.status_code == 403
