"""The suite's OpenID Connect provider (npm oidc-provider, run by oidc_provider.mjs) and a
simulated person who logs in through it.

The provider starts once per session (the `oidc_provider` fixture of tests/conftest.py) on
a free loopback port and is killed by its pid at the end. Each test registers its own
client for its hub's callback URL over OAuth 2.0 Dynamic Client Registration and saves it
as the hub's secrets.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import yaml
from yarl import URL

from tests.conftest import TEST_ACCOUNT_PREFIX, require
from tests.support.hubproc import write_config
from tests.support.simuser import SimUser, SimUserError, _excerpt

SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
MODULE = Path(sys.prefix) / "node_modules" / "oidc-provider" / "lib" / "index.js"
PASSWORD = "Provider-Pass-7"

P = TEST_ACCOUNT_PREFIX
# The people the provider knows (none is on a roster): login -> claims. The impostor has
# ann's preferred_username but another subject.
PEOPLE = {
    "ann": {"sub": "0a1b2c3d-ann", "preferred_username": f"{P}ann",
            "name": "Ann Student", "email": f"{P}ann@example.edu", "groups": ["students"]},
    "bea": {"sub": "0a1b2c3d-bea", "preferred_username": f"{P}bea",
            "name": "Bea Student", "email": f"{P}bea@example.edu", "groups": ["students"]},
    # an e-mail as the name: the hub user is the portable name hkoatina
    "tina": {"sub": "0a1b2c3d-tina", "preferred_username": f"{P}Tina@example.edu",
             "name": "Tina Assistant", "email": f"{P}tina@example.edu", "groups": ["tas"]},
    "olga": {"sub": "0a1b2c3d-olga", "preferred_username": f"{P}olga",
             "name": "Olga Alumna", "email": f"{P}olga@example.edu", "groups": ["alumni"]},
    "impostor": {"sub": "ffff-impostor", "preferred_username": f"{P}ann",
                 "name": "Not Ann", "email": "someone@example.org", "groups": ["students"]},
}


STUDENTS, TAS = f"{P}students", f"{P}tas"
# auth.oidc for first_login: students are admitted, TAs are admins.
FIRST_LOGIN_OIDC = f"""\
    allowed_groups: [students]
    groups: {{students: {STUDENTS}, tas: {TAS}}}
    admin_groups: [tas]
"""


@dataclass
class OIDCProvider:
    issuer: str
    proc: subprocess.Popen[str]
    registration_token: str
    log: Path

    def discovery(self) -> dict:
        with urllib.request.urlopen(self.issuer + "/.well-known/openid-configuration",
                                    timeout=10) as response:
            return json.load(response)

    def register(self, redirect_uri: str) -> tuple[str, str]:
        """A confidential client for `redirect_uri` (RFC 7591): its id and secret."""
        body = json.dumps({"redirect_uris": [redirect_uri], "grant_types":
                           ["authorization_code"], "response_types": ["code"],
                           "token_endpoint_auth_method": "client_secret_basic"}).encode()
        request = urllib.request.Request(
            self.discovery()["registration_endpoint"], data=body, method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {self.registration_token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            client = json.load(response)
        return client["client_id"], client["client_secret"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_provider(directory: Path) -> OIDCProvider:
    node = shutil.which("node")
    require(node is not None, "node is not installed (./run setup installs it)")
    require(MODULE.exists(), f"npm oidc-provider is not installed at {MODULE} "
            "(./run setup installs it)")
    token = secrets.token_urlsafe(24)
    users = {login: {**claims, "password": PASSWORD} for login, claims in PEOPLE.items()}
    config = directory / "users.json"
    config.write_text(json.dumps({"registration_token": token, "users": users}))
    log = directory / "oidc-provider.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([str(node), str(SCRIPT), str(MODULE), str(config)],
                                stdout=subprocess.PIPE, stderr=sink, text=True,
                                start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the script prints its issuer once it listens
    if not line:
        proc.wait(timeout=10)
        raise AssertionError(f"oidc-provider exited with {proc.returncode}:\n"
                             f"{log.read_text()}")
    return OIDCProvider(json.loads(line)["issuer"], proc, token, log)


def save_client(state: Path, client: tuple[str, str]) -> None:
    """The client's id and secret where the hub reads them (<state>/secrets, 0700/0600)."""
    directory = state / "secrets"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(state, 0o755)
    os.chmod(directory, 0o700)
    for name, value in zip(("oidc-client-id", "oidc-client-secret"), client, strict=True):
        path = directory / name
        path.write_text(value + "\n")
        os.chmod(path, 0o600)


