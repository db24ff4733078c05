"""auth.github's admin teams and GitHub Enterprise Server (auth.github.url): hub.yaml's errors
at their lines, what is rendered, and the identity the authenticator gives the core (the
numeric id as subject, the teams as lower-case 'org:team')."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import urllib.parse

import pytest
from tornado.web import HTTPError

from hubkeeper.base.errors import InvalidInput
from hubkeeper.config import parse
from hubkeeper.config.access import provider_groups
from hubkeeper.hub.auth import GitHubTeamsAuthenticator, ProviderIdentity
from tests.support.github_standin import GitHubStandIn, OAuthApp
from tests.unit.test_auth_github import SECRETS, rendered
from tests.unit.test_auth_github import state as state  # autouse: the state dir of each test

CB = "https://hub.example.org/hub/oauth_callback"
HEAD = f"auth:\n  kind: github\n  github:\n    callback_url: {CB}\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(text, "hub.yaml")
    return [str(problem) for problem in caught.value.problems]


INVALID = [
    ("admin team outside the organisations",
     HEAD + "    organizations: [physics]\n    admin_teams: ['physics:tas', 'chem:tas']\n",
     "hub.yaml:6:34: auth.github.admin_teams[1]: 'chem:tas' is neither in "
     "auth.github.organizations nor a team of an organisation listed there, so its members "
     "could not log in to be admins; add 'chem:tas' (or 'chem') to organizations"),
    ("admin team beside another team of its organisation",
     HEAD + "    organizations: ['physics:students']\n    admin_teams: ['physics:tas']\n",
     "hub.yaml:6:19: auth.github.admin_teams[0]: 'physics:tas' is neither in"),
    ("admin team listed twice",
     HEAD + "    organizations: [physics]\n    admin_teams: ['physics:tas', 'Physics:TAs']\n",
     "hub.yaml:6:34: auth.github.admin_teams[1]: 'Physics:TAs' is listed twice (first at "
     "item 1)"),
    ("admin team that is an organisation",
     HEAD + "    organizations: [physics]\n    admin_teams: [physics]\n",
     "hub.yaml:6:19: auth.github.admin_teams[0]: 'physics' is not valid; use a GitHub team "
     "'org:team'"),
    ("first login admitting nobody", HEAD + "users:\n  accounts: first_login\n  admins: [ann]\n",
     "hub.yaml:6:13: users.accounts: with first_login every GitHub account could make itself "
     "an account here"),
    ("enterprise url with a path", HEAD + "    url: https://github.example.edu/api/v3\n"
     "    organizations: [physics]\n",
     "hub.yaml:5:10: auth.github.url: 'https://github.example.edu/api/v3' must be the "
     "server's address alone, without a path"),
    ("enterprise url over http", HEAD + "    url: http://github.example.edu\n"
     "    organizations: [physics]\n",
     "hub.yaml:5:10: auth.github.url: 'http://github.example.edu' must start with https://"),
    ("github url with another kind", "auth:\n  kind: pam\n  github:\n"
     "    url: https://github.example.edu\nusers: {allowed: [a]}\n",
     "hub.yaml:4:5: auth.github: only used with kind 'github', not 'pam'"),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_github_section_is_reported_at_its_line(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_valid_admin_teams_and_first_login() -> None:
    spec = parse(HEAD + "    url: https://github.example.edu/\n"
                 "    organizations: ['growth:participants', 'Growth:TAs']\n"
                 "    teams_to_groups: {'growth:participants': students, 'Growth:TAs': tas}\n"
                 "    admin_teams: ['growth:tas']\n"
                 "users:\n  accounts: first_login\n", "hub.yaml")
    assert spec.auth.github.url == "https://github.example.edu"
    assert provider_groups(spec.auth) == ({"growth:participants": "students",
                                           "Growth:TAs": "tas"}, ("growth:tas",))
    everyone = parse(HEAD + "users:\n  accounts: first_login\n  allow_all: true\n", "hub.yaml")
    assert everyone.users.allow_all


TEAMS = """
hub: {name: physics, ip: 0.0.0.0, port: 443}
auth:
  kind: github
  github:
    callback_url: https://hub.example.org/hub/oauth_callback
    organizations: [physics-dept]
    admin_teams: ["physics-dept:tas"]
users:
  admins: [prof]
