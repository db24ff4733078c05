"""auth.kind lti13: the traits of hubkeeper's LTI13Authenticator (hub/auth_lti13.py) from
auth.lti13. LTI 1.3 has no secret on the tool's side: the platform signs each launch with
its keys (jwks_url) and the hub only verifies."""

from __future__ import annotations

from traitlets.config import Config

from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules.auth_lti13 import tool_urls
from hubkeeper.context.runtime import Runtime


def update_lti13_auth(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    lti = spec.auth.lti13
    c.LTI13Authenticator.issuer = lti.issuer or ""
    c.LTI13Authenticator.client_id = set(lti.client_id)
    c.LTI13Authenticator.authorize_url = lti.authorize_url or ""
    c.LTI13Authenticator.jwks_endpoint = lti.jwks_url or ""
    c.LTI13Authenticator.username_key = lti.username_key
    c.LTI13Authenticator.courses = list(lti.courses)
    urls = tool_urls(spec)
    if urls is not None:
        c.LTI13Authenticator.redirect_uri = urls[1]
    # Behind hubkeeper's nginx (hub.url) the browser's scheme is https whatever the
    # forwarded headers say; elsewhere each request's own.
    c.LTI13Authenticator.uri_scheme = "https" if spec.hub.url else "auto"
