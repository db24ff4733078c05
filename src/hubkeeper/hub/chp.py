"""The hub's side of the proxy's API: JupyterHub's ConfigurableHTTPProxy, except that the
proxy's token goes only to a listener run by root or the hub's account.

JupyterHub sends `Authorization: token <proxy token>` with every route change and check. If
the proxy is down (crashed, restarting, or never bound because a student took its API port
first), whoever holds that port would get the token and could route anything anywhere. Here
each new connection to the proxy's API is checked (host/peer.py) after it is made and before
a byte is sent; a refused listener fails the request with a message naming its account.
Configured as `c.JupyterHub.proxy_class` (render.py); imported by JupyterHub, not by verbs.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import ClientConnectionError, ClientResponseError
from jupyterhub.proxy import ConfigurableHTTPProxy
from jupyterhub.utils import exponential_backoff, url_path_join
from tornado.httpclient import HTTPClientError

from hubkeeper.host.peer import ListenerRefused, check_listener

API_DEADLINE = 30  # seconds, as JupyterHub's own api_request retries

# JupyterHub 5 calls api_request(..., client=) and reads a tornado response (`.body`, and
# tornado's HTTPError for a 404 on delete); 6 reads an aiohttp response (`await .json()`).
TORNADO_ANSWERS = "client" in inspect.signature(ConfigurableHTTPProxy.api_request).parameters


@dataclass(frozen=True)
class TornadoAnswer:
    """What JupyterHub 5 reads of a proxy API answer."""

    code: int
    body: bytes


class CheckedConnector(aiohttp.TCPConnector):
    """A connector whose new connections are refused unless root or the hub's account holds
    the other end. `_create_connection` is aiohttp's documented hook for this (JupyterHub's
    own connector overrides it too); a kept-alive connection was checked when it was made."""

    def __init__(self, what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.what = what

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
        protocol = await super()._create_connection(req, traces, timeout)
        sock = protocol.transport.get_extra_info("socket")
        try:
            check_listener(sock, self.what)
        except Exception:
            protocol.transport.abort()
            raise
        return protocol


class CheckedProxy(ConfigurableHTTPProxy):
    """ConfigurableHTTPProxy with `api_request` through a checked connection (the rest, the
    process, the routes, the pid file, is JupyterHub's)."""

    _checked_session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._checked_session is None or self._checked_session.closed:
            self._checked_session = aiohttp.ClientSession(
                connector=CheckedConnector("the hub's proxy (its API)"))
        return self._checked_session

    async def api_request(self, path: str, method: str = "GET", body: Any = None,
                          client: Any = None) -> Any:  # type: ignore[override]
        """JupyterHub's own api_request (6.1), through `_session()`; on JupyterHub 5 the
        answer in tornado's shape (`client`, tornado's own, is not used)."""
        url = url_path_join(self.api_url, "api/routes", path)
        if isinstance(body, dict):
            body = json.dumps(body)
        self.log.debug("Proxy: Fetching %s %s", method, url)

        async def attempt() -> Any:
            try:
                async with self.semaphore:
                    response = await self._session().request(
                        method, url, data=body,
                        headers={"Authorization": f"token {self.auth_token}"})
                    if TORNADO_ANSWERS and response.status < 500:
                        data = await response.read()
                        if response.status >= 400:
                            raise HTTPClientError(response.status, response.reason)
                        return TornadoAnswer(response.status, data)
                    response.raise_for_status()
                    return response
            except ListenerRefused as exc:  # nothing was sent: say so where operators look
                self.log.error("%s (%s)", exc, exc.hint)
                raise
            except ClientConnectionError as exc:
                self.log.warning("api_request to the proxy failed with connection error "
                                 "%s, retrying...", exc)
                return False  # exponential_backoff tries again
            except ClientResponseError as exc:
                if exc.status >= 500:  # transient in the proxy
                    self.log.warning("api_request to the proxy failed with status code %s, "
                                     "retrying...", exc.status)
                    return False
                self.log.error("api_request to proxy failed: %s", exc)
                raise

        return await exponential_backoff(
            attempt, f'Repeated api_request to proxy path "{path}" failed.',
            timeout=API_DEADLINE)
