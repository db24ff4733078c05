"""auth.kind github: the rendered GitHubTeamsAuthenticator, run against a stubbed GitHub API.

There is no GitHub here, so this is the one place with a stand-in: the authenticator is the
real class built from the rendered config, with only `fetch` (the method that sends HTTP
requests) answered from canned GitHub API replies. Everything else, from the token exchange
to JupyterHub's allow/block checks and the groups of the auth model, is the real code.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import stat
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.config import parse
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Runtime
from hubkeeper.hub.auth import GitHubTeamsAuthenticator
from hubkeeper.render.jupyterhub import render
from hubkeeper.roster import build_roster
from hubkeeper.state.statedir import (
    Secrets,
    StatePaths,
    ensure_layout,
    ensure_secrets,
    read_secrets,
)

CLIENT_ID = "Iv1.0123456789abcdef"
CLIENT_SECRET = "s3cr3t-0123456789abcdef0123456789abcdef"

HUB = """
hub: {name: physics, ip: 0.0.0.0, port: 443}
auth:
  kind: github
  github:
    callback_url: https://hub.example.org/hub/oauth_callback
    organizations: ["physics-dept:students", "physics-dept:tas"]
    teams_to_groups:
      "physics-dept:students": students
      "physics-dept:tas": tas
users:
  admins: [prof]
  groups: {lecturers: [prof, dana]}
"""

# GitHub login -> the teams GitHub lists for them, as (organisation login, team slug).
# Organisation logins come back in their own case; GitHub compares them case-insensitively.
PEOPLE: dict[str, list[tuple[str, str]]] = {
    "Ann": [("Physics-Dept", "tas"), ("physics-dept", "chess")],
    "bo": [("other-school", "tas"), ("other-school", "students")],
    "cy": [("physics-dept", "chess"), ("physics-dept", "students")],
    "prof": [],
    "dana": [("physics-dept", "tas")],
}

# What people see on GitHub; URLs and the API's memberships use the slug.
TEAM_NAMES = {"tas": "Teaching Assistants", "students": "Students 2025", "chess": "Chess Club"}


class FakeGitHub:
    """Canned replies of github.com and api.github.com for the people above."""

    def __init__(self, people: dict[str, list[tuple[str, str]]],
                 ids: dict[str, int] | None = None) -> None:
        self.people = people
        self.ids = ids or {}  # login -> GitHub user id; default 1000 + len(login)

    def login_of(self, request: HTTPRequest) -> str:
        scheme, _, token = request.headers["Authorization"].partition(" ")
        assert scheme == "Bearer", request.headers
        return token.removeprefix("token-")

    def answer(self, request: HTTPRequest) -> tuple[int, Any, dict[str, str]]:
        url = urllib.parse.urlsplit(request.url)
        query = urllib.parse.parse_qs(url.query)
        if (request.method, url.netloc, url.path) == ("POST", "github.com",
                                                      "/login/oauth/access_token"):
            form = urllib.parse.parse_qs(request.body.decode())
            if (form["client_id"], form["client_secret"]) != ([CLIENT_ID], [CLIENT_SECRET]):
                return 200, {"error": "incorrect_client_credentials",
                             "error_description": "The client_id and/or client_secret "
                             "passed are incorrect."}, {}
            login = form["code"][0].removeprefix("code-")
            return 200, {"access_token": f"token-{login}", "token_type": "bearer",
                         "scope": "read:org"}, {}
        assert url.netloc == "api.github.com", request.url
        login = self.login_of(request)
        if url.path == "/user":
            return 200, {"login": login, "id": self.ids.get(login, 1000 + len(login)),
                         "name": login.title(), "email": f"{login.lower()}@example.org"}, {}
        if url.path == "/user/teams":
            teams = [{"name": TEAM_NAMES[slug], "slug": slug, "organization": {"login": org}}
                     for org, slug in self.people[login]]
            # Two pages of at most one team each: the Link header must be followed.
            page = int(query.get("page", ["1"])[0])
            headers = {}
            if page < len(teams):
                headers["Link"] = (f'<https://api.github.com/user/teams?per_page=100&'
                                   f'page={page + 1}>; rel="next"')
            return 200, teams[page - 1:page], headers
        match = re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/members/([^/]+)", url.path)
        if match:
            org, slug, user = (part.lower() for part in match.groups())
            member = any((o.lower(), s) == (org, slug) for who, teams in self.people.items()
                         if who.lower() == user for o, s in teams)
            return (204, None, {}) if member else (404, {"message": "Not Found"}, {})
        match = re.fullmatch(r"/orgs/([^/]+)/members/([^/]+)", url.path)
        if match:
            org, user = (part.lower() for part in match.groups())
            member = any(o.lower() == org for who, teams in self.people.items()
                         if who.lower() == user for o, _ in teams)
            return (204, None, {}) if member else (404, {"message": "Not Found"}, {})
        raise AssertionError(f"unexpected request {request.method} {request.url}")


class StubbedGitHubAuthenticator(GitHubTeamsAuthenticator):
    """The real authenticator; only the HTTP request is answered by FakeGitHub."""

    github = FakeGitHub(PEOPLE)

    async def fetch(self, req, label="fetching", parse_json=True, **kwargs):
        code, body, headers = self.github.answer(req)
        data = json.dumps(body).encode() if body is not None else b""
        response = HTTPResponse(req, code, headers=HTTPHeaders(headers),
                                buffer=io.BytesIO(data))
        if code >= 400 and kwargs.get("raise_error", True):
            raise HTTPClientError(code, response=response)
        if not parse_json:
            return response
        return json.loads(data) if data else None


class CallbackHandler:
    """What authenticate() reads from the /hub/oauth_callback request GitHub redirects to."""

    def __init__(self, login: str) -> None:
        self.code = f"code-{login}"

    def get_argument(self, name: str, default: str | None = None) -> str | None:
        return {"code": self.code}.get(name, default)

    def get_state_cookie(self) -> str:
        state = {"state_id": "0" * 32, "code_verifier": "v" * 43, "next_url": ""}
        return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


SECRETS = Secrets(cookie_secret_file="/state/secrets/cookie-secret", proxy_token="PROXY",
                  service_token="SERVICE", shared_password="USERPW", admin_password="ADMINPW",
                  github_client_id=CLIENT_ID, github_client_secret=CLIENT_SECRET)


STATE = StatePaths(Path("/nonexistent/state"))


@pytest.fixture(autouse=True)
def state(tmp_path: Path) -> StatePaths:
    """The hub's state dir, where the authenticator binds logins to GitHub ids."""
    global STATE
    STATE = StatePaths(tmp_path / "state")
    STATE.root.mkdir()
    return STATE


