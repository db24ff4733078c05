"""The rules of auth.oidc (OpenID Connect), as located problems: the section belongs to
auth.kind oidc, which needs an issuer and a callback URL that matches hub.url and
hub.base_url; with users.accounts: first_login someone must restrict who the provider
admits."""

from __future__ import annotations

import urllib.parse

from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules import Found

CALLBACK = "hub/oauth_callback"


def expected_callback(spec: HubSpec) -> str | None:
    """The callback URL hub.url implies (None without hub.url); its path is hub.base_url."""
    if not spec.hub.url:
        return None
    return spec.hub.url.rstrip("/") + "/" + CALLBACK


def oidc_callback_url(spec: HubSpec) -> str | None:
    """auth.oidc.callback_url, or the one hub.url implies."""
    return spec.auth.oidc.callback_url or expected_callback(spec)


def oidc_problems(spec: HubSpec) -> Found:
    auth = spec.auth
    if auth.kind != "oidc":
        return []  # auth.oidc with another kind: spec.py's _auth_kind_problems
    if "oidc" not in auth.model_fields_set:
        return [(("auth", "kind"),
                 "kind 'oidc' needs an auth.oidc section with at least issuer (the "
                 "provider's issuer URL) and, without hub.url, callback_url")]
    oidc = auth.oidc
    problems: Found = []
    if oidc.issuer is None:
        problems.append((("auth", "oidc"),
                         "issuer is required: the provider's issuer URL, e.g. "
                         "https://keycloak.example.edu/realms/campus (its "
                         "/.well-known/openid-configuration names it)"))
    problems += _callback_problems(spec)
    if oidc.scopes is not None and "openid" not in oidc.scopes:
        problems.append((("auth", "oidc", "scopes"),
                         "must include 'openid' (without it the provider answers plain "
                         "OAuth 2.0: no ID token, no subject)"))
    users = spec.users
    if users.allow_all and oidc.allowed_groups:
        problems.append((("users", "allow_all"),
                         "with kind 'oidc' this lets everyone the provider accepts in, so "
                         "auth.oidc.allowed_groups would have no effect; remove one of them"))
    if users.accounts == "first_login" and not (oidc.allowed_groups or users.allow_all):
        problems.append((("users", "accounts"),
                         "first_login with kind 'oidc' admits whom the provider admits: "
                         "set auth.oidc.allowed_groups (the provider groups whose members "
                         "get an account), or users.allow_all: true to admit everyone the "
                         "provider accepts"))
    roster_groups = set(users.groups)
    for entry in users.roster.entries:
        roster_groups.update(entry.groups)
    for claim_group, group in oidc.groups.items():
        if group in roster_groups:
            problems.append((("auth", "oidc", "groups", claim_group),
                             f"{group!r} is also a roster group; the provider and the roster "
                             "cannot both decide who is in it: use another group name"))
    return problems


def _callback_problems(spec: HubSpec) -> Found:
    oidc = spec.auth.oidc
    wanted_path = f"{spec.hub.base_url}{CALLBACK}"
    expected = expected_callback(spec)
    if oidc.callback_url is None:
        if expected is None:
            return [(("auth", "oidc"),
                     "callback_url is required without hub.url: the redirect URI "
                     "registered with the provider, e.g. http://127.0.0.1:"
                     f"{spec.hub.port}{wanted_path}")]
        return []
    if expected is not None:
        if oidc.callback_url != expected:
            return [(("auth", "oidc", "callback_url"),
                     f"must be {expected!r} (hub.url followed by {CALLBACK}): the provider "
                     "sends people back there; or remove it, it is the default")]
        return []
    path = urllib.parse.urlsplit(oidc.callback_url).path
    if path != wanted_path:
        return [(("auth", "oidc", "callback_url"),
                 f"the path must be {wanted_path!r} (hub.base_url {spec.hub.base_url!r} "
                 f"followed by {CALLBACK}), not {path!r}")]
    return []
