"""auth.kind lti13: hub.yaml's auth.lti13 (located problems), the rendered traits, and the
authenticator's identity and admission on verified launch claims.

The launch itself (signatures, JWKS, state and nonce, the forms) runs against a real HTTP
test platform in tests/component/test_auth_lti13_hub.py; here the claims are given as
ltiauthenticator hands them over after it verified them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tornado import web

from hubkeeper.base.errors import InvalidInput
from hubkeeper.config import parse
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.runtime import Runtime
from hubkeeper.hub.auth_lti13 import LTI13Authenticator, role_names
from hubkeeper.render.jupyterhub import AUTHENTICATORS, render
from hubkeeper.roster import build_roster
from hubkeeper.state.statedir import Secrets, StatePaths

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
ISS = "https://canvas.instructure.com"

SECTION = f"""\
auth:
  kind: lti13
  lti13:
    issuer: {ISS}
    client_id: "10000000000042"
    authorize_url: https://sso.canvaslms.com/api/lti/authorize_redirect
    jwks_url: https://sso.canvaslms.com/api/lti/security/jwks
    courses: [4dde05e8ca1973bcca9bffc13e1548820eee93a3]
    groups: {{Learner: students, TeachingAssistant: tas}}
"""
HUB = SECTION + "users:\n  admins: [prof]\n"

SECRETS = Secrets(cookie_secret_file="/state/secrets/cookie-secret", proxy_token="PROXY",
                  service_token="SERVICE", shared_password="USERPW", admin_password="ADMINPW",
                  github_client_id="", github_client_secret="")


STATE = StatePaths(Path("/nonexistent/state"))


@pytest.fixture(autouse=True)
def state(tmp_path: Path) -> StatePaths:
    """The hub's state dir, where the authenticator binds users to their subjects."""
    global STATE
    STATE = StatePaths(tmp_path / "state")
    STATE.root.mkdir()
    return STATE


def rendered(text: str = HUB):
    spec = parse(text)
    roster = build_roster(LoadedSpec(spec, Path("/srv/physics/hub.yaml")))
    runtime = Runtime(mode="personal", state=STATE,
                      secrets=SECRETS, proxy_command=("configurable-http-proxy",),
                      singleuser_command=("jupyterhub-singleuser",), as_root=False,
                      roster=roster)
    return render(spec, runtime)


def claims(sub: str = "a6d5c443-1f51-4783", email: str | None = "Ann.Lee@uni.example.edu",
           roles: tuple[str, ...] = (f"{MEMBERSHIP}#Learner",),
           context: str | None = "4dde05e8ca1973bcca9bffc13e1548820eee93a3",
           **more: object) -> dict:
    """What ltiauthenticator hands to authenticate() after it verified the id_token."""
    token: dict = {"iss": ISS, "sub": sub, "aud": "10000000000042",
                   LTI + "message_type": "LtiResourceLinkRequest", LTI + "version": "1.3.0",
                   LTI + "roles": list(roles), **more}
    if email is not None:
        token["email"] = email
    if context is not None:
        token[LTI + "context"] = {"id": context, "label": "PHYS101", "title": "Physics 101"}
    return token


def log_in(token: dict, text: str = HUB) -> dict | None:
    """JupyterHub's outer API, as the callback handler calls it: authenticate, normalise,
    blocked and allowed checks, admin status."""
    authenticator = LTI13Authenticator(config=rendered(text))
    return asyncio.run(authenticator.get_authenticated_user(None, token))


def test_rendered_traits() -> None:
    c = rendered()
    assert c.JupyterHub.authenticator_class == AUTHENTICATORS["lti13"]
    assert c.JupyterHub.authenticator_class == "hubkeeper.hub.auth_lti13.LTI13Authenticator"
    lti = c.LTI13Authenticator
    assert lti.issuer == ISS
    assert lti.client_id == {"10000000000042"}
    assert lti.authorize_url == "https://sso.canvaslms.com/api/lti/authorize_redirect"
    assert lti.jwks_endpoint == "https://sso.canvaslms.com/api/lti/security/jwks"
    assert lti.username_key == "email"
    assert lti.courses == ["4dde05e8ca1973bcca9bffc13e1548820eee93a3"]
    assert lti.uri_scheme == "auto"
    assert "redirect_uri" not in lti  # from each launch's request
    authenticator = LTI13Authenticator(config=c)
    assert authenticator.login_url("/hub/") == "/hub/lti13/oauth_login"
    assert authenticator.callback_url("/hub/") == "/hub/lti13/oauth_callback"


def test_hub_url_gives_the_redirect_uri_and_https() -> None:
    text = ("hub:\n  url: https://hub.example.edu/physics/\n  base_url: /physics/\n"
            "tls: {letsencrypt_email: admin@example.edu}\n" + HUB)
    c = rendered(text.replace('client_id: "10000000000042"', "client_id: [one, two]"))
    assert c.LTI13Authenticator.redirect_uri == (
        "https://hub.example.edu/physics/hub/lti13/oauth_callback")
    assert c.LTI13Authenticator.uri_scheme == "https"
    assert c.LTI13Authenticator.client_id == {"one", "two"}


