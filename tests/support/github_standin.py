"""A stand-in for a GitHub server, for tests: there is no GitHub here.

A real HTTP server on a free loopback port, laid out like a GitHub Enterprise Server (the
OAuth pages at the root, the REST API under /api/v3), so that the hub's authenticator is
pointed at it with auth.github.url and nothing else changes. It speaks what oauthenticator's
GitHubOAuthenticator uses:

- GET /login (a sign-in form) and POST /session: the browser's GitHub session (a cookie);
- GET /login/oauth/authorize: the app's client_id and registered callback URL checked, then
  a redirect back to the callback with a one-time code and the hub's state (to /login first
  when the browser has no session);
- POST /login/oauth/access_token: the code, the app's secret and the PKCE verifier checked,
  a token for the person (bound to their numeric id, so it survives a rename);
- GET /api/v3/user, /api/v3/user/teams (paged with Link headers),
  /api/v3/orgs/ORG/members/LOGIN and /api/v3/orgs/ORG/teams/TEAM/members/LOGIN (204 or 404).

People have a login, a numeric id and teams; `rename` changes a login the way GitHub does
(the id stays with the person, the old login is free for someone else to `register`).
Logins, organisation and team names compare case-insensitively, as on GitHub.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.simuser import SimUser, SimUserError, _excerpt

SESSION_COOKIE = "standin_github_session"
PAGE_SIZE = 2  # small, so that a person in three teams takes two pages


@dataclass
class Person:
    id: int
    login: str
    teams: set[tuple[str, str]] = field(default_factory=set)  # (organisation, team slug)
    orgs: set[str] = field(default_factory=set)  # organisations joined without a team

    def in_org(self, org: str) -> bool:
        return org.lower() in {o.lower() for o in self.orgs | {o for o, _ in self.teams}}

    def in_team(self, org: str, slug: str) -> bool:
        return (org.lower(), slug.lower()) in {(o.lower(), s.lower()) for o, s in self.teams}


@dataclass
class OAuthApp:
    client_id: str
    client_secret: str
    callback_url: str


@dataclass
class _Grant:
    person_id: int
    redirect_uri: str
    challenge: str | None


class GitHubStandIn:
    """Start with `with GitHubStandIn(app) as github:`; `github.url` is auth.github.url."""

    def __init__(self, app: OAuthApp) -> None:
        self.app = app
        self.people: dict[int, Person] = {}
        self.requests: list[str] = []  # "METHOD path status", for a failing test's report
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, int] = {}  # access token -> person id
        self._sessions: dict[str, int] = {}  # browser session -> person id
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> GitHubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # --- people -------------------------------------------------------------------------

    def register(self, login: str, id: int, teams: tuple[str, ...] = (),
                 orgs: tuple[str, ...] = ()) -> Person:
        """A GitHub account; `teams` as 'org:team'."""
        with self._lock:
            if self.find(login) is not None:
                raise ValueError(f"login {login} is taken")
            person = Person(id, login, {tuple(t.split(":", 1)) for t in teams},  # type: ignore[misc]
                            set(orgs))
            self.people[id] = person
            return person

    def rename(self, login: str, new_login: str) -> None:
        """What 'Change username' does on GitHub: same person and id, the old login free."""
        with self._lock:
            person = self.find(login)
            if person is None or self.find(new_login) is not None:
                raise ValueError(f"cannot rename {login} to {new_login}")
            person.login = new_login

    def find(self, login: str) -> Person | None:
        return next((p for p in self.people.values() if p.login.lower() == login.lower()),
                    None)

    def report(self) -> str:
        return "\n".join(self.requests[-60:])

    # --- the protocol -------------------------------------------------------------------

    def sign_in(self, login: str) -> str:
        person = self.find(login)
        if person is None:
            raise LookupError(login)
        session = secrets.token_urlsafe(16)
        self._sessions[session] = person.id
        return session

    def authorize(self, query: dict[str, str], session: str | None) -> tuple[int, str]:
        """(status, Location or error text) for /login/oauth/authorize."""
        if query.get("client_id") != self.app.client_id:
            return 404, "unknown client_id"
        redirect_uri = query.get("redirect_uri", self.app.callback_url)
        if redirect_uri != self.app.callback_url:
            # GitHub: "The redirect_uri MUST match the registered callback URL for this app."
            return 400, "redirect_uri_mismatch"
        if session not in self._sessions:
            return 302, "/login?" + urllib.parse.urlencode(
                {"return_to": "/login/oauth/authorize?" + urllib.parse.urlencode(query)})
        code = secrets.token_hex(10)
        challenge = query.get("code_challenge")
        if challenge and query.get("code_challenge_method") != "S256":
            return 400, "only S256 code challenges"
        self._codes[code] = _Grant(self._sessions[session], redirect_uri, challenge)
        back = {"code": code}
        if "state" in query:
            back["state"] = query["state"]
        return 302, redirect_uri + "?" + urllib.parse.urlencode(back)

    def access_token(self, form: dict[str, str]) -> dict[str, str]:
        if (form.get("client_id"), form.get("client_secret")) != (self.app.client_id,
                                                                   self.app.client_secret):
            return {"error": "incorrect_client_credentials",
                    "error_description": "The client_id and/or client_secret passed are "
                    "incorrect."}
        grant = self._codes.pop(form.get("code", ""), None)  # a code is good once
        if grant is None or form.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri:
            return {"error": "bad_verification_code",
                    "error_description": "The code passed is incorrect or expired."}
        if grant.challenge:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if digest != grant.challenge:
                return {"error": "invalid_grant",
                        "error_description": "The code_verifier does not match."}
        token = "gho_" + secrets.token_hex(18)
        self._tokens[token] = grant.person_id
        return {"access_token": token, "token_type": "bearer", "scope": "read:org"}

    def api(self, path: str, query: dict[str, str], authorization: str
            ) -> tuple[int, object, dict[str, str]]:
        scheme, _, token = authorization.partition(" ")
        person = self.people.get(self._tokens.get(token, -1)) if scheme.lower() in (
            "bearer", "token") else None
        if person is None:
            return 401, {"message": "Bad credentials"}, {}
        parts = path.strip("/").split("/")
        if parts == ["user"]:
            return 200, {"login": person.login, "id": person.id, "node_id": f"U_{person.id}",
                         "type": "User", "name": person.login.title(), "email": None}, {}
        if parts == ["user", "teams"]:
            return self._teams_page(person, query)
        if len(parts) == 4 and parts[0] == "orgs" and parts[2] == "members":
            member = self.find(parts[3])
            ok = member is not None and member.in_org(parts[1]) and person.in_org(parts[1])
            return (204, None, {}) if ok else (404, {"message": "Not Found"}, {})
        if len(parts) == 6 and parts[0] == "orgs" and parts[2] == "teams" and (
                parts[4] == "members"):
            member = self.find(parts[5])
            ok = member is not None and member.in_team(parts[1], parts[3])
            return (204, None, {}) if ok else (404, {"message": "Not Found"}, {})
        return 404, {"message": "Not Found"}, {}

    def _teams_page(self, person: Person, query: dict[str, str]
                    ) -> tuple[int, object, dict[str, str]]:
        teams = sorted(person.teams)
        per_page = min(int(query.get("per_page", "30")), PAGE_SIZE)
        page = int(query.get("page", "1"))
        chunk = teams[(page - 1) * per_page:page * per_page]
        body = [{"id": abs(hash((org.lower(), slug.lower()))) % 10**7, "name": slug.title(),
                 "slug": slug, "organization": {"login": org}} for org, slug in chunk]
        headers = {}
        if page * per_page < len(teams):
            headers["Link"] = (f'<{self.url}/api/v3/user/teams?per_page={per_page}&'
                               f'page={page + 1}>; rel="next"')
        return 200, body, headers


LOGIN_PAGE = """<!doctype html><title>Sign in to GitHub (stand-in)</title>
<form method="post" action="/session"><input name="login"><input type="password"
name="password"><input type="hidden" name="return_to" value="{return_to}">
<input type="submit" value="Sign in"></form>"""


def _handler(github: GitHubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # recorded in github.requests instead

        def _send(self, status: int, body: object = None, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> None:
            github.requests.append(f"{self.command} {self.path} {status}")
            data = (body.encode() if isinstance(body, str) else
                    json.dumps(body).encode() if body is not None else b"")
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length", "0"))
            pairs = urllib.parse.parse_qsl(self.rfile.read(length).decode())
            return dict(pairs)

        def _session(self) -> str | None:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
            morsel = cookie.get(SESSION_COOKIE)
            return morsel.value if morsel else None

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/login":
                return_to = html.escape(query.get("return_to", "/"), quote=True)
                self._send(200, LOGIN_PAGE.format(return_to=return_to),
                           content_type="text/html")
            elif url.path == "/login/oauth/authorize":
                status, where = github.authorize(query, self._session())
                if status == 302:
                    self._send(302, None, {"Location": where})
                else:
                    self._send(status, where, content_type="text/plain")
            elif url.path.startswith("/api/v3/"):
                status, body, headers = github.api(url.path.removeprefix("/api/v3"), query,
                                                   self.headers.get("Authorization", ""))
                self._send(status, body, headers)
            else:
                self._send(404, {"message": "Not Found"})

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            form = self._form()
            if url.path == "/session":
                try:
                    session = github.sign_in(form.get("login", ""))
                except LookupError:
                    self._send(422, "Incorrect username or password.",
                               content_type="text/plain")
                    return
                return_to = form.get("return_to", "/")
                if not return_to.startswith("/"):  # only back to this server
                    return_to = "/"
                self._send(302, None, {
                    "Location": return_to,
                    "Set-Cookie": f"{SESSION_COOKIE}={session}; Path=/; HttpOnly"})
            elif url.path == "/login/oauth/access_token":
                answer = github.access_token(form)
                if "json" in self.headers.get("Accept", ""):
                    self._send(200, answer)
                else:  # GitHub's default answer is form-encoded
                    self._send(200, urllib.parse.urlencode(answer),
                               content_type="application/x-www-form-urlencoded")
            else:
                self._send(404, {"message": "Not Found"})

    return Handler


class GitHubUser(SimUser):
    """A student whose browser signs in to GitHub (the stand-in) with `github_login` and
    follows the real redirects: the hub's /hub/oauth_login, GitHub's sign-in form and
    authorize page, back to the hub's callback. `name` is the hub user it expects to be."""

    def __init__(self, base_url: str, name: str, github_login: str) -> None:
        super().__init__(base_url, name, password="")
        self.github_login = github_login

    async def try_login(self) -> tuple[int, str]:
        """Status and text of the page the redirects end at: the hub's home (200), or the
        hub's refusal."""
        home = urllib.parse.urlsplit(self.base).path + "hub/home"
        url = self.base + "hub/oauth_login?" + urllib.parse.urlencode({"next": home})
        async with self.session.get(url) as response:
            page = await response.text()
            at = response.url
        match = re.search(r'name="return_to" value="([^"]*)"', page)
        if response.status != 200 or match is None:
            return response.status, page  # the hub refused before GitHub was asked
        form = {"login": self.github_login, "password": "not-checked",
                "return_to": html.unescape(match.group(1))}
        async with self.session.post(at.with_path("/session").with_query(None),
                                     data=form) as response:
            return response.status, await response.text()

    async def login(self) -> None:
        began = time.monotonic()
        status, page = await self.try_login()
        if status != 200:
            raise SimUserError(f"GitHub login refused: HTTP {status} {_excerpt(page)}")
        self.timings.login = time.monotonic() - began