def oidc_hub(workdir: Path, provider: OIDCProvider, *, users: str, oidc: str) -> Path:
    """A system-mode hub.yaml logging in with `provider` (a client registered for its
    callback URL, saved as the hub's secrets); `oidc`: more lines of auth.oidc."""
    config = write_config(workdir, mode="system", auth="oidc", users=users,
                          extra="archive: {dir: archives}\n")
    port = yaml.safe_load(config.read_text())["hub"]["port"]  # not loadable yet
    callback = f"http://127.0.0.1:{port}/hub/oauth_callback"
    config.write_text(config.read_text().replace(
        "  kind: oidc\n",
        f"  kind: oidc\n  oidc:\n    issuer: {provider.issuer}\n"
        f"    callback_url: {callback}\n{oidc}"))
    save_client(workdir / "state", provider.register(callback))
    return config


def _form(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the page's form."""
    action = re.search(r'<form[^>]*action="([^"]+)"', page)
    if not action:
        raise SimUserError(f"no form on the provider's page: {_excerpt(page)}")
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    return unescape(action.group(1)), hidden


class OIDCUser(SimUser):
    """A person who logs in with the provider's login page (as a browser would: the
    redirects to the provider, its form, the redirect back to the hub's callback), then
    uses the hub like SimUser. `name` is the hub user they become."""

    def __init__(self, base_url: str, name: str, login: str,
                 password: str = PASSWORD) -> None:
        super().__init__(base_url, name, password)
        self.provider_login = login

    async def login(self) -> None:
        # /hub/oauth_login -> the provider's authorize -> its login page
        async with self.session.get(self.base + "hub/oauth_login?next=") as response:
            page = await response.text()
            if response.status != 200 or "/interaction/" not in str(response.url):
                raise SimUserError(f"provider login page: HTTP {response.status} at "
                                   f"{response.url}: {_excerpt(page)}")
            action, fields = _form(page)
            target = response.url.join(URL(action))
        fields.update(login=self.provider_login, password=self.password)
        # the form -> the provider's resume -> the hub's callback, followed by hand so that
        # the hub's answer to the callback is seen (and no server is started by a redirect)
        hub = URL(self.base)
        url, method = target, "POST"
        for _ in range(10):
            async with self.session.request(method, url, data=fields if method == "POST"
                                            else None, allow_redirects=False) as response:
                body = await response.text()
                location = response.headers.get("Location")
            at_hub = url.port == hub.port and url.host == hub.host
            if at_hub:
                if response.status == 302:
                    return  # logged in: the hub's cookie is set
                raise SimUserError(f"login refused: HTTP {response.status} at {url.path}: "
                                   f"{_excerpt(_message(body), 600)}")
            if response.status not in (302, 303) or not location:
                raise SimUserError(f"login refused by the provider: HTTP {response.status} "
                                   f"at {url}: {_excerpt(body, 600)}")
            url, method = url.join(URL(location)), "GET"
        raise SimUserError("too many redirects")


def _message(page: str) -> str:
    """The message of a JupyterHub error page, else the page."""
    found = re.search(r'<div class="error">(.*?)</div>', page, re.S)
    text = found.group(1) if found else page
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip())
