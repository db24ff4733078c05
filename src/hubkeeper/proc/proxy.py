"""The Python configurable-http-proxy, made safe against a hostile user server.

Run as `python -m hubkeeper.proc.proxy [--idle-timeout S] [--max-per-route N] <its usual
arguments>`. The PyPI proxy (0.4) proxies a request with tornado's SimpleAsyncHTTPClient:
one pool of 10 slots for every target, each response read whole before any of it is sent,
every response cut at 20 s, nothing cancelled when the client goes away. One student's
server that never answers then holds every slot (the login page answers 503 for everyone),
and one that answers endlessly to a client that does not read fills the proxy's memory.
Here (proxy_upstream.py for the request itself):

- **responses are relayed as they arrive**, and the next chunk is read from the target only
  once the client has taken the previous one (backpressure): the spawn page's progress
  stream shows at once, a large download is never held in memory, a client that does not
  read stops the target instead of filling the proxy.
- **a client that goes away ends its request to the target** at once.
- **idle timeout** (`--idle-timeout`, seconds): a request to a user's server during which
  neither the target sent a byte nor the client took one for that long is ended. An open
  WebSocket (kernels, terminals, JupyterLab's events) has none once it is established;
  only its handshake does.
- **a cap per user server** (`--max-per-route`): requests and WebSockets in flight to one
  user's route; the next gets a 503 at once, from the proxy itself.
- The hub's and the services' routes (run by the operator; the spawn page's progress
  stream is the hub's) have neither limit, so one server can never take the room
  everyone's login needs.
- WebSocket messages are relayed in both directions with backpressure, binary as binary.
- the public and API ports are bound with SO_REUSEPORT, so `hubkeeper up` can hold them
  across a restart of the proxy (host/porthold.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import sys
import time
from dataclasses import dataclass

from configurable_http_proxy import configproxy
from configurable_http_proxy.handlers import ProxyHandler
from tornado import httputil
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets
from tornado.websocket import WebSocketClosedError, websocket_connect

from hubkeeper.proc.proxy_upstream import Upstream, UpstreamError

log = logging.getLogger("configurable_http_proxy.hubkeeper")  # its handler and level

DEFAULT_IDLE_TIMEOUT = 300.0  # seconds
DEFAULT_MAX_PER_ROUTE = 128
# Response headers tornado sets itself for the relayed body.
NOT_RELAYED = {"content-length", "transfer-encoding", "content-encoding", "connection"}


@dataclass
class Limits:
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT  # 0: none
    max_per_route: int = DEFAULT_MAX_PER_ROUTE  # 0: none


LIMITS = Limits()  # set once by main(), before the first request
IN_FLIGHT: dict[str, int] = {}  # route prefix -> requests and WebSockets open to it
REFUSED: dict[str, int] = {}


class StreamingProxyHandler(ProxyHandler):
    """ProxyHandler with flow control, an idle timeout, cancellation and a cap per route."""

    def initialize(self, **kwargs) -> None:  # type: ignore[override]
        super().initialize(**kwargs)
        self._counted: str | None = None  # the route this request is counted against
        self._user_route = False  # a user's server: the cap and the idle timeout apply
        self._upstream: Upstream | None = None
        self._progress = time.monotonic()
        self._idle_timer: object | None = None
        self._relaying = False
        self._reader: asyncio.Future[None] | None = None

    # -- the cap per route -------------------------------------------------------------
    def _admit(self) -> bool:
        """Count this request against its route; answer 503 and False if the route is full."""
        prefix = self.target["prefix"] if self.target else ""
        route = self.proxy.get_route(prefix) or {}
        # The hub's and the services' routes (run by the operator) have neither limit.
        self._user_route = "user" in route
        if not self._user_route or not LIMITS.max_per_route:
            return True
        if IN_FLIGHT.get(prefix, 0) >= LIMITS.max_per_route:
            REFUSED[prefix] = REFUSED.get(prefix, 0) + 1
            if REFUSED[prefix] % 100 == 1:  # the first, then every 100th: the log stays small
                log.warning("%s: %d requests in flight (proxy --max-per-route); refused %d",
                            prefix, IN_FLIGHT[prefix], REFUSED[prefix])
            self.set_status(503)
            self.set_header("Retry-After", "10")
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("Too many requests in flight to this server.\n")
            return False
        IN_FLIGHT[prefix] = IN_FLIGHT.get(prefix, 0) + 1
        self._counted = prefix
        return True

    def _release(self) -> None:
        if self._counted is not None:
            IN_FLIGHT[self._counted] -= 1
            if not IN_FLIGHT[self._counted]:
                del IN_FLIGHT[self._counted]
            self._counted = None

    # -- the idle timeout --------------------------------------------------------------
    def _touch(self) -> None:
        self._progress = time.monotonic()

    def _idle_timeout(self) -> float | None:
        return LIMITS.idle_timeout if self._user_route and LIMITS.idle_timeout else None

    def _arm_idle(self) -> None:
        if self._idle_timeout():
            self._idle_timer = IOLoop.current().call_at(
                self._progress + LIMITS.idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self._upstream is None:
            return
        if time.monotonic() - self._progress < LIMITS.idle_timeout:
            self._arm_idle()
            return
        log.warning("%s %s: nothing moved for %.0f s (proxy --idle-timeout); ended",
                    self.request.method, self.request.path, LIMITS.idle_timeout)
        self._upstream.stop()

    def _disarm_idle(self) -> None:
        if self._idle_timer is not None:
            IOLoop.current().remove_timeout(self._idle_timer)
            self._idle_timer = None

    # -- plain HTTP --------------------------------------------------------------------
    def _relay_head(self, status: int, reason: str, headers: httputil.HTTPHeaders) -> None:
        self._touch()
        self._relaying = True
        self.set_status(status, reason or None)
        existing = {name.lower() for name, _ in self._headers.get_all()}
        for name, value in headers.get_all():
            if name.lower() in NOT_RELAYED:
                continue
            if name.lower() in existing:  # Server, Content-Type, Date: the target's
                self.set_header(name, value)
            else:
                self.add_header(name, value)

    async def _relay_chunk(self, chunk: bytes) -> None:
        self._touch()
        self.write(chunk)
        await self.flush()  # until the client has taken it, nothing more is read
        self._touch()

    async def call_proxy(self, path: str | None = None) -> None:
        url = await self.get_target_url(path)
        if url is None or not self._admit():
            return
        if self.request.connection.stream.closed():  # type: ignore[union-attr]
            self._release()  # gone before we began: nothing to ask the target
            return
        request = self._get_proxy_request(url)  # the headers as the PyPI proxy sends them
        self._upstream = Upstream(url)
        self._touch()
        self._arm_idle()
        failure: BaseException | None = None
        try:
            await self._upstream.fetch(request.method, httputil.HTTPHeaders(request.headers),
                                       request.body,
                                       self._relay_head, self._relay_chunk,
                                       self._idle_timeout())
        except UpstreamError as err:
            failure = err
        finally:
            self._disarm_idle()
            self._upstream = None
            self._release()
        if self.request.connection.stream.closed():  # type: ignore[union-attr]
            return  # the client went away: nobody to answer
        if failure is not None:
            if self._relaying:  # part of the response is sent: the client must see it cut
                self.request.connection.close()  # type: ignore[union-attr]
            else:  # no answer at all: the proxy's own error page
                await self.handle_proxy_error(503, failure)
            return
        self.finish()

    def on_connection_close(self) -> None:
        if self._upstream is not None:  # the client went away: so does its request
            self._upstream.stop()
        super().on_connection_close()

    def on_finish(self) -> None:
        if self.get_status() != 101:  # a WebSocket "finishes" its handshake: still open
            self._release()
        super().on_finish()

    # -- WebSockets --------------------------------------------------------------------
    async def get(self, path: str | None = None) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            await super().get(path)
            return
        url = await self.get_target_url(path)
        if url is None or not self._admit():
            return
        await self.start_ws_client(path)
        if not self.ws_client:
            self._release()
            return
        try:
            await super(ProxyHandler, self).get(path)  # WebSocketHandler's: the upgrade
        finally:
            if self.get_status() != 101 and self.ws_client:
                self.ws_client.close()
                self.ws_client = None
                self._release()

    async def start_ws_client(self, path: str | None = None) -> None:
        self.closed = False
        url = await self.get_target_url(path)
        if url is None:
            return
        request = self._get_proxy_request(url.replace("http", "ws", 1))
        # The handshake has the idle timeout; an open WebSocket has none (tornado removes
        # request_timeout once the target answers 101).
        request.connect_timeout = self._idle_timeout()
        request.request_timeout = self._idle_timeout()
        try:
            # No on_message_callback: messages are read one at a time (relay_from_target),
            # so a client that does not read stops the target.
            self.ws_client = await websocket_connect(request)
        except HTTPClientError as err:
            self.set_status(err.code)
            self.write(err.message or "")
            self.finish()
        except Exception as err:
            await self.handle_proxy_error(503, err)

    def open(self, *args: str, **kwargs: str) -> None:
        self._reader = asyncio.ensure_future(self._relay_from_target())

    async def _relay_from_target(self) -> None:
        client = self.ws_client
        try:
            while client is not None:
                message = await client.read_message()
                if message is None:  # the target closed
                    break
                self._activity()
                await self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass
        finally:
            self.close()

    async def on_message(self, message: str | bytes) -> None:  # type: ignore[override]
        if self.ws_client is None:
            return
        self._activity()
        try:  # awaited: tornado reads the next message from the client only after this
            await self.ws_client.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            self.close()

    def _activity(self) -> None:
        prefix = self.target["prefix"] if self.target else ""
        if prefix:
            self.proxy.update_last_activity(prefix)  # what the idle culler reads

    def on_close(self) -> None:
        if self.ws_client:
            self.ws_client.close()
            self.ws_client = None
        self.closed = True
        if self._reader is not None:
            self._reader.cancel()
        self._release()


class ReusePortServer(HTTPServer):
    """An HTTPServer whose listening sockets have SO_REUSEPORT: `hubkeeper up` keeps the
    port bound (as the hub's account) while the proxy is down, and only that account may
    bind beside it (host/porthold.py)."""

    def listen(self, port: int, address: str | None = None, **kwargs) -> None:
        self.add_sockets(bind_sockets(port, address or None, reuse_port=True))


def parse_own(argv: list[str]) -> tuple[Limits, list[str]]:
    """hubkeeper's options; the rest is configurable-http-proxy's."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT)
    parser.add_argument("--max-per-route", type=int, default=DEFAULT_MAX_PER_ROUTE)
    own, rest = parser.parse_known_args(argv)
    return Limits(own.idle_timeout, own.max_per_route), rest


def raise_open_files_limit() -> None:
    """Two descriptors per proxied connection: as many as this account may have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    global LIMITS
    LIMITS, rest = parse_own(sys.argv[1:])
    raise_open_files_limit()
    configproxy.ProxyHandler = StreamingProxyHandler  # the handler its routes name
    from configurable_http_proxy import cli

    cli.HTTPServer = ReusePortServer  # type: ignore[misc]
    sys.argv = ["configurable-http-proxy", *rest]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
