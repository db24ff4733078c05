"""The Python configurable-http-proxy, with three of its limits lifted.

Run as `python -m hubkeeper.hub.proxy <its usual arguments>`. The PyPI proxy (0.4) proxies a
request with tornado's SimpleAsyncHTTPClient, and

- at most 10 requests are in flight (max_clients): the 11th waits in a queue and gets a 503
  after 20 s. A class waiting for its servers holds many long requests (spawn progress
  streams, websockets), so everyone else's requests would wait. Raised to 2048.
- it reads the target's whole response before sending any of it. The spawn page's progress
  stream (server-sent events) then shows nothing until the server is ready, which hides a
  student's place in the line of starts, and a large download is held in the proxy's memory.
  Here the response is relayed as it arrives, chunk by chunk.
- every response must be complete within tornado's default 20 s (`request_timeout`), unless
  `--proxy-timeout` is given: a progress stream or a download that takes longer is cut.
  Here, as in the Node proxy, there is no limit unless `--proxy-timeout` sets one.
"""

from __future__ import annotations

import sys

from configurable_http_proxy import configproxy
from configurable_http_proxy.handlers import ProxyHandler
from tornado import httputil
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

MAX_CLIENTS = 2048  # requests in flight at once; each is one socket to a server
# Hop-by-hop headers and those tornado sets itself for the relayed body.
NOT_RELAYED = {"content-length", "transfer-encoding", "content-encoding", "connection"}


class StreamingProxyHandler(ProxyHandler):
    """ProxyHandler whose plain HTTP requests relay the response as it arrives."""

    def initialize(self, **kwargs) -> None:  # type: ignore[override]
        super().initialize(**kwargs)
        self._status: int | None = None
        self._target_headers = httputil.HTTPHeaders()
        self._relaying = False

    def _get_proxy_request(self, url: str) -> HTTPRequest:
        request = super()._get_proxy_request(url)
        request.request_timeout = self.proxy.proxy_timeout or 0  # 0: no limit, as Node's
        request.header_callback = self._on_target_header
        request.streaming_callback = self._on_target_chunk
        return request

    def _on_target_header(self, line: str) -> None:
        if line.startswith("HTTP/"):  # a new head (after a 100 Continue, the real one)
            self._status = httputil.parse_response_start_line(line.strip()).code
            self._target_headers = httputil.HTTPHeaders()
        elif line.strip():
            self._target_headers.parse_line(line)

    def _relay_head(self, status: int) -> None:
        self._relaying = True
        self.set_status(status)
        existing = {name.lower() for name, _ in self._headers.get_all()}
        for name, value in self._target_headers.get_all():
            if name.lower() in NOT_RELAYED:
                continue
            if name.lower() in existing:  # Server, Content-Type, Date: the target's
                self.set_header(name, value)
            else:
                self.add_header(name, value)

    def _on_target_chunk(self, chunk: bytes) -> None:
        if not self._relaying:
            self._relay_head(self._status or 502)
        self.write(chunk)
        self.flush()

    async def call_proxy(self, path: str | None = None) -> None:
        url = await self.get_target_url(path)
        if url is None:
            return
        failure: BaseException | None
        try:
            response = await AsyncHTTPClient().fetch(self._get_proxy_request(url),
                                                     raise_error=False)
            failure = response.error if response.code == 599 else None  # e.g. a timeout
        except Exception as err:  # refused, reset, closed mid-body
            failure = err
        if failure is not None:
            if self._relaying:  # part of the body is sent: the client must see it cut
                self.request.connection.close()  # type: ignore[union-attr]
            else:  # no answer at all: the proxy's own error page
                await self.handle_proxy_error(503, failure)
            return
        if not self._relaying:
            self._relay_head(response.code)  # no body (204, 304, an empty 200, HEAD)
        self.finish()


def main() -> None:
    AsyncHTTPClient.configure(None, max_clients=MAX_CLIENTS)
    configproxy.ProxyHandler = StreamingProxyHandler  # the handler its routes name
    from configurable_http_proxy.cli import main as proxy_main

    sys.argv[0] = "configurable-http-proxy"
    sys.exit(proxy_main())


if __name__ == "__main__":
    main()