def test_an_explicit_redirect_uri_is_used() -> None:
    uri = "http://127.0.0.1:8000/hub/lti13/oauth_callback"
    c = rendered(SECTION + f"    redirect_uri: {uri}\nusers: {{admins: [prof]}}\n")
    assert c.LTI13Authenticator.redirect_uri == uri


def test_instructors_are_admins_unless_admin_groups_say_otherwise() -> None:
    assert parse(HUB).auth.lti13.admin_groups == ["Instructor"]
    assert log_in(claims(roles=(f"{MEMBERSHIP}#Instructor",)))["admin"]  # type: ignore[index]
    assert not log_in(claims())["admin"]  # type: ignore[index]
    nobody = SECTION + "    admin_groups: []\nusers: {admins: [prof]}\n"
    assert parse(nobody).auth.lti13.admin_groups == []


def test_role_short_names() -> None:
    roles = [f"{MEMBERSHIP}#Instructor", f"{MEMBERSHIP}/Instructor#TeachingAssistant",
             "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty",
             "http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator",
             "Mentor", "urn:lti:role:ims/lis/Learner", "urn:lti:instrole:ims/lis/Staff", "", 7]
    assert role_names(roles) == {"Instructor", "TeachingAssistant", "Mentor", "Learner"}
    assert role_names("Instructor") == set()  # not a list: no roles


def test_identity_is_issuer_and_sub_with_roles_and_context() -> None:
    authenticator = LTI13Authenticator(config=rendered())
    token = claims(roles=(f"{MEMBERSHIP}#Learner", f"{MEMBERSHIP}#Mentor"))
    identity = authenticator.provider_identity({"name": "ann.lee", "auth_state": token})
    assert identity is not None
    assert identity.provider == "lti13"
    assert identity.subject == f"lti13:{ISS} a6d5c443-1f51-4783"
    assert identity.groups == {"Learner", "Mentor",
                               "context:4dde05e8ca1973bcca9bffc13e1548820eee93a3"}
    assert authenticator.provider_identity({"name": "x", "auth_state": {}}) is None


def test_a_launch_from_a_listed_course_is_admitted_with_its_claims() -> None:
    model = log_in(claims())
    assert model is not None
    assert model["name"] == "ann.lee@uni.example.edu"  # JupyterHub lower-cases the name
    assert model["auth_state"]["sub"] == "a6d5c443-1f51-4783"  # the id_token's claims
    assert model["auth_state"][LTI + "context"]["title"] == "Physics 101"


def test_roles_become_groups_and_the_name_stays_with_its_first_sub() -> None:
    ta = claims(roles=(f"{MEMBERSHIP}#Learner", f"{MEMBERSHIP}/Instructor#TeachingAssistant"))
    model = log_in(ta)
    assert model is not None
    assert model["groups"] == ["students", "tas"]  # auth.lti13.groups
    assert not model["admin"]
    with pytest.raises(web.HTTPError, match="belongs to another lti13 account"):
        log_in(claims(sub="someone-else"))  # same e-mail, another person at the platform


def test_a_launch_from_another_course_or_without_one_is_refused() -> None:
    with pytest.raises(web.HTTPError) as refused:
        log_in(claims(context="some-other-course"))
    assert refused.value.status_code == 403
    assert refused.value.jupyterhub_message == (  # type: ignore[attr-defined]
        "This hub does not take launches from the course Physics 101. Open it from your "
        "course's link, or tell your instructor.")
    with pytest.raises(web.HTTPError, match="does not take launches from there"):
        log_in(claims(context=None))


def test_roster_users_are_admitted_from_any_course() -> None:
    text = SECTION + "    username_key: custom_user\nusers:\n  admins: [prof]\n"
    custom = {LTI + "custom": {"user": "prof"}}
    model = log_in(claims(email=None, context="elsewhere", **custom), text)
    assert model is not None and model["name"] == "prof"
    with pytest.raises(web.HTTPError, match="does not take launches"):
        log_in(claims(email=None, context="elsewhere", **{LTI + "custom": {"user": "eve"}}),
               text)


def test_a_launch_without_the_username_claim_is_refused_with_a_message() -> None:
    with pytest.raises(web.HTTPError) as refused:
        log_in(claims(email=None))
    assert refused.value.status_code == 403
    assert "did not send your email" in refused.value.jupyterhub_message  # type: ignore[attr-defined]


def test_an_anonymous_launch_is_refused() -> None:
    token = claims()
    del token["sub"]
    with pytest.raises(web.HTTPError, match="anonymous launch"):
        log_in(token)


