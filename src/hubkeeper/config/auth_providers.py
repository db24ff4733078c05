"""hub.yaml's identity providers besides GitHub: auth.oidc, auth.ldap, auth.lti13.

Each maps the provider's own groups to hub groups (`groups`) and names the provider groups
whose members are admins (`admin_groups`); `config/access.provider_groups` reads both the
same way for every provider. Secrets (client secrets, bind passwords) are read from the
state dir, never from hub.yaml.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from hubkeeper.config.types import GroupName, Section


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
    pass


def check_ldap_url(value: str) -> str:
    """auth.ldap.server: ldap://host[:port] or ldaps://host[:port], nothing after."""
    example = "e.g. ldaps://ldap.example.org or ldap://ldap.example.org:389"
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} is not an LDAP address; {example}") from None
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ValueError(f"{value!r} is not an LDAP address; {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} must be only the scheme, host and port; {example} (the "
                         "search base goes into user_search_base)")
    if port == 0:
        raise ValueError(f"{value!r}: port 0 is not a port; {example}")
    return value


LDAP_ATTRIBUTE_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,63}$"


class LDAPSection(ProviderSection):
    """An LDAP or Active Directory server (through jupyterhub-ldapauthenticator): where it
    is, how the connection is encrypted, how a login name finds its entry, and which groups
    admit people. `groups` and `admin_groups` name LDAP groups by their DN. See
    docs/users.md."""

    server: Annotated[str, AfterValidator(check_ldap_url)] | None = Field(
        None,
        description="Required. The LDAP or Active Directory server: ldap://host[:port] "
        "(port 389 by default) or ldaps://host[:port] (636).",
    )
    tls: Literal["none", "starttls", "ldaps"] | None = Field(
        None,
        description="How the connection is encrypted: starttls (ldap:// upgraded before "
        "any password is sent), ldaps (TLS from the start: ldaps:// addresses) or none "
        "(only to a server on this machine: passwords would cross the network in the "
        "clear). Default: ldaps for ldaps://, starttls for ldap://. The server's "
        "certificate is always verified, against ca_file or the system's CAs.",
    )
    ca_file: str | None = Field(
        None,
        description="starttls or ldaps: a PEM file of the CA that signed the server's "
        "certificate (absolute path). Default: the system's CAs.",
    )
    bind_dn_template: list[str] = Field(
        default_factory=list,
        description="How a login name becomes the DN that binds with the password, "
        "{username} standing for the name, e.g. 'uid={username},ou=people,dc=example,"
        "dc=org'; several are tried in order. Either this or user_search_base.",
    )
    user_search_base: str | None = Field(
        None,
        description="Instead of bind_dn_template: where to search for the login name (in "
        "user_attribute), e.g. 'ou=people,dc=example,dc=org' or, for Active Directory, "
        "'dc=ad,dc=example,dc=org'; the entry found binds with the password.",
    )
    user_attribute: str = Field(
        "uid", pattern=LDAP_ATTRIBUTE_PATTERN,
        description="With user_search_base: the attribute holding the login name: uid "
        "(OpenLDAP) or sAMAccountName (Active Directory).",
    )
    lookup_dn_search_user: str | None = Field(
        None,
        description="With user_search_base: the DN of the account that searches (Active "
        "Directory needs one); its password is read from "
        "<state_dir>/secrets/ldap-bind-password, never from this file. Default: an "
        "anonymous search.",
    )
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="DNs of the LDAP groups whose members may log in (besides the roster), "
        "e.g. 'cn=students,ou=groups,dc=example,dc=org'. With users.accounts: first_login "
        "they get an account at their first login. Empty: only the roster (or everyone in "
        "the directory with users.allow_all).",
    )


class LTI13Section(ProviderSection):
    pass
