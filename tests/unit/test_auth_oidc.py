"""auth.kind oidc: hub.yaml's rules (each problem at its line), the rendered traits, the
authenticator's own checks (discovery issuer, ID token, who is admitted), and its secrets.
The login against the real provider is in tests/component/test_auth_oidc.py."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import jwt
import pytest
from tornado import web

from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.config import load, parse
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.runtime import Runtime
from hubkeeper.hub.auth_oidc import OIDCAuthenticator
from hubkeeper.render.jupyterhub import render
from hubkeeper.roster import build_roster
from hubkeeper.state.statedir import Secrets, StatePaths, read_secrets

STATE = StatePaths(Path("/var/lib/hubkeeper/course"))
SECRETS = Secrets(cookie_secret_file="/x/cookie-secret", proxy_token="P", service_token="S",
                  shared_password="U", admin_password="A", oidc_client_id="CLIENT",
                  oidc_client_secret="OIDCSECRET")
ISSUER = "https://keycloak.example.edu/realms/campus"

OIDC = f"""\
hub: {{name: course, base_url: /physics/, url: https://hub.example.edu/physics/}}
tls: {{letsencrypt_email: ops@example.edu}}
auth:
  kind: oidc
  oidc:
    issuer: {ISSUER}
    groups: {{physics-tas: tas}}
    admin_groups: [physics-tas]
    allowed_groups: [physics-students]
users:
  admins: [prof]
"""


def rendered(text: str):
    spec = parse(text)
    roster = build_roster(LoadedSpec(spec, Path("/srv/hub.yaml")))
    return render(spec, Runtime(mode="system", state=STATE, secrets=SECRETS,
                                proxy_command=("p",), singleuser_command=("s",),
                                as_root=True, roster=roster))


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(text, "hub.yaml")
    return [str(problem) for problem in caught.value.problems]


# -- render ------------------------------------------------------------------------------

def test_render_sets_the_provider_traits() -> None:
    c = rendered(OIDC)
    assert c.JupyterHub.authenticator_class == "hubkeeper.hub.auth_oidc.OIDCAuthenticator"
    auth = c.OIDCAuthenticator
    assert auth.issuer == ISSUER
    assert (auth.client_id, auth.client_secret) == ("CLIENT", "OIDCSECRET")
    # the default callback: hub.url followed by hub/oauth_callback
    assert auth.oauth_callback_url == "https://hub.example.edu/physics/hub/oauth_callback"
    assert auth.username_claim == "preferred_username"
    assert auth.groups_claim == "groups"
    assert auth.scope == ["openid", "profile", "email"]
    assert auth.groups_scope is True  # groups are used: asked for where the provider offers
    assert auth.allowed_claim_groups == ["physics-students"]
    assert auth.login_service == "keycloak.example.edu"
    # discovery happens in the hub at the first login, never here
    assert "authorize_url" not in auth and "token_url" not in auth


def test_render_given_scopes_and_claims() -> None:
    c = rendered(OIDC.replace("    groups: {physics-tas: tas}\n",
                              "    scopes: [openid, email, roles]\n"
                              "    username_claim: email\n    groups_claim: roles\n"))
    assert c.OIDCAuthenticator.scope == ["openid", "email", "roles"]
    assert "groups_scope" not in c.OIDCAuthenticator
    assert c.OIDCAuthenticator.username_claim == "email"
    assert c.OIDCAuthenticator.groups_claim == "roles"


def test_render_without_groups_asks_for_no_groups_scope() -> None:
    c = rendered(OIDC.replace("    groups: {physics-tas: tas}\n    admin_groups: [physics-tas]\n"
                              "    allowed_groups: [physics-students]\n", ""))
    assert c.OIDCAuthenticator.groups_scope is False


def test_redacted_secrets_reach_the_config() -> None:
    spec = parse(OIDC)
    c = render(spec, Runtime(mode="system", state=STATE, secrets=Secrets.redacted(STATE),
                             proxy_command=("p",), singleuser_command=("s",), as_root=True,
                             roster=build_roster(LoadedSpec(spec, Path("/srv/hub.yaml")))))
    assert c.OIDCAuthenticator.client_secret == "<redacted>"


# -- hub.yaml rules ----------------------------------------------------------------------

LOCAL = """\
hub: {port: 8000}
auth:
  kind: oidc
  oidc:
    issuer: ISSUER
    callback_url: CALLBACK
users:
  allowed: [ann]
"""


def local(issuer: str = "http://127.0.0.1:9000",
          callback: str = "http://127.0.0.1:8000/hub/oauth_callback", rest: str = "") -> str:
    return LOCAL.replace("ISSUER", issuer).replace("CALLBACK", callback) + rest


def test_local_test_provider_loads() -> None:
    spec = parse(local())
    assert spec.auth.oidc.issuer == "http://127.0.0.1:9000"


@pytest.mark.parametrize(("text", "expected"), [
    (local(issuer="http://idp.example.edu"),
     "hub.yaml:5:13: auth.oidc.issuer: 'http://idp.example.edu' must start with "
     "https://"),
    (local(issuer="https://idp.example.edu/.well-known/openid-configuration"),
     "hub.yaml:5:13: auth.oidc.issuer: 'https://idp.example.edu/.well-known/"
     "openid-configuration': give the issuer itself"),
    (local(issuer="idp.example.edu"),
     "hub.yaml:5:13: auth.oidc.issuer: 'idp.example.edu' is not a web address"),
    (local(callback="http://127.0.0.1:8000/callback"),
     "hub.yaml:6:19: auth.oidc.callback_url: 'http://127.0.0.1:8000/callback' "
     "must end with '/hub/oauth_callback'"),
    (local(callback="http://127.0.0.1:8000/x/hub/oauth_callback"),
     "hub.yaml:6:19: auth.oidc.callback_url: the path must be '/hub/oauth_callback'"),
    (LOCAL.replace("    issuer: ISSUER\n", "").replace("CALLBACK", "http://127.0.0.1:8000/hub/"
                                                       "oauth_callback"),
     "hub.yaml:5:5: auth.oidc: issuer is required"),
    (local().replace("    callback_url: http://127.0.0.1:8000/hub/oauth_callback\n", ""),
     "hub.yaml:5:5: auth.oidc: callback_url is required without hub.url"),
    ("auth:\n  kind: oidc\nusers:\n  allowed: [ann]\n",
     "hub.yaml:2:9: auth.kind: kind 'oidc' needs an auth.oidc section"),
    ("auth:\n  kind: pam\n  oidc:\n    issuer: https://idp.example.edu\nusers:\n  allowed: [a]\n",
     "hub.yaml:4:5: auth.oidc: only used with kind 'oidc', not 'pam'"),
    (local().replace("callback\n", "callback\n    scopes: [profile]\n"),
     "hub.yaml:7:13: auth.oidc.scopes: must include 'openid'"),
    (local(rest="  allow_all: true\n").replace(
        "callback\n", "callback\n    allowed_groups: [students]\n"),
     "hub.yaml:10:14: users.allow_all: with kind 'oidc' this lets everyone the provider "
     "accepts in"),
    (local(rest="  accounts: first_login\n"),
     "hub.yaml:9:13: users.accounts: first_login with kind 'oidc' admits whom the provider "
     "admits: set auth.oidc.allowed_groups"),
])
def test_oidc_problems_are_reported_at_their_lines(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_callback_must_be_hub_url_followed_by_the_callback_path() -> None:
    text = OIDC.replace(f"    issuer: {ISSUER}\n", f"    issuer: {ISSUER}\n    callback_url: "
                        "https://other.example.edu/physics/hub/oauth_callback\n")
    problems = problems_of(text)
    assert problems == [
        "hub.yaml:7:19: auth.oidc.callback_url: must be "
        "'https://hub.example.edu/physics/hub/oauth_callback' (hub.url followed by "
        "hub/oauth_callback): the provider sends people back there; or remove it, it is the "
        "default"]


def test_a_mapped_group_may_not_also_be_a_roster_group() -> None:
    text = local(rest="  groups: {tas: [ann]}\n").replace(
        "callback\n", "callback\n    groups: {physics-tas: tas}\n")
    assert problems_of(text) == [
        "hub.yaml:7:27: auth.oidc.groups.physics-tas: 'tas' is also a roster group; the "
        "provider and the roster cannot both decide who is in it: use another group name"]


def test_limits_may_name_a_group_the_provider_fills(tmp_path: Path) -> None:
    from hubkeeper.config.rules.roster import group_reference_problems

    config = tmp_path / "hub.yaml"
    config.write_text(local().replace("callback\n", "callback\n    groups: {physics-tas: tas}\n")
                      + "limits:\n  groups:\n    tas: {memory: 2G}\n    tsa: {memory: 1G}\n")
    problems = [str(p) for p in group_reference_problems(load(config), ())]
    assert len(problems) == 1 and "limits.groups.tsa: 'tsa' is not a roster group" in problems[0]


def test_allowed_groups_alone_let_someone_in() -> None:
    text = local().replace("users:\n  allowed: [ann]\n", "").replace(
        "callback\n", "callback\n    allowed_groups: [students]\n")
    assert parse(text).auth.oidc.allowed_groups == ["students"]


def test_the_examples_of_docs_users_oidc_load() -> None:
    import re

    text = (Path(__file__).parents[2] / "docs" / "users-oidc.md").read_text()
    keycloak, google = re.findall(r"```yaml\n(.*?)```", text, re.S)
    assert parse(keycloak).auth.oidc.allowed_groups == ["physics-students", "physics-tas"]
    web = "hub: {url: https://hub.example.edu/}\ntls: {letsencrypt_email: a@example.edu}\n"
    assert parse(web + google).auth.oidc.username_claim == "email"


# -- secrets -----------------------------------------------------------------------------

def test_client_secrets_are_read_from_the_state_dir(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    secrets = paths.secrets
    secrets.mkdir(mode=0o700)
    for name in ("cookie-secret", "proxy-token", "service-token", "api-token", "status-token",
                 "metrics-token", "shared-password", "admin-password"):
        (secrets / name).write_text("x")
    with pytest.raises(HubkeeperError, match="oidc-client-id is missing: it holds the "
                                             "OpenID Connect client's ID"):
        read_secrets(paths, oidc=True)
    for name, value in (("oidc-client-id", "the-id\n"), ("oidc-client-secret", "s3cret\n")):
        (secrets / name).write_text(value)
        os.chmod(secrets / name, 0o600)
    read = read_secrets(paths, oidc=True)
    assert (read.oidc_client_id, read.oidc_client_secret) == ("the-id", "s3cret")
    assert read_secrets(paths).oidc_client_secret == ""  # only read with kind oidc
    os.chmod(secrets / "oidc-client-secret", 0o644)
    with pytest.raises(HubkeeperError, match="readable by other users"):
        read_secrets(paths, oidc=True)


def test_check_reports_missing_client_secrets_at_the_auth_section(tmp_path: Path) -> None:
    from hubkeeper.context.hub import Hub
    from hubkeeper.verbs.check import _operator_secret_problems

    config = tmp_path / "hub.yaml"
    config.write_text(local().replace("{port: 8000}", "{port: 8000, state_dir: state}"))
    hub = Hub.open(config, checking=True)
    problems = [str(p) for p in _operator_secret_problems(hub, "oidc")]
    assert len(problems) == 2
    assert problems[0].startswith(f"{config}:5:5: auth.oidc: secret ")
    assert "oidc-client-id is missing" in problems[0]
    assert "oidc-client-secret is missing" in problems[1]
    assert _operator_secret_problems(hub, "pam") == []


# -- the authenticator -------------------------------------------------------------------

def authenticator(**traits) -> OIDCAuthenticator:
    return OIDCAuthenticator(issuer=ISSUER, client_id="CLIENT", client_secret="S",
                             allowed_claim_groups=["students"], provider_admin_groups=["tas"],
                             **traits)


DOCUMENT = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/auth",
            "token_endpoint": ISSUER + "/token", "userinfo_endpoint": ISSUER + "/me",
            "scopes_supported": ["openid", "profile", "email", "groups"]}


def test_discovery_sets_the_endpoints_and_the_groups_scope() -> None:
    auth = authenticator(groups_scope=True, scope=["openid", "profile"])
    auth._apply_discovery(DOCUMENT)
    assert (auth.authorize_url, auth.token_url, auth.userdata_url) == (
        ISSUER + "/auth", ISSUER + "/token", ISSUER + "/me")
    assert auth.scope == ["openid", "profile", "groups"]
    offered_none = authenticator(groups_scope=True, scope=["openid"])
    offered_none._apply_discovery({**DOCUMENT, "scopes_supported": ["openid"]})
    assert offered_none.scope == ["openid"]  # e.g. Entra ID: no such scope, not asked


def test_discovery_of_another_issuer_is_refused() -> None:
    auth = authenticator()
    with pytest.raises(web.HTTPError) as caught:
        auth._apply_discovery({**DOCUMENT, "issuer": "https://evil.example.org"})
    assert caught.value.status_code == 503
    assert auth.authorize_url != ISSUER + "/auth"


def test_a_provider_that_cannot_be_reached_is_asked_again_at_the_next_login() -> None:
    from tornado.httpclient import HTTPClientError

    auth = authenticator()
    answers: list[object] = [HTTPClientError(502), DOCUMENT]
    asked: list[str] = []

    async def fetch(url, *args, **kwargs):
        asked.append(url)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    auth.httpfetch = fetch  # type: ignore[method-assign]
    with pytest.raises(web.HTTPError) as caught:
        asyncio.run(auth.discover())
    assert caught.value.status_code == 503
    asyncio.run(auth.discover())
    asyncio.run(auth.discover())  # once found, not asked again
    assert asked == [ISSUER + "/.well-known/openid-configuration"] * 2
    assert auth.token_url == ISSUER + "/token"


def id_token(**claims) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "sub": "u-1", "aud": "CLIENT", "exp": now + 60,
                       "iat": now, **claims}, "a-key-the-hub-does-not-check-at-all",
                      algorithm="HS256")


def test_id_token_claims_check_audience_issuer_and_expiry() -> None:
    auth = authenticator()
    assert auth.id_token_claims({"id_token": id_token()})["sub"] == "u-1"
    for bad in (id_token(aud="someone-else"), id_token(iss="https://evil.example.org"),
                id_token(exp=int(time.time()) - 3600)):
        with pytest.raises(web.HTTPError) as caught:
            auth.id_token_claims({"id_token": bad})
        assert caught.value.status_code == 403
    with pytest.raises(web.HTTPError):
        auth.id_token_claims({"access_token": "a"})  # no ID token: not OpenID Connect


def test_claims_come_from_the_id_token_and_the_userinfo_of_the_same_subject() -> None:
    auth = authenticator()
    auth._apply_discovery(DOCUMENT)

    async def userinfo(*args, **kwargs):
        return {"sub": "u-1", "preferred_username": "ann", "groups": ["students"]}

    auth.httpfetch = userinfo  # type: ignore[method-assign]
    claims = asyncio.run(auth.token_to_user({"id_token": id_token(), "access_token": "a",
                                             "token_type": "Bearer"}))
    assert (claims["iss"], claims["sub"], claims["preferred_username"]) == (ISSUER, "u-1",
                                                                            "ann")

    async def other(*args, **kwargs):
        return {"sub": "u-2", "preferred_username": "ann"}

    auth.httpfetch = other  # type: ignore[method-assign]
    claims = asyncio.run(auth.token_to_user({"id_token": id_token(preferred_username="bo"),
                                             "access_token": "a", "token_type": "Bearer"}))
    # another subject's userinfo is not used (OpenID Connect Core 5.3.2)
    assert (claims["sub"], claims["preferred_username"]) == ("u-1", "bo")


def model(name: str, groups: object, sub: str = "u-1") -> dict:
    return {"name": name, "admin": None,
            "auth_state": {"oauth_user": {"iss": ISSUER, "sub": sub, "groups": groups}}}


def test_provider_identity_is_issuer_and_subject_with_the_groups_claim() -> None:
    identity = authenticator().provider_identity(model("ann", ["students", "chess"]))
    assert identity is not None
    assert identity.provider == "oidc"
    assert identity.subject == f"oidc:{ISSUER} u-1"
    assert identity.groups == {"students", "chess"}
    assert authenticator().provider_identity(model("ann", "students")).groups == {"students"}
    assert authenticator().provider_identity(model("ann", None)).groups == frozenset()
    assert authenticator().provider_identity({"name": "x", "auth_state": {}}) is None


def test_allowed_and_admin_groups_admit_and_nobody_else() -> None:
    auth = authenticator()

    def allowed(name: str, groups: object) -> bool:
        return asyncio.run(auth.check_allowed(name, model(name, groups)))

    assert allowed("ann", ["students"])
    assert allowed("tina", ["tas"])
    assert not allowed("olga", ["alumni"])
    assert not allowed("olga", None)
    auth.allowed_users = {"olga"}  # the roster
    assert allowed("olga", ["alumni"])
