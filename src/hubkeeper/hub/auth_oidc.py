"""OpenID Connect login (auth.kind oidc) through oauthenticator's GenericOAuthenticator.

The provider's addresses come from its discovery document
(<issuer>/.well-known/openid-configuration), read at the first login rather than when the
hub starts, so that a provider that is down does not keep the hub from starting; the
document must name the configured issuer. The ID token (received straight from the
provider's token endpoint, which oauthenticator authenticates with the client secret over
TLS, so OpenID Connect Core 3.1.3.7 lets its signature go unchecked) gives `iss` and `sub`;
its audience, issuer and expiry are checked. Its claims merged with the userinfo endpoint's
(when about the same `sub`) are the user's claims: the name (`username_claim`), the groups
(`groups_claim`), and the subject 'oidc:<iss> <sub>' the hub user stays bound to.

Who may log in: the roster (JupyterHub's allowed_users), everyone with users.allow_all, and
members of `allowed_claim_groups` or `provider_admin_groups` (provider groups, from the groups
claim).
"""

from __future__ import annotations

import asyncio

import jwt
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler
from tornado.httpclient import HTTPClientError
from traitlets import Bool, List, Unicode

from hubkeeper.hub.auth import HubkeeperAuthenticator, ProviderIdentity, refusal

DISCOVERY_PATH = "/.well-known/openid-configuration"


class OIDCLoginHandler(OAuthLoginHandler):
    """/hub/oauth_login: the provider's addresses are discovered first (once)."""

    async def get(self):  # type: ignore[override]
        await self.authenticator.discover()
        super().get()


