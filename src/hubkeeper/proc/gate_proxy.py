"""The login gate's request handling with tornado and JupyterHub's own service-auth library:
the OAuth login, then the reverse proxy (HTTP streamed both ways, and WebSockets). What it
decides comes from `gate_rules`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthenticated, UserNotAllowed
from tornado import httpclient, httputil, web, websocket

from hubkeeper.proc.gate_rules import (
    HOP_BY_HOP,
    GateConfig,
    cross_site,
    refusal,
    rewrite_location,
    rewrite_set_cookie,
    upstream_headers,
    upstream_path,
)
from hubkeeper.proc.gate_upstream import checked_websocket

log = logging.getLogger("hubkeeper.gate")

MAX_BODY = 1 << 40  # no limit of our own: nginx.max_upload (client_max_body_size) is the limit
MAX_MESSAGE = 64 << 20  # the largest WebSocket message passed on (64 MiB)
CONNECT_TIMEOUT = 10.0


class Refused(web.HTTPError):
    """An answer the gate gives itself (403, 502, ...), as plain text the user reads."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status, log_message=text)
        self.text = text


@web.stream_request_body
class GateHandler(HubOAuthenticated, websocket.WebSocketHandler):
    """Every request below the prefix: log in through the hub (OAuth), check, pass on."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT",  # type: ignore
                         "OPTIONS", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK",
                         "UNLOCK", "REPORT", "SEARCH")

    def initialize(self, config: GateConfig, auth: HubOAuth,
                   client: httpclient.AsyncHTTPClient) -> None:
        self.config = config
        self.hub_auth = auth
        self.client = client
        self._body: asyncio.Queue[bytes | None] | None = None
        self._upstream: asyncio.Future[httpclient.HTTPResponse] | None = None
        self._status_line: httputil.ResponseStartLine | None = None
        self._response_headers = httputil.HTTPHeaders()
        self._upstream_ws: websocket.WebSocketClientConnection | None = None
        self._pump: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()  # the browser closed the connection
        self._refused: Refused | None = None
        self._login_url: str | None = None

    # ----- who may pass
    def _is_websocket(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"

    def check_xsrf_cookie(self) -> None:
        """JupyterHub's _xsrf check, which HubOAuth makes for cookie logins on POST, PUT, ...
        is replaced by `cross_site`, made in `prepare` before the login is looked at."""

    async def prepare(self) -> None:  # type: ignore[override]
        # A refusal or a redirect is only answered in the method, after the request has
        # been read: tornado drops the connection (without saying so) when a streamed
        # request is answered in prepare, and the proxy's next request on it then fails.
        try:
            self._login_url = await self._admit()
        except Refused as refused:
            self._refused = refused
            return
        if self._login_url or self._is_websocket():
            return
        self.request.connection.set_max_body_size(MAX_BODY)  # type: ignore[union-attr]
        if self._request_has_body():  # before the first chunk can arrive
            if ("Content-Length" not in self.request.headers
                    and self.request.method not in ("POST", "PUT", "PATCH")):
                self._refused = Refused(411, "send a Content-Length with a body on this "
                                             "method")
                return
            self._body = asyncio.Queue(maxsize=4)
        self._upstream = asyncio.ensure_future(self._fetch())

    async def _admit(self) -> str | None:
        """Let the user in (current_user), or the hub's login URL, or raise Refused."""
        why = cross_site(self.request)
        if why:
            raise Refused(403, why)
        user = await self.hub_auth.get_user(self, sync=False)
        if user is None:
            if self.request.method in ("GET", "HEAD") and not self._is_websocket():
                return self.get_login_url()  # the hub's OAuth, then its login page
            raise Refused(403, f"log in to the hub first to use {self.config.name}")
        try:
            self.check_hub_user(user)  # the token's access:services!service=<name> scope
        except UserNotAllowed:
            raise Refused(403, f"{user.get('name')} may not use {self.config.name}") from None
        why = refusal(self.config, user)
        if why:
            log.info("%s: refused %s: %s", self.config.name, user.get("name"), why)
            raise Refused(403, why)
        self.current_user = user
        return None

    def _turned_away(self) -> bool:
        """Answer a request `prepare` did not let through; True when it is answered."""
        if self._refused is not None:
            raise self._refused
        if self._login_url:
            self.redirect(self._login_url)
            return True
        return False

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, Refused):  # a refusal is in the access log already
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        text = exc.text if isinstance(exc, Refused) else self._reason
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code} {self._reason}: {text}\n")

    def compute_etag(self) -> None:
        return None  # the upstream's answer is passed on as it is, never hashed here

    # ----- HTTP: the body streams to the upstream while it arrives, the answer back likewise
    def _request_has_body(self) -> bool:
        headers = self.request.headers
        return ("Transfer-Encoding" in headers
                or int(headers.get("Content-Length", "0") or 0) > 0)

    async def _fetch(self) -> httpclient.HTTPResponse:
        method = self.request.method or "GET"
        headers = upstream_headers(self.config, self.request, self.current_user["name"],
                                   self._hidden_cookies())
        body_producer = None
        body: bytes | None = b"" if method in ("POST", "PUT", "PATCH") else None
        if self._body is not None:
            body_producer, body = self._produce_body, None
        request = httpclient.HTTPRequest(
            self.config.upstream + upstream_path(self.config, self.request.uri or "/"),
            method=method, headers=headers, body=body, body_producer=body_producer,
            follow_redirects=False, decompress_response=False, allow_nonstandard_methods=True,
            connect_timeout=CONNECT_TIMEOUT, request_timeout=0,  # 0: streams may last
            header_callback=self._on_header_line, streaming_callback=self._on_chunk)
        return await self.client.fetch(request, raise_error=False)

    async def _produce_body(self, write: Any) -> None:
        assert self._body is not None
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            while True:
                get = asyncio.ensure_future(self._body.get())
                await asyncio.wait([get, gone], return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    # Raising makes tornado drop the upstream connection: a body cut short
                    # must never reach the upstream as if it were whole.
                    raise ConnectionAbortedError("the browser went away mid-request")
                chunk = get.result()
                if chunk is None:
                    return
                await write(chunk)
        finally:
            gone.cancel()

    async def data_received(self, chunk: bytes) -> None:  # type: ignore[override]
        if self._body is None or self._upstream is None:
            return
        put = asyncio.ensure_future(self._body.put(chunk))
        # An upstream that answers before reading the whole body must not stall the reading.
        await asyncio.wait([put, self._upstream], return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()

    def _hidden_cookies(self) -> list[str]:
        return [self.hub_auth.cookie_name, "jupyterhub-session-id"]

    def _on_header_line(self, line: str) -> None:
        if self._status_line is None:
            self._status_line = httputil.parse_response_start_line(line.strip())
        elif line.strip():
            self._response_headers.parse_line(line)
        else:
            self._start_response()

    def _start_response(self) -> None:
        assert self._status_line is not None
        self.set_status(self._status_line.code, self._status_line.reason or None)
        for key in ("Content-Type", "Server", "Date"):
            self.clear_header(key)
        for key, value in self._response_headers.get_all():
            lower = key.lower()
            if lower in HOP_BY_HOP:
                continue
            if lower == "location":
                value = rewrite_location(self.config, value)
            elif lower == "set-cookie":
                value = rewrite_set_cookie(self.config, value)
            self.add_header(key, value)

    def _on_chunk(self, chunk: bytes) -> Awaitable[None]:
        self.write(chunk)
        return self.flush()  # awaited by tornado's client: a slow browser slows the upstream

    async def _answer(self, *args: Any) -> None:
        """After the whole request body arrived: wait for the upstream's answer, finish."""
        if self._turned_away():
            return
        if self._body is not None:
            await self._body.put(None)
        assert self._upstream is not None
        try:
            response = await self._upstream
        except Exception as exc:  # noqa: BLE001  (connection refused, reset, DNS, ...)
            if self._status_line is not None:
                log.warning("%s: upstream broke off %s: %s", self.config.name,
                            self.request.path, exc)
                self.request.connection.close()  # type: ignore[union-attr]
                return
            log.warning("%s: %s does not answer: %s", self.config.name, self.config.upstream,
                        exc)
            raise Refused(502, f"{self.config.name} does not answer (it may be starting or "
                               "stopped); try again in a moment") from None
        if self._status_line is None:  # no header callback: answered without a response
            raise Refused(502, f"{self.config.name} gave no answer ({response.code})")
        if not self._finished:
            self.finish()

    head = post = put = patch = delete = options = _answer  # type: ignore[assignment]
    propfind = proppatch = mkcol = copy = move = lock = unlock = report = search = _answer

    # ----- WebSockets: a connection to the upstream first, then the browser's handshake
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self._turned_away():
            return
        if not self._is_websocket():
            await self._answer()
            return
        url = "ws" + self.config.upstream[len("http"):] + upstream_path(
            self.config, self.request.uri or "/")
        protocols = [p.strip() for p in
                     self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                     if p.strip()]
        headers = upstream_headers(self.config, self.request, self.current_user["name"],
                                   self._hidden_cookies(), websocket_request=True)
        try:
            self._upstream_ws = await checked_websocket(
                httpclient.HTTPRequest(url, headers=headers, connect_timeout=CONNECT_TIMEOUT,
                                       request_timeout=0), self.config.name,
                subprotocols=protocols or None, max_message_size=MAX_MESSAGE)
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: websocket to %s failed: %s", self.config.name, url, exc)
            raise Refused(502, f"{self.config.name} refused the WebSocket "
                               f"({getattr(exc, 'code', exc)})") from None
        await super().get(*args, **kwargs)
        if self.get_status() != 101:  # the browser's handshake failed (e.g. cross-origin)
            self._upstream_ws.close()

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        return MAX_MESSAGE

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        assert self._upstream_ws is not None
        return self._upstream_ws.selected_subprotocol

    def open(self, *args: Any, **kwargs: Any) -> None:
        self._pump = asyncio.ensure_future(self._pump_upstream())

    async def _pump_upstream(self) -> None:
        upstream = self._upstream_ws
        assert upstream is not None
        while (message := await upstream.read_message()) is not None:
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                upstream.close()
                return
        self.close(*_close_args(upstream.close_code, upstream.close_reason))

    async def on_message(self, message: str | bytes) -> None:  # type: ignore[override]
        assert self._upstream_ws is not None
        try:
            await self._upstream_ws.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            self.close()

    def on_close(self) -> None:
        self._gone.set()
        if self._upstream_ws is not None:
            self._upstream_ws.close(*_close_args(self.close_code, self.close_reason))


def _close_args(code: int | None, reason: str | None) -> tuple[int | None, str | None]:
    """1005, 1006 and 1015 describe a close; they must never be sent in one (RFC 6455 7.4.1)."""
    if code is None or code in (1005, 1006, 1015):
        return None, None
    return code, reason


def path_only(handler: web.RequestHandler) -> str:
    """For the access log: the path without the query (an OAuth code must not be logged)."""
    return urlsplit(handler.request.uri or "").path


def log_request(handler: web.RequestHandler) -> None:
    status = handler.get_status()
    user = handler.current_user["name"] if isinstance(handler.current_user, dict) else "-"
    level = logging.INFO if status < 400 else logging.WARNING
    log.log(level, "%s %s %s %s %.0fms", status, handler.request.method, path_only(handler),
            user, 1000 * handler.request.request_time())
