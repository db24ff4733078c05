"""auth.ldap's rules across fields: the server and how it is encrypted, how a login name
finds its entry (bind_dn_template or a search), the group DNs, and who first_login admits.
(Whether <state>/secrets/ldap-bind-password is there is a fact of the machine: `check`.)"""

from __future__ import annotations

import ipaddress
import string
import urllib.parse

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from hubkeeper.config.auth_providers import LDAPSection
from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules import Found

SECTION = ("auth", "ldap")
EXAMPLE_DN = "e.g. cn=students,ou=groups,dc=example,dc=org"


def effective_tls(ldap: LDAPSection) -> str:
    """auth.ldap.tls, or its default: ldaps for ldaps://, starttls for ldap://."""
    if ldap.tls:
        return ldap.tls
    return "ldaps" if (ldap.server or "").startswith("ldaps://") else "starttls"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_dn(value: str) -> bool:
    try:
        return bool(value.strip()) and bool(parse_dn(value))
    except LDAPInvalidDnError:
        return False


def ldap_problems(spec: HubSpec) -> Found:
    """Every rule of auth.ldap across fields, as (field path, message) pairs."""
    auth = spec.auth
    if auth.kind != "ldap":
        return []  # auth.ldap with another kind: rules/spec.py, as for every provider
    if "ldap" not in auth.model_fields_set:
        return [(("auth", "kind"),
                 "kind 'ldap' needs an auth.ldap section with at least server (e.g. "
                 "ldaps://ldap.example.org) and bind_dn_template or user_search_base")]
    ldap = auth.ldap
    problems = _server_problems(ldap)
    problems += _lookup_problems(ldap)
    problems += _group_problems(ldap)
    if spec.users.accounts == "first_login" and not ldap.allowed_groups \
            and not spec.users.allow_all:
        problems.append((("users", "accounts"),
                         "with first_login everyone in the directory could make themselves "
                         "an account here; list the DNs of the LDAP groups admitted in "
                         f"auth.ldap.allowed_groups ({EXAMPLE_DN}), or, knowingly, set "
                         "users.allow_all: true"))
    if spec.users.allow_all and ldap.allowed_groups:
        problems.append((("users", "allow_all"),
                         "with kind 'ldap' this lets everyone in the directory in, so "
                         "auth.ldap.allowed_groups would have no effect; remove one of them"))
    return problems


def _server_problems(ldap: LDAPSection) -> Found:
    if ldap.server is None:
        return [(SECTION, "server is required: the LDAP server's address, e.g. "
                 "ldaps://ldap.example.org or ldap://ldap.example.org (with tls: starttls)")]
    problems: Found = []
    parts = urllib.parse.urlsplit(ldap.server)
    host = parts.hostname or ""
    tls = effective_tls(ldap)
    if parts.scheme == "ldaps" and tls != "ldaps":
        problems.append(((*SECTION, "tls"),
                         f"{ldap.server!r} is TLS from the start: tls must be ldaps (or "
                         f"left out), not {tls!r}; or use an ldap:// address"))
    elif parts.scheme == "ldap" and tls == "ldaps":
        problems.append(((*SECTION, "tls"),
                         f"ldaps needs an ldaps:// server address, not {ldap.server!r}; "
                         "or use tls: starttls with ldap://"))
    elif tls == "none" and not _loopback(host):
        problems.append(((*SECTION, "tls"),
                         f"none would send every password to {host} in the clear; use "
                         "starttls (ldap:// upgraded to TLS) or an ldaps:// address. Plain "
                         "LDAP is only accepted to this machine (127.0.0.1, ::1, localhost)"))
    if ldap.ca_file is not None:
        if tls == "none":
            problems.append(((*SECTION, "ca_file"),
                             "only used with tls starttls or ldaps; remove it"))
        elif not ldap.ca_file.startswith("/"):
            problems.append(((*SECTION, "ca_file"),
                             f"{ldap.ca_file!r} must be an absolute path"))
    return problems


def _lookup_problems(ldap: LDAPSection) -> Found:
    """Exactly one way from a login name to an entry: templates, or a search."""
    problems: Found = []
    given = ldap.model_fields_set
    if ldap.bind_dn_template and ldap.user_search_base:
        problems.append(((*SECTION, "user_search_base"),
                         "give either bind_dn_template (the DN is built from the name) or "
                         "user_search_base (the DN is searched for), not both"))
    elif not ldap.bind_dn_template and not ldap.user_search_base:
        problems.append((SECTION, "say how a login name finds its entry: bind_dn_template "
                         "(e.g. ['uid={username},ou=people,dc=example,dc=org']) or "
                         "user_search_base with user_attribute (e.g. "
                         "'ou=people,dc=example,dc=org' and uid, or sAMAccountName for "
                         "Active Directory)"))
    for index, template in enumerate(ldap.bind_dn_template):
        where = (*SECTION, "bind_dn_template", index)
        fields = _template_fields(template)
        if fields is None or fields - {"username"}:
            problems.append((where, f"{template!r} may hold only {{username}} in braces, "
                             "e.g. 'uid={username},ou=people,dc=example,dc=org'"))
        elif "username" not in fields:
            problems.append((where, f"{template!r} must hold {{username}}, e.g. "
                             "'uid={username},ou=people,dc=example,dc=org'"))
        elif not _is_dn(template.replace("{username}", "x")):
            problems.append((where, f"{template!r} is not a DN, e.g. "
                             "'uid={username},ou=people,dc=example,dc=org'"))
    for key in ("user_search_base", "lookup_dn_search_user"):
        value = getattr(ldap, key)
        if value is not None and not _is_dn(value):
            problems.append(((*SECTION, key), f"{value!r} is not a DN, e.g. "
                             "ou=people,dc=example,dc=org"))
    if not ldap.user_search_base:
        for key in ("user_attribute", "lookup_dn_search_user"):
            if key in given:
                problems.append(((*SECTION, key), "only used with user_search_base (a "
                                 "search for the login name); remove it"))
    return problems


def _template_fields(template: str) -> set[str] | None:
    """The {names} in a template; None when its braces do not parse."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template)
                if name is not None}
    except ValueError:
        return None


def _group_problems(ldap: LDAPSection) -> Found:
    problems: Found = []
    for key in ("allowed_groups", "admin_groups"):
        for index, dn in enumerate(getattr(ldap, key)):
            if not _is_dn(dn):
                problems.append(((*SECTION, key, index),
                                 f"{dn!r} is not a group's DN; {EXAMPLE_DN}"))
    for dn in ldap.groups:
        if not _is_dn(dn):
            problems.append(((*SECTION, "groups", dn),
                             f"{dn!r} is not a group's DN; {EXAMPLE_DN}"))
    return problems
