"""hub.yaml's identity providers besides GitHub: auth.oidc, auth.ldap, auth.lti13.

Each maps the provider's own groups to hub groups (`groups`) and names the provider groups
whose members are admins (`admin_groups`); `config/access.provider_groups` reads both the
same way for every provider. Secrets (client secrets, bind passwords) are read from the
state dir, never from hub.yaml.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from hubkeeper.config.types import GroupName, Section, check_callback_url, check_issuer_url


class ProviderSection(Section):
    groups: dict[str, GroupName] = Field(
        default_factory=dict,
        description="The provider's group -> hub group (and Linux group in system mode). At "
        "each login a user's hub groups become the groups mapped from theirs, plus their "
        "roster groups; a provider group not listed here is ignored.",
    )
    admin_groups: list[str] = Field(
        default_factory=list,
        description="Members of these provider groups are hub admins, decided at each "
        "login; roster admins stay admins.",
    )


class OIDCSection(ProviderSection):
    issuer: Annotated[str, AfterValidator(check_issuer_url)] | None = Field(
        None,
        description="Required. The provider's issuer, exactly as its "
        "<issuer>/.well-known/openid-configuration names it, e.g. "
        "https://keycloak.example.edu/realms/campus, "
        "https://login.microsoftonline.com/<tenant id>/v2.0 or https://accounts.google.com. "
        "The hub reads that document at the first login (authorize, token and userinfo "
        "addresses). The client's ID and secret are read from <state_dir>/secrets/"
        "oidc-client-id and oidc-client-secret, never from this file.",
    )
    callback_url: Annotated[str, AfterValidator(check_callback_url)] | None = Field(
        None,
        description="The redirect URI registered with the provider: this hub's public "
        "address followed by hub/oauth_callback, e.g. "
        "https://hub.example.edu/hub/oauth_callback. Default with hub.url: hub.url followed "
        "by hub/oauth_callback (required without it).",
    )
    username_claim: str = Field(
        "preferred_username", min_length=1, max_length=100,
        description="The claim (of the ID token or userinfo) whose value is the hub user "
        "name, e.g. preferred_username, email, upn. With users.accounts: first_login it is "
        "made a portable Linux name (lower case, e-mail domain dropped).",
    )
    groups_claim: str = Field(
        "groups", min_length=1, max_length=100,
        description="The claim that lists the user's groups (names the provider sends, "
        "matched by groups, admin_groups and allowed_groups).",
    )
    scopes: list[Annotated[str, Field(pattern=r"^[!#-\[\]-~]+$")]] | None = Field(
        None,
        description="Scopes asked for. Default: openid profile email, plus groups when "
        "groups, admin_groups or allowed_groups are set and the provider offers a 'groups' "
        "scope (its scopes_supported). Given: must include openid.",
    )
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="Members of these provider groups (values of groups_claim) may log "
        "in, besides the roster; with users.accounts: first_login they get an account at "
        "their first login. Empty: only the roster's users may (or everyone the provider "
        "accepts, with users.allow_all: true).",
    )


class LDAPSection(ProviderSection):
    pass


class LTI13Section(ProviderSection):
    pass
