"""The login gate's decisions, as pure functions: who may pass, what the upstream is sent,
and how its answers map back under the public prefix.

The gate maps /services/<name>/ to the upstream's root, as a reverse proxy in front of
RStudio with `www-root-path` does: /services/rstudio/x reaches the upstream as /x.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tornado import httputil

log = logging.getLogger("hubkeeper.gate")

# Headers of one connection, not of the request (RFC 9110 7.6.1), and those the gate sets.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "expect",
})
WEBSOCKET_HANDSHAKE = ("sec-websocket-",)


@dataclass(frozen=True)
class GateConfig:
    """What one gate serves; read from its command line and the environment the hub gives it."""

    name: str
    prefix: str  # the public path, e.g. /course/services/rstudio/
    host: str  # where the gate listens (the service's url in JupyterHub)
    port: int
    upstream: str  # the real service, e.g. http://127.0.0.1:8787 (no trailing '/')
    groups: frozenset[str]  # empty: every hub user
    user_header: str
    command: tuple[str, ...]  # run as the gate's child; empty: the upstream runs elsewhere


def refusal(config: GateConfig, user: Mapping[str, Any]) -> str | None:
    """Why this hub user may not pass (None: they may). `user` is the hub's user model as the
    user's own token sees it: with `groups` when the gate asked for read:users:groups!user."""
    if user.get("kind", "user") != "user":
        return f"{user.get('name')} is a {user.get('kind')}, not a hub user"
    if not config.groups:
        return None
    groups = user.get("groups")
    if groups is None:
        log.error("%s: the hub did not give the groups of %s; the service needs the scope "
                  "read:users:groups!user (oauth_client_allowed_scopes)", config.name,
                  user.get("name"))
        return "the hub did not say which groups you are in"
    if config.groups & set(groups):
        return None
    wanted = ", ".join(sorted(config.groups))
    return (f"{user.get('name')} may not use {config.name}: it is open to the members of "
            f"{wanted}")


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site(request: httputil.HTTPServerRequest) -> str | None:
    """Why a state-changing request looks sent by another site (None: it does not).

    The gate's login cookie would ride along on such a request, so it never reaches the
    service; this replaces JupyterHub's _xsrf token, which services like RStudio do not
    send (they have their own CSRF tokens). Browsers name the site in Sec-Fetch-Site, older
    ones send Origin; a request with neither does not come from a browser's page.
    """
    if request.method in SAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site in ("same-origin", "none"):
        return None
    if site is None and (origin is None or urlsplit(origin).netloc.lower()
                         == request.headers.get("Host", "").lower()):
        return None
    return f"a {request.method} from another site ({origin or site}) is not passed on"


def upstream_headers(config: GateConfig, request: httputil.HTTPServerRequest, user: str,
                     hidden_cookies: Iterable[str], *, websocket_request: bool = False,
                     ) -> httputil.HTTPHeaders:
    """The request's headers as the upstream gets them: without hop-by-hop headers, the
    gate's own cookies or a user header the browser made up; with the user and X-Forwarded-*.
    """
    user_header = config.user_header.lower()
    own = {"x-hubkeeper-user", user_header, "x-forwarded-prefix"}
    hidden = set(hidden_cookies)
    headers = httputil.HTTPHeaders()
    for key, value in request.headers.get_all():
        lower = key.lower()
        if lower in HOP_BY_HOP or lower in own:
            continue
        if websocket_request and lower.startswith(WEBSOCKET_HANDSHAKE):
            continue  # the gate's own connection upstream makes its handshake
        if lower == "cookie":
            value = _without_cookies(value, hidden)
            if not value:
                continue
        headers.add(key, value)
    forwarded_for = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = (f"{forwarded_for}, {request.remote_ip}" if forwarded_for
                                  else str(request.remote_ip))
    headers.setdefault("X-Forwarded-Proto", request.protocol)
    headers.setdefault("X-Forwarded-Host", request.host)
    headers["X-Forwarded-Prefix"] = config.prefix.rstrip("/")
    headers[config.user_header] = user
    return headers


def _without_cookies(header: str, hidden: set[str]) -> str:
    kept = []
    for part in header.split(";"):
        name = part.split("=", 1)[0].strip()
        if name and not any(name == h or name.startswith(h + "-oauth-state") for h in hidden):
            kept.append(part.strip())
    return "; ".join(kept)


def rewrite_location(config: GateConfig, location: str) -> str:
    """An upstream redirect as the browser must see it: the upstream's own address and paths
    from its root move under the prefix; a path already under it (an upstream that knows its
    prefix, e.g. RStudio with www-root-path) and other sites stay."""
    if location.startswith(config.upstream + "/") or location == config.upstream:
        return config.prefix + location[len(config.upstream):].lstrip("/")
    if location.startswith("/") and not location.startswith("//"):
        if location.startswith(config.prefix) or location + "/" == config.prefix:
            return location
        return config.prefix + location.lstrip("/")
    return location


_COOKIE_PATH = re.compile(r"(;\s*path\s*=\s*)([^;]*)", re.IGNORECASE)


def rewrite_set_cookie(config: GateConfig, header: str) -> str:
    """An upstream cookie's Path moves under the prefix, as its redirects do, so that an
    upstream's Path=/ cookie does not reach the hub and every other service."""

    def moved(match: re.Match[str]) -> str:
        path = match.group(2).strip()
        if path.startswith(config.prefix) or path + "/" == config.prefix:
            return match.group(0)
        return match.group(1) + config.prefix + path.lstrip("/")

    return _COOKIE_PATH.sub(moved, header)


def upstream_path(config: GateConfig, uri: str) -> str:
    """/course/services/rstudio/a/b?c -> /a/b?c (the raw, still percent-encoded form)."""
    return "/" + uri[len(config.prefix):] if uri.startswith(config.prefix) else "/"