INVALID = [
    ("lti13 section with another kind",
     "auth:\n  kind: pam\n  lti13:\n    issuer: https://x.example.org\nusers: {allowed: [a]}\n",
     "hub.yaml:4:5: auth.lti13: only used with kind 'lti13', not 'pam'; remove it"),
    ("lti13 without its section", "auth:\n  kind: lti13\nusers: {allowed: [a]}\n",
     "hub.yaml:2:9: auth.kind: kind 'lti13' needs an auth.lti13 section with issuer, "
     "client_id, authorize_url and jwks_url"),
    ("lti13 registration incomplete",
     "auth:\n  kind: lti13\n  lti13:\n    issuer: https://x.example.org\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:4:5: auth.lti13: client_id, authorize_url and jwks_url are required"),
    ("issuer over http", HUB.replace(ISS, "http://canvas.instructure.com"),
     "hub.yaml:4:13: auth.lti13.issuer: 'http://canvas.instructure.com' must start with "
     "https://"),
    ("jwks_url not an address", HUB.replace("https://sso.canvaslms.com/api/lti/security/jwks",
                                            "sso.canvaslms.com/jwks"),
     "hub.yaml:7:15: auth.lti13.jwks_url: 'sso.canvaslms.com/jwks' is not a web address"),
    ("username_key with a space", SECTION + "    username_key: user name\nusers: {allowed: [a]}\n",
     "hub.yaml:10:19: auth.lti13.username_key: 'user name' is not a claim name"),
    ("redirect_uri is not the callback",
     SECTION + "    redirect_uri: https://hub.example.org/hub/oauth_callback\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:10:19: auth.lti13.redirect_uri: the path must be '/hub/lti13/oauth_callback' "
     "(hub.base_url '/' followed by hub/lti13/oauth_callback), not '/hub/oauth_callback'"),
    ("redirect_uri outside base_url",
     "hub:\n  base_url: /physics/\n" + SECTION
     + "    redirect_uri: https://hub.example.org/hub/lti13/oauth_callback\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:12:19: auth.lti13.redirect_uri: the path must be "
     "'/physics/hub/lti13/oauth_callback'"),
    ("redirect_uri on another host than hub.url",
     "hub:\n  url: https://hub.example.org/\ntls: {letsencrypt_email: a@example.org}\n"
     + SECTION + "    redirect_uri: https://other.example.org/hub/lti13/oauth_callback\n"
     "users: {allowed: [a]}\n",
     "hub.yaml:13:19: auth.lti13.redirect_uri: must be on hub.url 'https://hub.example.org/', "
     "e.g. https://hub.example.org/hub/lti13/oauth_callback, not https://other.example.org"),
    ("allow_all and courses", SECTION + "users:\n  allow_all: true\n",
     "hub.yaml:11:14: users.allow_all: with kind 'lti13' this lets in everyone the platform "
     "launches, so auth.lti13.courses would have no effect; remove one of them"),
    ("first_login without courses",
     SECTION.replace("    courses: [4dde05e8ca1973bcca9bffc13e1548820eee93a3]\n", "")
     + "users:\n  accounts: first_login\n  allowed: [a]\n",
     "hub.yaml:10:13: users.accounts: with auth.kind lti13, first_login gives accounts to the "
     "people launched from auth.lti13.courses: list the course contexts, or set "
     "users.allow_all: true"),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_lti13_is_reported_at_its_line(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text, "hub.yaml")
    problems = [str(problem) for problem in caught.value.problems]
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_courses_let_people_in_without_a_roster() -> None:
    spec = parse(SECTION)  # no users: the course admits
    assert spec.auth.lti13.courses
    no_courses = SECTION.replace("    courses: [4dde05e8ca1973bcca9bffc13e1548820eee93a3]\n", "")
    first_login = parse(no_courses + "users:\n  accounts: first_login\n  allow_all: true\n")
    assert first_login.users.allow_all


class _Connection:
    """The edge of a request the handler needs no more of (it writes no response here)."""

    def set_close_callback(self, callback: object) -> None:
        return None


def state_cookie(text: str) -> dict[str, str]:
    """The attributes of the state cookie the real login handler sets for a launch."""
    from types import SimpleNamespace

    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    from hubkeeper.hub.auth_lti13 import LTI13LoginHandler

    authenticator = LTI13Authenticator(config=rendered(text))
    app = web.Application(authenticator=authenticator, cookie_secret=b"k" * 32,
                          hub=SimpleNamespace(base_url="/hub/"))
    start = RequestStartLine("POST", "/hub/lti13/oauth_login", "HTTP/1.1")
    request = HTTPServerRequest(start_line=start, connection=_Connection(),
                                headers=HTTPHeaders({"Host": "hub.example.edu"}))
    handler = LTI13LoginHandler(app, request)
    handler._set_oauth_cookie("lti13authenticator-state", "state")  # noqa: SLF001
    morsel = handler._new_cookie["lti13authenticator-state"]  # type: ignore[attr-defined]
    return {key: str(value) for key, value in morsel.items() if value}


def test_state_cookies_cross_sites_over_https_only() -> None:
    # The platform posts the id_token from its own site: a Lax cookie would stay behind.
    https = state_cookie("hub:\n  url: https://hub.example.edu/\n"
                         "tls: {letsencrypt_email: a@example.edu}\n" + HUB)
    assert https["samesite"] == "None" and https["secure"] and https["httponly"]
    plain = state_cookie(HUB)  # http on this machine (tests): SameSite=None needs Secure
    assert "samesite" not in plain and "secure" not in plain and plain["httponly"]