def rendered(text: str = HUB, secrets: Secrets = SECRETS):
    spec = parse(text)
    roster = build_roster(LoadedSpec(spec, Path("/srv/physics/hub.yaml")))
    runtime = Runtime(mode="personal", state=STATE, secrets=secrets,
                      proxy_command=("configurable-http-proxy",),
                      singleuser_command=("jupyterhub-singleuser",), as_root=False,
                      roster=roster)
    return render(spec, runtime)


def log_in(login: str, text: str = HUB,
           authenticator: GitHubTeamsAuthenticator | None = None) -> dict | None:
    """The outer API JupyterHub calls from /hub/oauth_callback: authenticate, normalise,
    blocked and allowed checks, admin status, groups."""
    authenticator = authenticator or StubbedGitHubAuthenticator(config=rendered(text))
    return asyncio.run(authenticator.get_authenticated_user(CallbackHandler(login), None))


def test_member_of_an_allowed_team_gets_its_group() -> None:
    model = log_in("Ann")
    assert model is not None
    assert model["name"] == "ann"  # GitHub login, normalised
    assert model["groups"] == ["tas"]  # physics-dept:chess is not mapped
    assert not model["admin"]
    assert [team["slug"] for team in model["auth_state"]["teams"]] == ["tas", "chess"]


def test_member_of_no_allowed_team_is_refused() -> None:
    # bo is in teams called 'tas' and 'students', but of another organisation.
    assert log_in("bo") is None


def test_unmapped_team_gives_no_extra_group() -> None:
    model = log_in("cy")
    assert model is not None
    assert model["groups"] == ["students"]


def test_roster_admin_without_teams_is_admitted_with_roster_groups() -> None:
    model = log_in("prof")
    assert model is not None
    assert model["admin"] is True
    assert model["groups"] == ["lecturers"]  # kept: manage_groups would drop it otherwise


def test_team_groups_and_roster_groups_together() -> None:
    model = log_in("dana")
    assert model is not None
    assert model["groups"] == ["lecturers", "tas"]


def test_locked_roster_user_is_refused_even_in_an_allowed_team() -> None:
    assert log_in("dana", HUB + "  locked: [dana]\n") is None


def test_organization_entry_admits_every_member() -> None:
    text = HUB.replace('["physics-dept:students", "physics-dept:tas"]', "[physics-dept]")
    assert log_in("cy", text)["groups"] == ["students"]  # type: ignore[index]
    assert log_in("bo", text) is None


def test_wrong_client_secret_is_refused_by_github() -> None:
    from tornado.web import HTTPError

    wrong = Secrets(**{**SECRETS.__dict__, "github_client_secret": "not-it"})
    authenticator = StubbedGitHubAuthenticator(config=rendered(secrets=wrong))
    with pytest.raises(HTTPError, match="incorrect"):
        asyncio.run(authenticator.get_authenticated_user(CallbackHandler("Ann"), None))


