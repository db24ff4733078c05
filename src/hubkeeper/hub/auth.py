"""Authenticators hubkeeper configures, where JupyterHub's own need a small addition.

Each of hubkeeper's authenticators refuses, in system mode, a login whose hub user has no
account in hubkeeper's journal (`HubkeeperAuthenticator`); the spawner refuses its start
too (state/identity.py). Native sign-up of a roster name needs that user's invite code
(state/invites.py); a GitHub login stays bound to the GitHub user id that first used it
(state/github_ids.py).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyterhub.auth import PAMAuthenticator as _PAMAuthenticator
from jupyterhub.handlers import BaseHandler
from nativeauthenticator import NativeAuthenticator as _NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as _NativeLoginHandler
from nativeauthenticator.handlers import SignUpHandler as _NativeSignUpHandler
from oauthenticator.github import GitHubOAuthenticator
from tornado import web
from traitlets import Bool, Dict, List, Set, Unicode
from traitlets.config import LoggingConfigurable

from hubkeeper.roster.policy import name_problem, portable_name
from hubkeeper.state import admitted, github_ids, invites, subjects
from hubkeeper.state.identity import Unbound, journal_account

ADMIT_TIMEOUT = 300.0  # seconds: a first login waits this long at most for its account


def refusal(status: int, message: str) -> web.HTTPError:
    """An error page with `message` (a plain sentence) for the user; details are logged."""
    error = web.HTTPError(status, message)
    error.jupyterhub_message = message  # type: ignore[attr-defined]
    return error


@dataclass(frozen=True)
class ProviderIdentity:
    """Who an identity provider says a login is, beyond the name.

    `subject` is the provider's stable id for the person, prefixed by the provider so that
    two providers never collide: 'github:<numeric id>', 'oidc:<iss> <sub>', 'ldap:<entry
    DN or uidNumber>', 'lti13:<iss> <sub>'. A hub user stays bound to the subject of their
    first login. `groups` are the provider's own group names (GitHub 'org:team', a claim's
    values, LDAP group DNs, LTI roles and the context id), mapped to hub groups by
    `HubkeeperAuthenticator.group_map`."""

    provider: str
    subject: str
    groups: frozenset[str] = frozenset()


class HubkeeperAuthenticator(LoggingConfigurable):
    """What every hubkeeper authenticator adds (mixed in before JupyterHub's class, set as
    c.HubkeeperAuthenticator): in system mode, only a hub user with an account in
    hubkeeper's journal may log in. The spawner checks again at each start."""

    journal_path = Unicode(
        "", config=True,
        help="system mode: hubkeeper's journal; a login whose hub user has no account in it "
        "is refused. Empty (personal mode): no such check.",
    )

    first_login = Bool(
        False, config=True,
        help="users.accounts: first_login. A login the provider admitted whose hub user has "
        "no account yet gets one (admit_command) before it goes on.",
    )
    admit_command = List(
        Unicode(), config=True,
        help="The command that makes a first-login account (hubkeeper's `users admit`), "
        "run as the hub's account with the user's name, provider, subject, groups and "
        "admin flag appended as options.",
    )
    subjects_file = Unicode(
        "", config=True,
        help="Where each hub user's provider subject is recorded at their first login (JSON, "
        "0600). A later login of the name with another subject is refused. Empty: not "
        "bound.",
    )
    group_map = Dict(
        key_trait=Unicode(), value_trait=Unicode(), config=True,
        help="The provider's group -> hub group.",
    )
    # Not `admin_groups`: oauthenticator's OAuthenticator has a trait of that name, for hub
    # groups, that it checks against manage_groups and applies itself.
    provider_admin_groups = Set(
        Unicode(), config=True,
        help="Provider groups whose members are hub admins (decided at each login).",
    )
    roster_groups = Dict(
        key_trait=Unicode(), value_trait=List(Unicode()), config=True,
        help="Hub user -> hub groups the user keeps whatever their provider groups (the "
        "roster's).",
    )
    roster_admins = List(
        Unicode(), config=True,
        help="Hub users who are admins whatever their provider groups (the roster's).",
    )

    admitted_file = Unicode(
        "", config=True,
        help="hubkeeper's record of the people admitted at first login (read here to see "
        "when a person's provider groups or admin role changed).",
    )
    account_prefix = Unicode("", config=True, help="Prefix of the Linux account names.")
    _admitting = Dict()  # hub user -> asyncio.Lock: one admission of a user at a time

    def provider_identity(self, model: dict) -> ProviderIdentity | None:
        """The provider's subject and groups for an authenticated model; None for logins
        without an identity provider (PAM, native, shared password). Each provider's class
        overrides it."""
        return None

    def normalize_username(self, username: str) -> str:
        name = super().normalize_username(username)  # type: ignore[misc]
        if not self.first_login:
            return name
        try:
            return portable_name(name, self.account_prefix)
        except ValueError:
            return name  # refused with the reason in check_identity

    async def get_authenticated_user(self, handler, data):  # type: ignore[no-untyped-def]
        model = await super().get_authenticated_user(handler, data)  # type: ignore[misc]
        if model is not None:
            await self.check_identity(model)
        return model

    async def check_identity(self, model: dict) -> None:
        """Raise an HTTP error when the authenticated user must not be let in. A login
        through an identity provider is bound to the provider's subject, gets its hub
        groups and admin role from the provider's groups, and (first_login, system mode)
        its account at the first login."""
        name = model["name"]
        identity = self.provider_identity(model)
        if identity is not None:
            self.bind_subject(name, identity)
            mapped = {self.group_map[g] for g in identity.groups if g in self.group_map}
            provider_admin = bool(identity.groups & set(self.provider_admin_groups))
            if self.manage_groups:
                model["groups"] = sorted(mapped | set(self.roster_groups.get(name, ())))
            model["admin"] = provider_admin or name in self.roster_admins
            if self.first_login and self.journal_path:
                await self.admit(name, identity, mapped, provider_admin)
        if not self.journal_path:
            return
        try:
            journal_account(self.journal_path, name)
        except Unbound as exc:
            self.log.warning("login of %s refused: %s", name, exc)
            raise refusal(403, f"You cannot log in as {name}: there is no account "
                          "for this user on this hub. Tell your instructor.") from None

    def bind_subject(self, name: str, identity: ProviderIdentity) -> None:
        if not self.subjects_file:
            return
        try:
            first = subjects.bind(self.subjects_file, name, identity.subject)
        except subjects.Mismatch as exc:
            self.log.warning("login of %s refused: %s", name, exc)
            raise refusal(
                403, f"You cannot log in as {name}: this hub's user {name} belongs to "
                f"another {identity.provider} account (the name was renamed or given to "
                "someone else there). Tell your instructor.") from None
        if first:
            self.log.info("%s: bound to %s", name, identity.subject)

    async def admit(self, name: str, identity: ProviderIdentity, groups: set[str],
                    admin: bool) -> None:
        """First login: have `users admit` make the account, unless it exists and the
        provider's groups and admin role are as recorded. One admission per user at a
        time; other logins go on meanwhile."""
        reason = name_problem(name)
        if reason is not None:
            self.log.warning("first login of %s refused: %s", name, reason)
            raise refusal(403, f"Your name at {identity.provider}, {name}, cannot be an "
                          f"account name on this hub ({reason}). Tell your instructor.")
        lock = self._admitting.setdefault(name, asyncio.Lock())
        async with lock:
            if self._admitted_as(name, groups, admin):
                return
            command = [*self.admit_command, name, "--provider", identity.provider,
                       "--subject", identity.subject]
            for group in sorted(groups):
                command += ["--group", group]
            if admin:
                command.append("--admin")
            self.log.info("first login of %s (%s): making the account", name,
                          identity.subject)
            try:
                process = await asyncio.create_subprocess_exec(
                    *command, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                output, _ = await asyncio.wait_for(process.communicate(), ADMIT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                self.log.error("users admit %s failed: %r", name, exc)
                raise refusal(503, "Your account on this hub could not be made just now; "
                              "please try again in a minute.") from None
            if process.returncode != 0:
                self.log.error("users admit %s failed (exit %s): %s", name,
                               process.returncode, output.decode(errors="replace").strip())
                raise refusal(403, f"Your account ({name}) could not be made on this hub. "
                              "Tell your instructor.")

    def _admitted_as(self, name: str, groups: set[str], admin: bool) -> bool:
        """Whether `name` has its account and the recorded groups and admin role."""
        try:
            journal_account(self.journal_path, name)
        except Unbound:
            return False
        try:
            record = admitted.load(Path(self.admitted_file)).get(name)
        except (OSError, ValueError, KeyError) as exc:
            self.log.error("%s cannot be read: %s", self.admitted_file, exc)
            return True  # the account exists; groups are brought in line by `apply`
        if record is None:
            return True  # a roster account
        return set(record.groups) == groups and record.admin == admin


class PAMAuthenticator(HubkeeperAuthenticator, _PAMAuthenticator):
    """PAM, for hubs whose Linux accounts carry users.account_prefix (e.g. 'jupyter-ann' for
    the hub user 'ann'): the password is checked for the account, the hub sees the user."""

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
        """Whether the hub user has its Linux account: the one hubkeeper's journal records
        for it (the upgrade canary's is hkcanary-<hub>, not its hub name), else the account
        named after it."""
        import pwd

        if self.journal_path:
            try:
                journal_account(self.journal_path, user.name)
                return True
            except Unbound:
                pass
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

    @property
    def statsd(self) -> Any:  # JupyterHub 5 still has its own client, and uses it
        return self.settings.get("statsd") or _NoStatsd()

    def render_template(self, name, **ns):  # type: ignore[override]
        if name == "error.html":
            return BaseHandler.render_template(self, name, **ns)
        return super().render_template(name, **ns)


# The invite code of the sign-up being handled, and why create_user refused it: set by
# NativeSignUpHandler around nativeauthenticator's post(), per request (asyncio task).
_invite_code: contextvars.ContextVar[str] = contextvars.ContextVar("invite_code", default="")
_signup_refusal: contextvars.ContextVar[str] = contextvars.ContextVar("signup_refusal",
                                                                      default="")


class NativeSignUpHandler(_NativeSignUpHandler):
    """/hub/signup with an invite code: a roster name (a user or an admin) is only signed
    up with the one-time code `hubkeeper apply` issued for it, so the first comer cannot
    take it. The page gets the field from hubkeeper-signup.html."""

    async def post(self):  # type: ignore[override]
        code = self.get_body_argument("invite_code", "", strip=True)
        code_token = _invite_code.set(code)
        refusal_token = _signup_refusal.set("")
        try:
            await super().post()
        finally:
            _invite_code.reset(code_token)
            _signup_refusal.reset(refusal_token)

    def get_result_message(self, user, *args):  # type: ignore[override]
        refused = _signup_refusal.get()
        if user is None and refused:
            return "alert-danger", refused
        if user is not None and user.is_authorized:
            # Upstream says "sent to the admin" to a roster user approved by their code.
            return "alert-success", ("The signup was successful! You can now go to the home "
                                     "page and log in to the system.")
        return super().get_result_message(user, *args)

    async def render_template(self, name, **ns):  # type: ignore[override]
        if name == "signup.html":
            name = "hubkeeper-signup.html"  # nativeauthenticator's page plus the code field
        return await super().render_template(name, **ns)


class NativeAuthenticator(HubkeeperAuthenticator, _NativeAuthenticator):
    """nativeauthenticator (sign-up, then an admin's approval), fitted to JupyterHub 6.

    JupyterHub 5 made `check_allowed` refuse everyone outside `allowed_users` unless
    `allow_all`; nativeauthenticator 1.3 still counts on the older default. Here a user whose
    sign-up was approved (or pre-approved: roster users and admins, who sign up with their
    invite code) is allowed too, so the roster can stay in `allowed_users` and
    `users.allow_all` keeps its meaning. Its login and sign-up handlers are replaced by
    `NativeLoginHandler` and `NativeSignUpHandler`.
    """

    invite_codes_file = Unicode(
        "", config=True,
        help="The hashes of the roster users' invite codes (written by `hubkeeper apply`); "
        "signing up as a roster name needs its code. Empty: no roster name can be signed "
        "up.",
    )

    def check_allowed(self, username, authentication=None):  # type: ignore[override]
        if super().check_allowed(username, authentication):
            return True
        info = self.get_user(username)
        return bool(info is not None and info.is_authorized)

    def create_user(self, username, password, invite_code=None, **kwargs):  # type: ignore[override]
        """nativeauthenticator's sign-up, refused for a roster name without its invite
        code (the sign-up page's, unless given here)."""
        name = self.normalize_username(username)
        if name in self.allowed_users or name in self.admin_users:
            code = _invite_code.get() if invite_code is None else invite_code
            try:
                invites.check(self.invite_codes_file, name, code)
            except invites.Refused as exc:
                self.log.warning("sign-up as %s refused: %s", name, exc)
                _signup_refusal.set(
                    f"{name} is on this hub's class list: signing up as {name} needs the "
                    "invite code your instructor gave you. Check it and try again.")
                return None
        return super().create_user(username, password, **kwargs)

    def get_handlers(self, app):  # type: ignore[override]
        replaced = {_NativeLoginHandler: NativeLoginHandler,
                    _NativeSignUpHandler: NativeSignUpHandler}
        return [(path, replaced.get(handler, handler))
                for path, handler in super().get_handlers(app)]


def _team_key(org: str, slug: str) -> tuple[str, str]:
    # GitHub logins and team slugs are case-insensitive.
    return org.lower(), slug.lower()


class GitHubTeamsAuthenticator(HubkeeperAuthenticator, GitHubOAuthenticator):
    """GitHub login where membership in GitHub teams becomes membership in hub groups, and
    each login is bound to the GitHub user id that first used it on this hub.

    GitHub logins can be renamed and then registered by someone else; the numeric id stays
    with the person. The first login of a name records (login -> id) in `github_ids_file`;
    a later login of that name with another id is refused, so the hub user (its files, its
    account, its admin role) does not pass to the new owner of the name.

    Teams are the provider groups (`provider_identity`: 'org:team', from
    `auth_state["teams"]`, fetched with `populate_teams_in_auth_state`); the mixin maps them
    to hub groups and admins.
    """

    github_ids_file = Unicode(
        "", config=True,
        help="Where each hub user's GitHub user id is recorded at their first login (JSON, "
        "written atomically, 0600). Empty: logins are not bound (never rendered so).",
    )

    async def check_identity(self, model: dict) -> None:
        """The login stays with the GitHub id of its first login (checked before anything
        else, so a renamed login reaches neither the account nor an admission)."""
        name = model["name"]
        github_id = self._github_user(model).get("id")
        if not self.github_ids_file:
            self.log.warning("%s: GitHub logins are not bound to ids (github_ids_file unset)",
                             name)
        elif not isinstance(github_id, int):
            self.log.warning("login of %s refused: GitHub gave no numeric user id", name)
            raise refusal(403, "GitHub did not say who you are; please try again.")
        else:
            try:
                first = github_ids.bind(self.github_ids_file, name, github_id)
            except github_ids.Mismatch as exc:
                self.log.warning("login of %s refused: %s", name, exc)
                raise refusal(
                    403, f"You cannot log in as {name}: this hub's user {name} belongs to "
                    "another GitHub account (the name was renamed or re-registered on "
                    "GitHub). Tell your instructor.") from None
            if first:
                self.log.info("%s: bound to GitHub user id %d", name, github_id)
        await super().check_identity(model)

    def _github_user(self, model: dict) -> dict:
        return (model.get("auth_state") or {}).get(self.user_auth_state_key) or {}

    def provider_identity(self, model: dict) -> ProviderIdentity | None:
        github_id = self._github_user(model).get("id")
        if not isinstance(github_id, int):
            return None  # refused above
        teams = (model.get("auth_state") or {}).get("teams") or []
        return ProviderIdentity("github", f"github:{github_id}", frozenset(
            ":".join(_team_key(team["organization"]["login"], team["slug"]))
            for team in teams))

    async def get_user_groups(self, auth_state: dict) -> set[str]:  # type: ignore[override]
        """oauthenticator's hook under manage_groups; the groups are set in
        check_identity from the teams (provider_identity), so none here."""
        return set()
