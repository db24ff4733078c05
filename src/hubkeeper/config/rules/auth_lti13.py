"""Rules of auth.kind lti13 (auth.lti13) that span fields: the platform's registration is
complete, the redirect URI is this hub's, and first-login accounts have a course to come
from."""

from __future__ import annotations

import urllib.parse

from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules import Found

CALLBACK = "hub/lti13/oauth_callback"
LOGIN = "hub/lti13/oauth_login"
REQUIRED = ("issuer", "client_id", "authorize_url", "jwks_url")


def lti13_problems(spec: HubSpec) -> Found:
    """With kind lti13: what the platform's registration needs, the redirect URI, and who
    first_login admits."""
    auth = spec.auth
    if auth.kind != "lti13":
        return []  # auth.lti13 with another kind: rules/spec.py's _auth_kind_problems
    if "lti13" not in auth.model_fields_set:
        return [(("auth", "kind"),
                 "kind 'lti13' needs an auth.lti13 section with issuer, client_id, "
                 "authorize_url and jwks_url, from the platform's registration of this tool "
                 "(see docs/users.md)")]
    lti = auth.lti13
    problems: Found = []
    missing = [key for key in REQUIRED if not getattr(lti, key)]
    if missing:
        problems.append((("auth", "lti13"),
                         f"{_and(missing)} {'is' if len(missing) == 1 else 'are'} "
                         "required: the platform shows them where this tool is registered "
                         "(Canvas: the developer key; Moodle: the tool's details)"))
    if lti.redirect_uri is not None:
        problems += _redirect_problems(spec, lti.redirect_uri)
    users = spec.users
    if users.allow_all and lti.courses:
        problems.append((("users", "allow_all"),
                         "with kind 'lti13' this lets in everyone the platform launches, so "
                         "auth.lti13.courses would have no effect; remove one of them"))
    if users.accounts == "first_login" and not lti.courses and not users.allow_all:
        problems.append((("users", "accounts"),
                         "with auth.kind lti13, first_login gives accounts to the people "
                         "launched from auth.lti13.courses: list the course contexts, or set "
                         "users.allow_all: true to give one to everyone the platform "
                         "launches"))
    return problems


def _redirect_problems(spec: HubSpec, redirect_uri: str) -> Found:
    where = ("auth", "lti13", "redirect_uri")
    parts = urllib.parse.urlsplit(redirect_uri)
    wanted = f"{spec.hub.base_url}{CALLBACK}"
    if parts.path != wanted or parts.query:
        given = parts.path + ("?" + parts.query if parts.query else "")
        return [(where, f"the path must be {wanted!r} (hub.base_url {spec.hub.base_url!r} "
                 f"followed by {CALLBACK}), not {given!r}")]
    if spec.hub.url:
        public = urllib.parse.urlsplit(spec.hub.url)
        if (parts.scheme, parts.netloc) != (public.scheme, public.netloc):
            return [(where, f"must be on hub.url {spec.hub.url!r}, e.g. "
                     f"{public.scheme}://{public.netloc}{wanted}, not "
                     f"{parts.scheme}://{parts.netloc}")]
    return []


def tool_urls(spec: HubSpec) -> tuple[str, str] | None:
    """The tool's OIDC login initiation URL and redirect URI to register on the platform,
    when hub.yaml says where the hub is (redirect_uri or hub.url)."""
    lti = spec.auth.lti13
    if lti.redirect_uri:
        base = lti.redirect_uri.removesuffix(CALLBACK)
    elif spec.hub.url:
        base = spec.hub.url.rstrip("/") + "/"  # its path is hub.base_url (rules/spec.py)
    else:
        return None
    return base + LOGIN, base + CALLBACK


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
