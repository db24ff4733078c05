"""hub.yaml's identity providers besides GitHub: auth.oidc, auth.ldap, auth.lti13.

Each maps the provider's own groups to hub groups (`groups`) and names the provider groups
whose members are admins (`admin_groups`); `config/access.provider_groups` reads both the
same way for every provider. Secrets (client secrets, bind passwords) are read from the
state dir, never from hub.yaml.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from hubkeeper.config.types import GroupName, Section, _loopback_host


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


def check_lti_url(value: str) -> str:
    """An LTI platform's address: https (http only on this machine's loopback, for tests),
    a host, no query or fragment (the issuer is compared as a string)."""
    example = "e.g. https://canvas.instructure.com"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not a web address; {example}")
    if parts.scheme == "http" and not _loopback_host(parts.hostname):
        raise ValueError(f"{value!r} must start with https:// (http is only accepted for "
                         "localhost)")
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"{value!r} must be a plain address without user or fragment")
    return value


LTIURL = Annotated[str, AfterValidator(check_lti_url)]


def check_claim_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}", value):
        raise ValueError(f"{value!r} is not a claim name; use e.g. email, sub, given_name "
                         "or custom_<name> (a custom parameter of the launch)")
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


class LTI13Section(ProviderSection):
    """LTI 1.3: the learning management system (the platform) launches the hub as a tool.

    The provider groups are the launch's course roles by their short names ('Instructor',
    'Learner', 'TeachingAssistant', 'ContentDeveloper', 'Mentor', ...: the part after '#'
    of the LTI role URI; institution and system roles are not course roles and are left
    out) and 'context:<context id>' for the course it came from."""

    issuer: LTIURL | None = Field(
        None,
        description="Required. The platform's issuer (the id_token's 'iss'), exactly as the "
        "platform gives it, e.g. https://canvas.instructure.com (Canvas cloud) or your "
        "Moodle's address, e.g. https://moodle.example.edu.",
    )
    client_id: Annotated[list[Annotated[str, Field(min_length=1, max_length=255)]],
                        BeforeValidator(_one_or_many)] = Field(
        default_factory=list,
        description="Required. The client id(s) the platform gave this tool (Canvas: the "
        "developer key's number; Moodle: the tool's Client ID). Not a secret; one or a "
        "list.",
    )
    authorize_url: LTIURL | None = Field(
        None,
        description="Required. The platform's OIDC authorization endpoint, e.g. "
        "https://sso.canvaslms.com/api/lti/authorize_redirect (Canvas) or "
        "https://moodle.example.edu/mod/lti/auth.php (Moodle).",
    )
    jwks_url: LTIURL | None = Field(
        None,
        description="Required. The platform's public keyset (JWKS), which signs every "
        "launch, e.g. https://sso.canvaslms.com/api/lti/security/jwks (Canvas) or "
        "https://moodle.example.edu/mod/lti/certs.php (Moodle).",
    )
    username_key: Annotated[str, AfterValidator(check_claim_name)] = Field(
        "email",
        description="The id_token claim whose value names the hub user: 'email' (the "
        "default; with users.accounts: first_login the domain is dropped, ann@uni.edu -> "
        "ann), 'given_name', 'sub' (the platform's opaque user id), or 'custom_<name>' for "
        "a custom parameter of the launch (e.g. custom_username with Canvas's "
        "$Canvas.user.loginId). A launch without it is refused, it does not fall back.",
    )
    courses: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list,
        description="Launches from these LTI contexts (course ids as the platform sends "
        "them in the context claim; the hub's log names the context of every launch it "
        "refuses) admit people who are not on the roster. Empty: the platform admits nobody "
        "by itself: only roster users, or anyone the platform launches with users.allow_all: "
        "true.",
    )
    redirect_uri: Annotated[str, AfterValidator(check_lti_url)] | None = Field(
        None,
        description="The tool's redirect URI as registered on the platform: this hub's "
        "public address followed by hub/lti13/oauth_callback. Default: from hub.url, or "
        "from the address each launch came to.",
    )
    admin_groups: list[str] = Field(
        default_factory=lambda: ["Instructor"],
        description="Members of these provider groups (course roles, 'context:<id>') are "
        "hub admins, decided at each launch. Default: ['Instructor'], so a course's "
        "instructors administer its hub; [] makes nobody admin through LTI. Roster admins "
        "stay admins.",
    )
