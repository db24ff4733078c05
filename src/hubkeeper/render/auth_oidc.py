"""auth.kind oidc -> the traits of hubkeeper.hub.auth_oidc.OIDCAuthenticator. Pure: the
provider's addresses are discovered by the authenticator itself at the first login, not
here."""

from __future__ import annotations

import urllib.parse

from traitlets.config import Config

from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules.auth_oidc import oidc_callback_url
from hubkeeper.context.runtime import Runtime

DEFAULT_SCOPES = ("openid", "profile", "email")


def update_oidc_auth(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    oidc = spec.auth.oidc
    assert oidc.issuer is not None  # config/rules/auth_oidc.py
    c.OIDCAuthenticator.issuer = oidc.issuer
    c.OIDCAuthenticator.client_id = runtime.secrets.oidc_client_id
    c.OIDCAuthenticator.client_secret = runtime.secrets.oidc_client_secret
    c.OIDCAuthenticator.oauth_callback_url = oidc_callback_url(spec)
    c.OIDCAuthenticator.login_service = urllib.parse.urlsplit(oidc.issuer).hostname
    c.OIDCAuthenticator.username_claim = oidc.username_claim
    c.OIDCAuthenticator.groups_claim = oidc.groups_claim
    c.OIDCAuthenticator.allowed_claim_groups = list(oidc.allowed_groups)
    uses_groups = bool(oidc.groups or oidc.admin_groups or oidc.allowed_groups)
    if oidc.scopes is not None:
        c.OIDCAuthenticator.scope = list(oidc.scopes)
    else:
        c.OIDCAuthenticator.scope = list(DEFAULT_SCOPES)
        # Keycloak-style providers send the groups claim only for a 'groups' scope; others
        # (Entra ID) have none and would refuse an unknown one: asked only where offered.
        c.OIDCAuthenticator.groups_scope = uses_groups
    # Whoever leaves the allowed groups is refused at their next login.
    c.OIDCAuthenticator.allow_existing_users = False