class OIDCAuthenticator(HubkeeperAuthenticator, GenericOAuthenticator):
    """Log in with an OpenID Connect provider (Keycloak, Entra ID, Google, Okta, ...)."""

    login_handler = OIDCLoginHandler

    issuer = Unicode(
        "", config=True,
        help="The provider's issuer URL; its discovery document must name exactly this "
        "issuer, and so must the ID tokens.",
    )
    groups_claim = Unicode(
        "groups", config=True,
        help="The claim listing the user's groups at the provider.",
    )
    groups_scope = Bool(
        False, config=True,
        help="Add the 'groups' scope to `scope` when the provider offers it "
        "(scopes_supported of its discovery document).",
    )
    allowed_claim_groups = List(
        Unicode(), config=True,
        help="Provider groups (values of groups_claim) whose members may log in.",
    )

    _discovered = False
    _discovery_lock: asyncio.Lock | None = None

    async def discover(self) -> None:
        """Read the discovery document once: authorize, token and userinfo addresses."""
        if self._discovered:
            return
        if self._discovery_lock is None:
            self._discovery_lock = asyncio.Lock()
        async with self._discovery_lock:
            if not self._discovered:
                self._apply_discovery(await self._fetch_discovery())
                self._discovered = True

    async def _fetch_discovery(self) -> dict:
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        try:
            document = await self.httpfetch(url, "Fetching the OpenID Connect discovery "
                                            "document", method="GET",
                                            validate_cert=self.validate_server_cert)
        except (HTTPClientError, OSError, ValueError) as exc:
            self.log.error("OpenID Connect discovery at %s failed: %s", url, exc)
            raise refusal(503, "The identity provider cannot be reached right now; "
                          "please try again in a minute.") from None
        if not isinstance(document, dict):
            self.log.error("OpenID Connect discovery at %s: not a JSON object", url)
            raise refusal(503, "The identity provider answered strangely; tell the hub's "
                          "administrator.")
        return document

    def _apply_discovery(self, document: dict) -> None:
        named = document.get("issuer")
        if named != self.issuer:
            # OpenID Connect Discovery 4.3: the issuer must be identical, or the tokens
            # could come from someone else.
            self.log.error("OpenID Connect discovery: the document names issuer %r, but "
                           "auth.oidc.issuer is %r; they must be identical", named,
                           self.issuer)
            raise refusal(503, "The identity provider is not configured correctly on "
                          "this hub; tell the hub's administrator.")
        missing = [key for key in ("authorization_endpoint", "token_endpoint")
                   if not isinstance(document.get(key), str)]
        if missing:
            self.log.error("OpenID Connect discovery: no %s in the document",
                           " or ".join(missing))
            raise refusal(503, "The identity provider is not configured correctly on "
                          "this hub; tell the hub's administrator.")
        self.authorize_url = document["authorization_endpoint"]
        self.token_url = document["token_endpoint"]
        self.userdata_url = document.get("userinfo_endpoint") or ""
        offered = document.get("scopes_supported") or []
        if self.groups_scope and "groups" in offered and "groups" not in self.scope:
            self.scope = [*self.scope, "groups"]
        self.log.info("OpenID Connect provider %s: authorize %s, token %s, userinfo %s, "
                      "scopes %s", self.issuer, self.authorize_url, self.token_url,
                      self.userdata_url or "(none)", " ".join(self.scope))

    async def authenticate(self, handler, data=None, **kwargs):  # type: ignore[override]
        await self.discover()  # e.g. a callback after the hub restarted
        return await super().authenticate(handler, data, **kwargs)

    def id_token_claims(self, token_info: dict) -> dict:
        """The ID token's claims, its issuer, audience and expiry checked."""
        id_token = token_info.get("id_token")
        if not id_token:
            self.log.error("the token response has no id_token: is 'openid' among the "
                           "scopes (%s)?", " ".join(self.scope))
            raise refusal(502, "The identity provider did not say who you are; tell the "
                          "hub's administrator.")
        try:
            return jwt.decode(
                id_token, audience=self.client_id, issuer=self.issuer,
                options={"verify_signature": False, "verify_aud": True, "verify_iss": True,
                         "verify_exp": True, "require": ["iss", "sub", "aud", "exp"]})
        except jwt.InvalidTokenError as exc:
            self.log.warning("ID token refused: %s", exc)
            raise refusal(403, "The identity provider's answer could not be accepted; "
                          "please log in again.") from None

    async def token_to_user(self, token_info):  # type: ignore[override]
        """The user's claims: the ID token's, and the userinfo endpoint's when they are
        about the same subject (OpenID Connect Core 5.3.2: else they must not be used)."""
        claims = self.id_token_claims(token_info)
        if self.userdata_url:
            userinfo = await super().token_to_user(token_info)
            if not isinstance(userinfo, dict) or userinfo.get("sub") != claims["sub"]:
                self.log.warning("userinfo ignored: its sub %r is not the ID token's %r",
                                 userinfo.get("sub") if isinstance(userinfo, dict) else None,
                                 claims["sub"])
                return claims
            claims = {**claims, **userinfo, "iss": claims["iss"], "sub": claims["sub"]}
        return claims

    def _claims(self, model: dict) -> dict:
        auth_state = model.get("auth_state") or {}
        claims = auth_state.get(self.user_auth_state_key)
        return claims if isinstance(claims, dict) else {}

    def provider_groups(self, claims: dict) -> frozenset[str]:
        value = claims.get(self.groups_claim)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return frozenset()
        return frozenset(str(group) for group in value)

    def provider_identity(self, model: dict) -> ProviderIdentity | None:
        claims = self._claims(model)
        if not claims.get("iss") or not claims.get("sub"):
            return None
        return ProviderIdentity("oidc", f"oidc:{claims['iss']} {claims['sub']}",
                                self.provider_groups(claims))

    async def _apply_managed_groups(self, auth_model):  # type: ignore[override]
        # oauthenticator would set the hub groups from the groups claim as they are;
        # check_identity maps them (group_map) and decides admin status from them.
        return auth_model

    async def check_allowed(self, username, auth_model):  # type: ignore[override]
        if await super().check_allowed(username, auth_model):
            return True
        if not auth_model:
            return False
        identity = self.provider_identity(auth_model)
        if identity is None:
            return False
        admitting = set(self.allowed_claim_groups) | set(self.provider_admin_groups)
        return bool(identity.groups & admitting)

