"""LTI 1.3: the learning management system (the platform) launches the hub as a tool.

jupyterhub-ltiauthenticator runs the launch: the platform's third-party-initiated login at
/hub/lti13/oauth_login, the redirect to the platform's authorization endpoint, and the
id_token the platform posts back to /hub/lti13/oauth_callback, whose signature (the
platform's JWKS), issuer, audience (client_id), nonce and state it checks. Its claims are the
model's auth_state. hubkeeper adds:

- who the person is: `lti13:<iss> <sub>`, and their course roles by short name plus
  `context:<id>` as provider groups (`provider_identity`);
- who is admitted: roster users, and anyone launched from one of `courses`
  (`check_allowed`);
- a launch without the username claim or without `sub` (an anonymous launch) is refused
  with a message, rather than named after another claim;
- the state and nonce cookies are SameSite=None over https: the platform's form posts the
  id_token cross-site, and browsers do not send Lax cookies with a cross-site POST.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.utils import maybe_future
from ltiauthenticator.lti13.auth import LTI13Authenticator as _LTI13Authenticator
from ltiauthenticator.lti13.constants import LTI13_CUSTOM_CLAIM
from ltiauthenticator.lti13.handlers import LTI13LoginInitHandler as _LTI13LoginInitHandler
from traitlets import List, Unicode

from hubkeeper.hub.auth import HubkeeperAuthenticator, ProviderIdentity, refusal

ROLES_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/roles"
CONTEXT_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/context"
# Course (context) roles: '...membership#Instructor', sub-roles
# '...membership/Instructor#TeachingAssistant'. Institution and system roles
# ('.../institution/person#Faculty') say nothing about this course and are left out.
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
LTI11_CONTEXT_ROLE = "urn:lti:role:ims/lis/"


def role_names(roles: object) -> set[str]:
    """The short names of the course roles in an LTI roles claim: 'Instructor', 'Learner',
    'TeachingAssistant', ... (the part after '#'; the simple names LTI allows for
    compatibility, and LTI 1.1's urn:lti:role:ims/lis/ roles, by their last part)."""
    names: set[str] = set()
    if not isinstance(roles, list):
        return names
    for role in roles:
        if not isinstance(role, str) or not role:
            continue
        if role.startswith(MEMBERSHIP):
            name = role.rpartition("#")[2]
        elif role.startswith(LTI11_CONTEXT_ROLE):
            name = role.removeprefix(LTI11_CONTEXT_ROLE).rpartition("/")[2]
        elif ":" in role:  # another vocabulary: institution, system, a platform's own
            continue
        else:
            name = role
        if name:
            names.add(name)
    return names


def context_id(claims: dict[str, Any]) -> str | None:
    """The id of the course (LTI context) a launch came from; None without one."""
    context = claims.get(CONTEXT_CLAIM)
    value = context.get("id") if isinstance(context, dict) else None
    return value if isinstance(value, str) and value else None


class LTI13LoginHandler(_LTI13LoginInitHandler):
    """/hub/lti13/oauth_login, where the platform starts a launch."""

    def post(self) -> None:  # type: ignore[override]
        if not self.get_argument("iss", ""):
            # Someone opened the hub's login page directly: upstream says "Required LTI 1.3
            # arg iss not in request".
            raise refusal(400, "This hub is opened from your course: follow its link in "
                          "your learning platform (Canvas, Moodle, ...).")
        super().post()

    get = post

    def get_redirect_uri(self) -> str:
        # The URI registered on the platform, when hub.yaml knows it: behind nginx the
        # request's own host and scheme may not be the public ones.
        return self.authenticator.redirect_uri or super().get_redirect_uri()

    def _set_oauth_cookie(self, key: str, value: str) -> None:
        secure = self.authenticator.get_uri_scheme(self.request) == "https"
        # The id_token comes back in a cross-site form POST from the platform; a browser
        # sends the state and nonce cookies with it only when they are SameSite=None (which
        # needs Secure, so only over https; plain http is for tests on this machine).
        extra: dict[str, Any] = {"samesite": "None", "secure": True} if secure else {}
        self._set_cookie(key, value, expires_days=1, httponly=True, encrypted=True,
                         **extra)


class LTI13Authenticator(HubkeeperAuthenticator, _LTI13Authenticator):
    """jupyterhub-ltiauthenticator's LTI 1.3 tool, with hubkeeper's identity and admission."""

    login_handler = LTI13LoginHandler

    courses = List(
        Unicode(), config=True,
        help="LTI context ids (auth.lti13.courses) whose launches admit people who are not "
        "on the roster. Empty: only the roster (or allow_all) admits.",
    )
    redirect_uri = Unicode(
        "", config=True,
        help="The redirect URI registered on the platform (this hub's public "
        "/hub/lti13/oauth_callback). Empty: from each launch's request.",
    )

    def get_username(self, token: dict[str, Any]) -> str:
        """The value of `username_key` (a claim, or custom_<name> for a custom parameter);
        a launch without it is refused (upstream would name the user after `sub`)."""
        key = self.username_key or "sub"
        claims: object = token
        if key.startswith("custom_"):
            claims = token.get(LTI13_CUSTOM_CLAIM) or {}
            key = key.removeprefix("custom_")
        value = claims.get(key) if isinstance(claims, dict) else None
        if not isinstance(value, str) or not value.strip():
            self.log.warning("LTI launch of sub %r from %s refused: the id_token has no %r "
                             "(auth.lti13.username_key)", token.get("sub"), token.get("iss"),
                             self.username_key)
            raise refusal(403, f"Your learning platform did not send your {self.username_key}"
                          ", which names you on this hub. Tell your instructor: the tool's "
                          "privacy settings on the platform must share it.")
        return value.strip()

    async def authenticate(self, handler, data=None):  # type: ignore[no-untyped-def,override]
        if not (data or {}).get("sub"):
            raise refusal(403, "This launch does not say who you are (an anonymous launch); "
                          "open the hub from your course while logged in to the platform.")
        return await super().authenticate(handler, data)

    async def check_allowed(self, username: str, authentication=None) -> bool:  # type: ignore[no-untyped-def,override]
        if await maybe_future(super().check_allowed(username, authentication)):
            return True
        claims = (authentication or {}).get("auth_state") or {}
        context = context_id(claims)
        if context is not None and context in self.courses:
            return True
        if not claims:
            return False  # not a launch (JupyterHub asks about names alone too)
        title = (claims.get(CONTEXT_CLAIM) or {}).get("title") if context else None
        self.log.warning("LTI launch of %s refused: context %r (%s) is not in "
                         "auth.lti13.courses %s", username, context, title or "no title",
                         list(self.courses))
        # Upstream would answer "User missing or null"; say what happened instead.
        if not self.courses:
            raise refusal(403, f"{username} is not on this hub's class list. Tell your "
                          "instructor.")
        course = f"the course {title}" if title else "this course" if context else "there"
        raise refusal(403, f"This hub does not take launches from {course}. Open it from "
                      "your course's link, or tell your instructor.")

    def provider_identity(self, model: dict) -> ProviderIdentity | None:
        claims = model.get("auth_state") or {}
        issuer, subject = claims.get("iss"), claims.get("sub")
        if not (isinstance(issuer, str) and isinstance(subject, str) and subject):
            return None
        groups = role_names(claims.get(ROLES_CLAIM))
        context = context_id(claims)
        if context is not None:
            groups.add(f"context:{context}")
        return ProviderIdentity("lti13", f"lti13:{issuer} {subject}", frozenset(groups))
