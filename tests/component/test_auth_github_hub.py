"""auth.kind github with users.accounts: first_login, as root with a real hub in system mode:
people admitted only by their GitHub team get a Linux account at their first login.

There is no GitHub here: tests/support/github_standin.py is a real HTTP server speaking
GitHub's OAuth pages and REST API, and the hub reaches it through auth.github.url (a GitHub
Enterprise Server's address). The students' HTTP clients follow the real redirects: the
hub's /hub/oauth_login, the stand-in's sign-in form and authorize page, the hub's callback.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.github_standin import GitHubStandIn, GitHubUser, OAuthApp
from tests.support.hubproc import free_ports, hk, ok

pytestmark = [pytest.mark.component, pytest.mark.root]

P = TEST_ACCOUNT_PREFIX
ORG = f"{P}-school"
ANN, TIM, OUTSIDER = f"{P}-ann", f"{P}-tim", f"{P}-out"  # GitHub logins = hub users
STUDENTS, TAS = f"{P}stu", f"{P}ta"  # hub and Linux groups
CLIENT_ID = "Iv1.standin0123456"
CLIENT_SECRET = "standin-secret-0123456789abcdef0123456789"


def save_github_secrets(state: Path) -> None:
    """The OAuth app's client ID and secret, where the operator saves them."""
    secrets = state / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    for name, value in (("github-client-id", CLIENT_ID),
                        ("github-client-secret", CLIENT_SECRET)):
        path = secrets / name
        path.write_text(value + "\n")
        os.chmod(path, 0o600)


@pytest.fixture
def github(request: pytest.FixtureRequest) -> Iterator[tuple[GitHubStandIn, list[int]]]:
    """The stand-in, registered for a hub on free ports (returned with them: hub port, hub
    API port, proxy API port); its requests are printed when the test failed."""
    ports = free_ports(3)
    app = OAuthApp(CLIENT_ID, CLIENT_SECRET, f"http://127.0.0.1:{ports[0]}/hub/oauth_callback")
    with GitHubStandIn(app) as standin:
        yield standin, ports
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(f"\n===== GitHub stand-in requests\n{standin.report()}")


def github_hub(directory: Path, standin: GitHubStandIn, ports: list[int], rest: str = "") -> Path:
    port, api_port, proxy_port = ports
    config = directory / "hub.yaml"
    config.write_text(f"""\
hub: {{name: {P}-gh, ip: 127.0.0.1, port: {port}, api_port: {api_port}, state_dir: state,
      mode: system}}
proxy: {{api_port: {proxy_port}}}
auth:
  kind: github
  github:
    url: {standin.url}
    callback_url: {standin.app.callback_url}
    organizations: ["{ORG}:participants", "{ORG}:tas"]
    teams_to_groups: {{"{ORG}:participants": {STUDENTS}, "{ORG}:tas": {TAS}}}
    admin_teams: ["{ORG}:TAs"]
users:
  accounts: first_login
archive: {{dir: archives}}
{rest}""")
    save_github_secrets(directory / "state")
    return config


async def visit(url: str, name: str, login: str, code: str | None = None) -> dict:
    """Log in through GitHub; with `code`, start the server and run it. Returns the hub's
    user model (plus 'result')."""
    async with GitHubUser(url, name, login) as user:
        await user.login()
        model = await user.model()
        if code is not None:
            await user.start_server()
            await user.open_server()
            model["result"] = await user.run_code(code)
            await user.stop_server()
        return model


async def refused(url: str, name: str, login: str) -> tuple[int, str, int]:
    """A login that must fail: the status and page it ends at, and what the hub's API then
    says to that browser about `name`."""
    async with GitHubUser(url, name, login) as user:
        status, page = await user.try_login()
        async with user.session.get(url + f"hub/api/users/{name}") as response:
            return status, page, response.status


WHO = ("import os, grp; (os.getuid(), os.getcwd(), "
       "sorted(grp.getgrgid(g).gr_name for g in os.getgroups()))")


def journal(config: Path) -> dict:
    return json.loads((config.parent / "state" / "journal.json").read_text())


def test_team_members_get_accounts_at_first_login(workdir: Path, github, hubs,
                                                  clean_accounts) -> None:
    standin, ports = github
    standin.register(ANN, 5001, teams=(f"{ORG}:participants",))
    standin.register(TIM, 5002, teams=(f"{ORG}:TAs", f"{ORG}:chess"))
    standin.register(OUTSIDER, 5003, teams=("elsewhere:participants",))
    config = github_hub(workdir, standin, ports)
    hub = hubs.start(config)
    for login in (ANN, TIM):
        with pytest.raises(KeyError):
            pwd.getpwnam(login)  # nobody has an account before their first login

    # ann: a participant, on no roster: an account at her first login, her server as it.
    ann = asyncio.run(visit(hub.url, ANN, ANN, WHO))
    account = pwd.getpwnam(ANN)
    uid, cwd, groups = eval(ann["result"])  # noqa: S307 - a tuple of str and int
    assert (uid, cwd) == (account.pw_uid, account.pw_dir)
    assert STUDENTS in groups and TAS not in groups
    assert ann["groups"] == [STUDENTS] and ann["admin"] is False
    record = journal(config)["accounts"][ANN]
    assert record["state"] == "created" and record["uid"] == account.pw_uid
    assert (record["origin"], record["subject"]) == ("github", "github:5001")  # her id

    # tim: in the TAs' team (spelt TAs on GitHub and in admin_teams): an admin.
    tim = asyncio.run(visit(hub.url, TIM, TIM))
    assert tim["admin"] is True and tim["groups"] == [TAS]
    assert pwd.getpwnam(TIM).pw_uid not in (0, account.pw_uid)

    # ann again: the same account, nothing new made.
    again = asyncio.run(visit(hub.url, ANN, ANN, "__import__('os').getuid()"))
    assert int(again["result"]) == account.pw_uid
    assert set(journal(config)["accounts"]) == {ANN, TIM}

    # ann renames her GitHub login; someone else registers 'ann' (another numeric id).
    standin.rename(ANN, f"{ANN}-old")
    standin.register(ANN, 5004, teams=(f"{ORG}:participants",))
    status, page, api = asyncio.run(refused(hub.url, ANN, ANN))
    assert status == 403, page
    assert f"this hub's user {ANN} belongs to another GitHub account" in html.unescape(page)
    assert api in (401, 403)  # no hub session: not ann's server, files or account
    assert pwd.getpwnam(ANN).pw_uid == account.pw_uid

    # someone outside the organisation's teams: refused, no account.
    status, page, api = asyncio.run(refused(hub.url, OUTSIDER, OUTSIDER))
    assert status == 403, page
    with pytest.raises(KeyError):
        pwd.getpwnam(OUTSIDER)

    # The accounts made at first login are the hub's like roster ones: archive, retire.
    ok(hk(config, "archive"))
    done = json.loads(ok(hk(config, "retire", "--yes", "--json")).stdout)
    assert done["status"] == "retired"
    assert {(i["kind"], i["name"]) for i in done["items"]} >= {
        ("account", ANN), ("account", TIM), ("home", account.pw_dir)}
    for login in (ANN, TIM):
        with pytest.raises(KeyError):
            pwd.getpwnam(login)
        assert not os.path.lexists(f"/home/{login}")
