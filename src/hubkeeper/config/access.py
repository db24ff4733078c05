"""hub.yaml's way in: the hub process, the public proxy, how users log in and who may."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from hubkeeper.config.auth_providers import LDAPSection, LTI13Section, OIDCSection
from hubkeeper.config.types import (
    GITHUB_ORG_OR_TEAM_PATTERN,
    GITHUB_TEAM_PATTERN,
    HUB_NAME_PATTERN,
    GroupName,
    Period,
    Port,
    Section,
    Username,
    check_callback_url,
    check_github_url,
    check_ip_address,
    check_public_url,
    check_url_prefix,
)


class HubSection(Section):
    name: str = Field(
        "hub",
        pattern=HUB_NAME_PATTERN,
        description="Short name of this hub (lower-case letters, digits, '-'); shown in "
        "messages and used to name files.",
    )
    ip: Annotated[str, AfterValidator(check_ip_address)] = Field(
        "127.0.0.1",
        description="Address the public proxy listens on. 127.0.0.1 keeps the hub on this "
        "machine; 0.0.0.0 opens it to the network.",
    )
    port: Port = Field(8000, description="Port of the public proxy: the URL users open.")
    base_url: Annotated[str, AfterValidator(check_url_prefix)] = Field(
        "/", description="URL prefix of the hub, e.g. '/course/' behind a shared web server."
    )
    api_port: Port = Field(
        8081, description="Port of the hub's internal API on 127.0.0.1 (servers call home here)."
    )
    state_dir: str | None = Field(
        None,
        description="Where the hub database, secrets, journal and logs live. Relative paths "
        "are relative to this file. Default: /var/lib/hubkeeper/<name> as root, "
        "./.hubkeeper next to this file otherwise.",
    )
    url: Annotated[str, AfterValidator(check_public_url)] | None = Field(
        None,
        description="The public https:// address users open, e.g. https://hub.example.edu. "
        "When set, `apply` writes an nginx site for it (HTTP to HTTPS, TLS from the tls "
        "section, websockets, uploads) in front of the proxy on hub.ip:hub.port, which "
        "should then stay on 127.0.0.1. Its path must be hub.base_url.",
    )
    mode: Literal["auto", "system", "personal"] = Field(
        "auto",
        description="system: hub users are Linux accounts and servers run as them (needs "
        "root). personal: every server runs as the account that runs the hub, each user in "
        "a directory under the state dir; users are NOT isolated from each other. auto: "
        "system as root, personal otherwise.",
    )
    extra_config: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="The escape hatch: Python files (relative to this file or absolute) "
        "the hub loads after hubkeeper's rendered configuration, in order, with `c` and "
        "`get_config` in scope like a jupyterhub_config.d snippet, for a JupyterHub setting "
        "hub.yaml does not model. They run as the hub (root in system mode) and are the "
        "operator's own responsibility: `check` compiles them and refuses one writable by "
        "anyone but its owner (root or the hub's account), `render` shows them, `doctor` "
        "lists the settings of hubkeeper's they override.",
    )


class ProxySection(Section):
    kind: Literal["python", "node"] = Field(
        "python",
        description="configurable-http-proxy implementation: 'python' (the PyPI port, "
        "installed with hubkeeper) or 'node' (the reference npm package). See "
        "docs/benchmarks.md for the measurements behind the default.",
    )
    api_port: Port = Field(8001, description="Port of the proxy's REST API on 127.0.0.1.")
    command: str | None = Field(
        None,
        description="Absolute path of the proxy executable, if not found automatically.",
    )
    idle_timeout: Period = Field(
        "5m", validate_default=True,
        description="End a request to a user's server when nothing has moved for this long "
        "(no byte from the server, none taken by the browser), so that a server that stalls "
        "frees its connections. An open WebSocket (kernels, terminals) has no idle timeout, "
        "only its handshake; the hub's and the services' routes have none. 0 is off. With "
        "kind node: its --proxy-timeout (the target's socket idle; not WebSockets).",
    )
    max_per_route: int = Field(
        128, ge=0, le=100000,
        description="kind python: requests and WebSockets in flight to one user's server; "
        "beyond it, 503 at once, so that one server cannot take the connections everyone "
        "else needs. The hub's and the services' routes have no cap. A browser with "
        "JupyterLab open holds about 6 requests and one WebSocket per kernel. 0 is off.",
    )


GitHubOrgOrTeam = Annotated[str, Field(pattern=GITHUB_ORG_OR_TEAM_PATTERN)]
GitHubTeam = Annotated[str, Field(pattern=GITHUB_TEAM_PATTERN)]


class GitHubSection(Section):
    url: Annotated[str, AfterValidator(check_github_url)] = Field(
        "https://github.com",
        description="The GitHub server: https://github.com, or your GitHub Enterprise "
        "Server's address (its API is then <url>/api/v3). The OAuth app is registered "
        "there.",
    )
    callback_url: Annotated[str, AfterValidator(check_callback_url)] | None = Field(
        None,
        description="Required. The 'Authorization callback URL' of the GitHub OAuth app: "
        "this hub's public address followed by hub/oauth_callback, e.g. "
        "https://hub.example.org/hub/oauth_callback. The app's client ID and secret are "
        "read from <state_dir>/secrets/github-client-id and github-client-secret, never "
        "from this file.",
    )
    organizations: list[GitHubOrgOrTeam] = Field(
        default_factory=list,
        description="Members of these GitHub organisations ('org') or teams ('org:team', "
        "as in github.com/orgs/ORG/teams/TEAM) may log in, besides the roster. Empty: only "
        "the roster's users (their GitHub logins) may.",
    )
    teams_to_groups: dict[GitHubTeam, GroupName] = Field(
        default_factory=dict,
        description="GitHub team 'org:team' -> hub group. At each login a user's hub groups "
        "become the groups of their teams, plus their roster groups. A group named here "
        "must not also be a roster group.",
    )
    admin_teams: list[GitHubTeam] = Field(
        default_factory=list,
        description="Members of these GitHub teams ('org:team') are hub admins, decided at "
        "each login (e.g. the TAs' team); roster admins stay admins.",
    )


class AuthSection(Section):
    kind: Literal["shared-password", "pam", "dummy", "native", "github", "oidc", "ldap",
                  "lti13"] | None = Field(
        None,
        description="Default: pam in system mode, shared-password in personal mode. "
        "shared-password: one password for every allowed user (demos, "
        "workshops; personal mode only, since everyone who knows it can log in as anyone); "
        "it is generated into the state dir, never written here. pam: Linux "
        "passwords (system mode, root). dummy: any password is accepted; only allowed in "
        "personal mode when hub.ip is a loopback address (tests). native: people sign up at "
        "<hub>/hub/signup and choose a password; a roster name (users and admins) signs up "
        "only with the invite code `hubkeeper apply` issues for it (credentials file), "
        "anyone else waits for an admin's approval at <hub>/hub/authorize. "
        "github: log in with GitHub (see auth.github); each login is bound to the GitHub "
        "user id of its first login. oidc: an OpenID Connect provider (Keycloak, Entra ID, "
        "Google, Okta; see auth.oidc). ldap: an LDAP or Active Directory server (see "
        "auth.ldap). lti13: launches from a learning management system over LTI 1.3 (see "
        "auth.lti13). With these four, users.accounts: first_login lets the provider admit "
        "people.",
    )
    password_file: str | None = Field(
        None,
        description="shared-password only: a file holding the password (at least 8 "
        "characters). Default: generated once into <state_dir>/secrets/shared-password.",
    )
    admin_password_file: str | None = Field(
        None,
        description="shared-password only: a file holding the admins' password (at least 32 "
        "characters, different from the users' one). Default: generated once into "
        "<state_dir>/secrets/admin-password.",
    )
    open_signup: bool = Field(
        False,
        description="native only: whoever signs up may log in at once, without an admin's "
        "approval. Personal mode only (in system mode a hub user is a Linux account). Off "
        "by default.",
    )
    minimum_password_length: int = Field(
        8, ge=1, le=1024,
        description="native only: the shortest password accepted at sign-up and when a "
        "password is changed.",
    )
    check_common_password: bool = Field(
        True,
        description="native only: refuse the 10,000 most common passwords at sign-up and "
        "when a password is changed.",
    )
    ask_email_on_signup: bool = Field(
        False,
        description="native only: ask for an e-mail address on the sign-up form; admins "
        "see it when they approve.",
    )
    github: GitHubSection = Field(
        default_factory=GitHubSection,
        description="github only, and required there: the GitHub OAuth app and who may "
        "log in.",
    )
    oidc: OIDCSection = Field(
        default_factory=OIDCSection,
        description="oidc only, and required there: the OpenID Connect provider and who "
        "may log in.",
    )
    ldap: LDAPSection = Field(
        default_factory=LDAPSection,
        description="ldap only, and required there: the LDAP server and who may log in.",
    )
    lti13: LTI13Section = Field(
        default_factory=LTI13Section,
        description="lti13 only, and required there: the learning management system "
        "(platform) that launches the hub.",
    )


NATIVE_FIELDS = ("open_signup", "minimum_password_length", "check_common_password",
                 "ask_email_on_signup")


RANGE_PATTERN = r"^[a-z_][a-z0-9_-]*\{[0-9]+\.\.[0-9]+\}$"


class RosterEntry(Section):
    """One person, written inline in hub.yaml (the same columns as the CSV, no password)."""

    username: Username = Field(description="The hub user name (and Linux account name).")
    groups: list[GroupName] = Field(default_factory=list, description="Hub groups.")
    name: str | None = Field(None, max_length=200, description="Full name, for people.")
    email: str | None = Field(None, max_length=254, description="E-mail address.")


class RosterSection(Section):
    csv: str | None = Field(
        None,
        description="A CSV file (relative to hub.yaml) with a header row; columns "
        "username (required), groups (separated by ';' or spaces), name, email, password "
        "(at least 8 characters; generated when empty). Keep it private if it has passwords.",
    )
    entries: list[RosterEntry] = Field(
        default_factory=list, description="People written inline, like rows of the CSV."
    )
    ranges: list[Annotated[str, Field(pattern=RANGE_PATTERN)]] = Field(
        default_factory=list,
        description="Numbered accounts for workshops: 'training_user{1..42}' gives "
        "training_user1 to training_user42; '{01..42}' keeps the zero padding.",
    )


class UsersSection(Section):
    admins: list[Username] = Field(
        default_factory=list, description="Hub administrators; they may also log in."
    )
    allowed: list[Username] = Field(
        default_factory=list, description="Users who may log in and start a server."
    )
    groups: dict[GroupName, list[Username]] = Field(
        default_factory=dict,
        description="Hub groups (also Linux groups in system mode): name -> members. Later "
        "sections hang environments, limits and shared folders on them.",
    )
    roster: RosterSection = Field(
        default_factory=RosterSection, description="The class list: CSV, inline, ranges."
    )
    locked: list[Username] = Field(
        default_factory=list,
        description="Users who stay on the roster but may not log in: their account is "
        "locked and their server stopped; their files stay.",
    )
    account_prefix: str = Field(
        "",
        pattern=r"^([a-z_][a-z0-9_-]{0,15})?$",
        description="Prefix of the Linux account names (e.g. 'jupyter-'); the hub user "
        "name stays without it. Off by default.",
    )
    accounts: Literal["roster", "first_login"] = Field(
        "roster",
        description="Who gets a Linux account (system mode). roster: the people the roster "
        "lists, made by `apply`. first_login: also anyone the identity provider admits "
        "(auth.kind github, oidc, ldap or lti13: an organisation or team, a claim, an LDAP "
        "group, a course launch), made at their first login exactly like a roster account "
        "and bound to the provider's stable id for that person.",
    )
    allow_all: bool = Field(
        False,
        description="Let anyone the authenticator accepts log in (e.g. every GitHub member "
        "of auth.github.organizations). In system mode a login still needs an account "
        "hubkeeper made (or adopted) for that user. Off by default: list users instead.",
    )


PROVIDERS = ("github", "oidc", "ldap", "lti13")  # identity providers: first_login admits


def provider_groups(auth: AuthSection) -> tuple[dict[str, str], tuple[str, ...]]:
    """The provider's group -> hub group map and the provider groups whose members are
    admins, for auth.kind (empty for the kinds without a provider)."""
    if auth.kind == "github":
        return dict(auth.github.teams_to_groups), tuple(auth.github.admin_teams)
    if auth.kind in ("oidc", "ldap", "lti13"):
        section = getattr(auth, auth.kind)
        return dict(section.groups), tuple(section.admin_groups)
    return {}, ()
