"""One plain HTTP request to a proxy target, relayed with flow control and a way to stop it.

tornado's SimpleAsyncHTTPClient, which the PyPI configurable-http-proxy uses, cannot be
cancelled, has one pool of slots for every target, and has no idle timeout (only a total
one). Here the request is one HTTP/1.1 connection (tornado's own HTTP1Connection, the code
behind SimpleAsyncHTTPClient) that the proxy holds: closing its stream stops it at once
(the client went away, or the target said nothing for too long), and the next chunk is not
read from the target before the previous one has been taken by the client (`data_received`
returns the client's flush, which HTTP1Connection awaits).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable

from tornado import httputil
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters
from tornado.iostream import IOStream
from tornado.tcpclient import TCPClient

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones this connection sets itself.
NOT_FORWARDED = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                 "transfer-encoding", "upgrade", "expect", "content-length"}
NO_BODY_LIMIT = 1 << 62  # a download is streamed, never held: its size is not our concern


class UpstreamError(Exception):
    """The target could not be reached, or broke off before its response was complete."""


OnHead = Callable[[int, str, httputil.HTTPHeaders], None]
OnChunk = Callable[[bytes], Awaitable[None]]


class _Relay(httputil.HTTPMessageDelegate):
    def __init__(self, on_head: OnHead, on_chunk: OnChunk) -> None:
        self.on_head = on_head
        self.on_chunk = on_chunk

    def headers_received(self, start_line: httputil.RequestStartLine
                         | httputil.ResponseStartLine,
                         headers: httputil.HTTPHeaders) -> None:
        assert isinstance(start_line, httputil.ResponseStartLine)
        if 100 <= start_line.code < 200:  # 100 Continue: the real head follows
            return
        self.on_head(start_line.code, start_line.reason, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None]:
        return self.on_chunk(chunk)  # awaited before the next read: backpressure


class Upstream:
    """A request to `url`; `stop()` ends it from outside (idle, or the client gone)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stream: IOStream | None = None
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self.stream is not None:
            self.stream.close()

    async def fetch(self, method: str, headers: httputil.HTTPHeaders, body: bytes | None,
                    on_head: OnHead, on_chunk: OnChunk, connect_timeout: float | None) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise UpstreamError(f"unsupported target {self.url}")
        try:
            self.stream = await TCPClient().connect(parts.hostname, parts.port or 80,
                                                    timeout=connect_timeout)
        except Exception as err:  # refused, unreachable, timed out
            raise UpstreamError(f"connect to {parts.netloc}: {err}") from err
        if self.stopped:  # stopped while connecting
            self.stream.close()
            raise UpstreamError("stopped")
        connection = HTTP1Connection(self.stream, True, HTTP1ConnectionParameters(
            no_keep_alive=True, decompress=False, max_body_size=NO_BODY_LIMIT))
        sent = httputil.HTTPHeaders()
        for name, value in headers.get_all():
            if name.lower() not in NOT_FORWARDED:
                sent.add(name, value)
        sent["Connection"] = "close"
        if "Host" not in sent:
            sent["Host"] = parts.netloc
        if body or method in ("POST", "PUT", "PATCH"):
            sent["Content-Length"] = str(len(body or b""))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            await connection.write_headers(
                httputil.RequestStartLine(method, target, "HTTP/1.1"), sent)
            if body:
                await connection.write(body)
            connection.finish()
            complete = await connection.read_response(_Relay(on_head, on_chunk))
        except Exception as err:  # the target closed on us, or the client's flush failed
            raise UpstreamError(str(err) or type(err).__name__) from err
        finally:
            self.stream.close()
        if not complete or self.stopped:
            raise UpstreamError("stopped" if self.stopped else "the target broke off")