def test_authenticator_takes_the_rendered_values() -> None:
    authenticator = GitHubTeamsAuthenticator(config=rendered())
    assert authenticator.client_id == CLIENT_ID
    assert authenticator.client_secret == CLIENT_SECRET
    assert authenticator.oauth_callback_url == "https://hub.example.org/hub/oauth_callback"
    assert authenticator.allowed_organizations == {"physics-dept:students", "physics-dept:tas"}
    assert authenticator.scope == ["read:org"]
    assert authenticator.manage_groups is True
    assert authenticator.populate_teams_in_auth_state is True
    assert authenticator.allow_existing_users is False
    assert authenticator.group_map == {"physics-dept:students": "students",
                                       "physics-dept:tas": "tas"}
    assert authenticator.roster_groups == {"prof": ["lecturers"], "dana": ["lecturers"]}
    assert authenticator.admin_users == {"prof"}
    assert authenticator.github_ids_file == str(STATE.root / "github-ids.json")


def test_jupyterhub_accepts_the_rendered_config() -> None:
    from jupyterhub.app import JupyterHub

    app = JupyterHub(config=rendered())
    assert app.authenticator_class is GitHubTeamsAuthenticator
    assert app.load_groups == {}  # JupyterHub refuses load_groups with manage_groups


# --- the client ID and secret: files in <state>/secrets, never in hub.yaml ---------------


def state_with_secrets(tmp_path: Path) -> StatePaths:
    paths = StatePaths(tmp_path / "state")
    ensure_layout(paths)
    ensure_secrets(paths)
    return paths


def save(paths: StatePaths, name: str, text: str, mode: int = 0o600) -> None:
    path = paths.secret(name)
    path.write_text(text)
    os.chmod(path, mode)


def test_github_secrets_are_read_from_the_secrets_directory(tmp_path: Path) -> None:
    paths = state_with_secrets(tmp_path)
    save(paths, "github-client-id", CLIENT_ID + "\n")
    save(paths, "github-client-secret", CLIENT_SECRET + "\n")
    found = read_secrets(paths, github=True)
    assert (found.github_client_id, found.github_client_secret) == (CLIENT_ID, CLIENT_SECRET)
    assert read_secrets(paths).github_client_secret == ""  # other kinds do not read them


def test_missing_github_secret_names_the_file_and_how_to_make_it(tmp_path: Path) -> None:
    paths = state_with_secrets(tmp_path)
    save(paths, "github-client-id", CLIENT_ID)
    with pytest.raises(HubkeeperError) as caught:
        read_secrets(paths, github=True)
    path = paths.secret("github-client-secret")
    assert caught.value.message == (f"secret {path} is missing: it holds a client secret of "
                                    "the GitHub OAuth app ('Generate a new client secret' on "
                                    "the app's page)")
    assert "https://github.com/settings/applications/new" in (caught.value.hint or "")
    assert f"(umask 077; cat > {path})" in (caught.value.hint or "")


def test_github_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    paths = state_with_secrets(tmp_path)
    save(paths, "github-client-id", CLIENT_ID, mode=0o644)
    save(paths, "github-client-secret", CLIENT_SECRET)
    with pytest.raises(HubkeeperError, match="readable by other users") as caught:
        read_secrets(paths, github=True)
    assert caught.value.hint == f"chmod 600 {paths.secret('github-client-id')}"


def test_empty_github_secret_is_refused(tmp_path: Path) -> None:
    paths = state_with_secrets(tmp_path)
    save(paths, "github-client-id", "\n")
    with pytest.raises(HubkeeperError, match="is empty"):
        read_secrets(paths, github=True)


def hub_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(HUB.replace("hub: {name: physics, ip: 0.0.0.0, port: 443}",
                                "hub: {name: physics, mode: personal, state_dir: state}"))
    return path


def test_render_from_host_shows_secrets_redacted_and_reads_them_otherwise(
        tmp_path: Path) -> None:
    hub = Hub.open(hub_yaml(tmp_path))
    c = render(hub.spec, Runtime.from_hub(hub, redact=True))
    assert c.GitHubOAuthenticator.client_id == "<redacted>"
    assert c.GitHubOAuthenticator.client_secret == "<redacted>"

    paths = state_with_secrets(tmp_path)
    with pytest.raises(HubkeeperError, match="github-client-id is missing"):
        Runtime.from_hub(hub)
    save(paths, "github-client-id", CLIENT_ID)
    save(paths, "github-client-secret", CLIENT_SECRET)
    c = render(hub.spec, Runtime.from_hub(hub))
    assert c.GitHubOAuthenticator.client_secret == CLIENT_SECRET
    assert stat.S_IMODE(paths.secret("github-client-secret").stat().st_mode) == 0o600
