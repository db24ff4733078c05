"""Authenticators hubkeeper configures, where JupyterHub's own need a small addition."""

from __future__ import annotations

import inspect

from jupyterhub.auth import PAMAuthenticator as _PAMAuthenticator
from jupyterhub.handlers import BaseHandler
from nativeauthenticator import NativeAuthenticator as _NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as _NativeLoginHandler
from oauthenticator.github import GitHubOAuthenticator
from traitlets import Dict, List, Unicode


class PAMAuthenticator(_PAMAuthenticator):
    """PAM, for hubs whose Linux accounts carry users.account_prefix (e.g. 'jupyter-ann' for
    the hub user 'ann'): the password is checked for the account, the hub sees the user."""

    account_prefix = Unicode("", config=True, help="Prefix of the Linux account names.")

    async def authenticate(self, handler, data):  # type: ignore[override]
        hub_name = data["username"]
        # The parent runs PAM on an executor and returns a Future: it must be awaited (a
        # Future is truthy, so not awaiting it would accept any password).
        result = super().authenticate(handler, {**data,
                                                "username": self.account_prefix + hub_name})
        if inspect.isawaitable(result):
            result = await result
        return hub_name if result else None

    def system_user_exists(self, user) -> bool:  # type: ignore[override]
        import pwd

        try:
            pwd.getpwnam(self.account_prefix + user.name)
        except KeyError:
            return False
        return True

    def normalize_username(self, username: str) -> str:
        # Hub names are the roster's lower-case names; the account is derived, not looked up.
        return username.lower()


class _NoStatsd:
    """Stands in for the statsd client JupyterHub 6 removed (a timer that records nothing)."""

    def timer(self, name: str) -> _NoStatsd:
        return self

    def start(self) -> _NoStatsd:
        return self

    def stop(self, send: bool = True) -> None:
        return None


class NativeLoginHandler(_NativeLoginHandler):
    """nativeauthenticator 1.3's /hub/login, made to run on JupyterHub 6.

    - Its POST times the login with `self.statsd`, which JupyterHub 6 no longer has: every
      login failed with a 500.
    - JupyterHub 6 shows errors raised during a login POST (e.g. an expired form) inside the
      login form, calling `_render(sync=True, ...)`, which nativeauthenticator's `_render`
      does not accept; such errors get JupyterHub's plain error page instead.
    """

    statsd = _NoStatsd()

    def render_template(self, name, **ns):  # type: ignore[override]
        if name == "error.html":
            return BaseHandler.render_template(self, name, **ns)
        return super().render_template(name, **ns)


class NativeAuthenticator(_NativeAuthenticator):
    """nativeauthenticator (sign-up, then an admin's approval), fitted to JupyterHub 6.

    JupyterHub 5 made `check_allowed` refuse everyone outside `allowed_users` unless
    `allow_all`; nativeauthenticator 1.3 still counts on the older default. Here a user whose
    sign-up was approved (or pre-approved: roster users and admins) is allowed too, so the
    roster can stay in `allowed_users` and `users.allow_all` keeps its meaning. Its login
    handler is replaced by `NativeLoginHandler`.
    """

    def check_allowed(self, username, authentication=None):  # type: ignore[override]
        if super().check_allowed(username, authentication):
            return True
        info = self.get_user(username)
        return bool(info is not None and info.is_authorized)

    def get_handlers(self, app):  # type: ignore[override]
        return [(path, NativeLoginHandler if handler is _NativeLoginHandler else handler)
                for path, handler in super().get_handlers(app)]


def _team_key(org: str, slug: str) -> tuple[str, str]:
    # GitHub logins and team slugs are case-insensitive.
    return org.lower(), slug.lower()


class GitHubTeamsAuthenticator(GitHubOAuthenticator):
    """GitHub login where membership in GitHub teams becomes membership in hub groups.

    With `manage_groups`, JupyterHub sets a user's groups at each login to the `groups` of the
    auth model, which oauthenticator fills from `get_user_groups(auth_state)`; here that is
    the groups of the user's teams (from `auth_state["teams"]`, fetched by
    `populate_teams_in_auth_state`) plus the user's roster groups, so that a login does not
    drop them.
    """

    teams_to_groups = Dict(
        key_trait=Unicode(), value_trait=Unicode(), config=True,
        help="GitHub team 'org:team' (the team's slug, as in its URL) -> hub group.",
    )
    roster_groups = Dict(
        key_trait=Unicode(), value_trait=List(Unicode()), config=True,
        help="Hub user -> hub groups the user keeps whatever their teams (the roster's).",
    )

    async def get_user_groups(self, auth_state: dict) -> set[str]:  # type: ignore[override]
        login = self.normalize_username(auth_state[self.user_auth_state_key]["login"])
        teams = auth_state.get("teams")
        if teams is None:
            self.log.error("no GitHub teams in auth_state for %s: set "
                           "populate_teams_in_auth_state and the read:org scope", login)
            teams = []
        member_of = {_team_key(team["organization"]["login"], team["slug"]) for team in teams}
        groups = {group for team, group in self.teams_to_groups.items()
                  if _team_key(*team.partition(":")[::2]) in member_of}
        return groups | set(self.roster_groups.get(login, ()))
