"""auth.kind ldap -> jupyterhub-ldapauthenticator's traits (hub/auth_ldap.LDAPAuthenticator).

Only what is LDAP's own: the server, TLS, how a login name finds its entry, the groups that
admit. The traits every provider shares (group map, admin groups, first login) are set by
render/jupyterhub.update_auth. Pure: the search account's password comes from
runtime.secrets (<state>/secrets/ldap-bind-password), never from hub.yaml.
"""

from __future__ import annotations

import ssl
import urllib.parse

from traitlets.config import Config

from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules.auth_ldap import effective_tls
from hubkeeper.context.runtime import Runtime

# hub.yaml's tls -> ldapauthenticator's TlsStrategy (by name).
TLS_STRATEGIES = {"none": "insecure", "starttls": "before_bind", "ldaps": "on_connect"}
DEFAULT_PORTS = {"ldaps": 636}


def update_ldap_auth(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    ldap = spec.auth.ldap
    assert ldap.server is not None  # rules/auth_ldap.py
    server = urllib.parse.urlsplit(ldap.server)
    tls = effective_tls(ldap)
    c.LDAPAuthenticator.server_address = server.hostname
    c.LDAPAuthenticator.server_port = server.port or DEFAULT_PORTS.get(server.scheme, 389)
    c.LDAPAuthenticator.tls_strategy = TLS_STRATEGIES[tls]
    if tls != "none":
        # ldap3 verifies nothing by default: the certificate must be checked, or anyone on
        # the path could read the passwords that bind.
        tls_kwargs: dict[str, object] = {"validate": int(ssl.CERT_REQUIRED)}
        if ldap.ca_file:
            tls_kwargs["ca_certs_file"] = ldap.ca_file
        c.LDAPAuthenticator.tls_kwargs = tls_kwargs
    if ldap.user_search_base:
        c.LDAPAuthenticator.lookup_dn = True
        c.LDAPAuthenticator.user_search_base = ldap.user_search_base
        c.LDAPAuthenticator.user_attribute = ldap.user_attribute
        # The entry found binds; the hub user stays the name typed (then normalised).
        c.LDAPAuthenticator.lookup_dn_user_dn_attribute = ldap.user_attribute
        c.LDAPAuthenticator.use_lookup_dn_username = False
        if ldap.lookup_dn_search_user:
            c.LDAPAuthenticator.lookup_dn_search_user = ldap.lookup_dn_search_user
            c.LDAPAuthenticator.lookup_dn_search_password = runtime.secrets.ldap_bind_password
    else:
        c.LDAPAuthenticator.bind_dn_template = list(ldap.bind_dn_template)
    c.LDAPAuthenticator.allowed_groups = list(ldap.allowed_groups)
    # Whoever leaves the allowed groups is refused at their next login, even if the hub's
    # database knows them.
    c.LDAPAuthenticator.allow_existing_users = False