"""


def test_admin_teams_alone_list_the_teams_at_login() -> None:
    c = rendered(TEAMS.replace('"physics-dept:tas"', '"Physics-Dept:TAs"'))
    # The authenticator names teams in lower case; so does the map of admin groups.
    assert c.HubkeeperAuthenticator.provider_admin_groups == ["physics-dept:tas"]
    assert c.GitHubOAuthenticator.scope == ["read:org"]
    assert c.GitHubOAuthenticator.populate_teams_in_auth_state is True
    assert c.GitHubOAuthenticator.github_url == "https://github.com"
    authenticator = GitHubTeamsAuthenticator(config=c)
    assert authenticator.github_api == "https://api.github.com"
    assert authenticator.authorize_url == "https://github.com/login/oauth/authorize"


def test_enterprise_server_url_moves_oauth_and_api() -> None:
    c = rendered(TEAMS.replace("    organizations:", "    url: https://github.example.edu\n"
                               "    organizations:"))
    authenticator = GitHubTeamsAuthenticator(config=c)
    assert authenticator.authorize_url == "https://github.example.edu/login/oauth/authorize"
    assert authenticator.token_url == "https://github.example.edu/login/oauth/access_token"
    assert authenticator.userdata_url == "https://github.example.edu/api/v3/user"
    assert authenticator.github_api == "https://github.example.edu/api/v3"


def model(github_id: object, teams: list[tuple[str, str]]) -> dict:
    return {"name": "ann", "auth_state": {
        "github_user": {"login": "Ann", "id": github_id},
        "teams": [{"slug": slug, "organization": {"login": org}} for org, slug in teams]}}


def test_provider_identity_is_the_numeric_id_and_lower_case_teams() -> None:
    authenticator = GitHubTeamsAuthenticator(config=rendered(TEAMS))
    identity = authenticator.provider_identity(
        model(4242, [("Physics-Dept", "TAs"), ("physics-dept", "chess")]))
    assert identity == ProviderIdentity("github", "github:4242",
                                        frozenset({"physics-dept:tas", "physics-dept:chess"}))


@pytest.mark.parametrize("github_id", [None, "4242"])
def test_no_identity_without_a_numeric_id(github_id: object) -> None:
    authenticator = GitHubTeamsAuthenticator(config=rendered(TEAMS))
    assert authenticator.provider_identity(model(github_id, [])) is None


# --- the real authenticator over HTTP against the GitHub stand-in -------------------------


class Callback:
    """What authenticate() reads from the request GitHub redirected to the hub's callback."""

    def __init__(self, code: str, cookie_state: str) -> None:
        self.code, self.cookie_state = code, cookie_state

    def get_argument(self, name: str, default: str | None = None) -> str | None:
        return {"code": self.code}.get(name, default)

    def get_state_cookie(self) -> str:
        return self.cookie_state


def standin_login(github: GitHubStandIn, authenticator: GitHubTeamsAuthenticator,
                  login: str) -> dict | None:
    """The browser's half done by hand (signed in on GitHub, authorize with PKCE); then the
    hub's half: JupyterHub's get_authenticated_user, every request real HTTP."""
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()
                                         ).decode().rstrip("=")
    query = {"client_id": github.app.client_id, "redirect_uri": github.app.callback_url,
             "scope": "read:org", "state": "s", "code_challenge": challenge,
             "code_challenge_method": "S256"}
    status, location = github.authorize(query, github.sign_in(login))
    assert status == 302, location
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    cookie = base64.urlsafe_b64encode(json.dumps(
        {"state_id": "s", "next_url": "", "code_verifier": verifier}).encode()).decode()
    return asyncio.run(authenticator.get_authenticated_user(Callback(code, cookie), None))


def test_the_authenticator_against_the_standin() -> None:
    app = OAuthApp(SECRETS.github_client_id, SECRETS.github_client_secret,
                   "https://hub.example.org/hub/oauth_callback")
    with GitHubStandIn(app) as github:
        github.register("Ann", 101, teams=("physics-dept:tas", "physics-dept:chess",
                                           "physics-dept:students"))
        github.register("bo", 102, orgs=("other-school",))
        text = TEAMS.replace("    organizations:", f"    url: {github.url}\n"
                             "    teams_to_groups: {'Physics-Dept:Students': students}\n"
                             "    organizations:")
        authenticator = GitHubTeamsAuthenticator(config=rendered(text))
        model = standin_login(github, authenticator, "ann")
        assert model is not None and model["name"] == "ann"
        # Both the team -> group map and the admin team, in any case GitHub spells them.
        assert model["groups"] == ["students"] and model["admin"] is True
        # Three teams on two pages: the Link header was followed.
        assert sorted(t["slug"] for t in model["auth_state"]["teams"]) == [
            "chess", "students", "tas"]
        assert authenticator.provider_identity(model) == ProviderIdentity(
            "github", "github:101", frozenset({"physics-dept:tas", "physics-dept:chess",
                                               "physics-dept:students"}))
        assert standin_login(github, authenticator, "bo") is None  # not in physics-dept
        alone = GitHubTeamsAuthenticator(config=rendered(TEAMS.replace(
            "    organizations:", f"    url: {github.url}\n    organizations:")))
        only_admin = standin_login(github, alone, "ann")  # admin_teams without a group map
        assert only_admin is not None and only_admin["admin"] is True

        github.rename("Ann", "ann-old")
        github.register("ann", 103, orgs=("physics-dept",))
        with pytest.raises(HTTPError) as refused:  # bound to 101 at the first login
            standin_login(github, authenticator, "ann")
        assert refused.value.status_code == 403
        assert "belongs to another GitHub account" in refused.value.log_message
