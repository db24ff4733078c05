"""The login gate's connections to its service, checked before a byte goes out.

The gate passes every request of a logged-in user to the service: their cookies, what they
type, the user header. While the service is down, its loopback port is free, and any
account could listen there and receive all of it. So each connection the gate opens is
checked first (`host/peer.py`): the server end must belong to root, a system account (a
service such as Shiny Server runs as its own `shiny`), or the gate's own account — never
to a hub user's, which are all uids of 1000 and up in system mode (`state/identity.py`).
In personal mode every server runs as the gate's own account, so the check cannot tell a
student from the service there; personal mode does not isolate users at all.
"""

from __future__ import annotations

from typing import Any

from tornado import httpclient, httputil
from tornado.iostream import IOStream
from tornado.tcpclient import TCPClient
from tornado.websocket import WebSocketClientConnection

from hubkeeper.base.whoami import effective_uid
from hubkeeper.host.peer import ListenerRefused, account_name, peer_uid
from hubkeeper.state.identity import FIRST_USER_UID


def may_serve(uid: int | None) -> bool:
    """Whether a listener owned by `uid` may receive the gate's users' requests."""
    return uid is not None and (uid < FIRST_USER_UID or uid == effective_uid())


class CheckedTCPClient(TCPClient):
    """A TCPClient whose connections are refused unless `may_serve` their listener."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    async def connect(self, host: str, port: int, *args: Any,  # type: ignore[override]
                      **kwargs: Any) -> IOStream:
        stream = await super().connect(host, port, *args, **kwargs)
        uid = peer_uid(stream.socket)
        if not may_serve(uid):
            stream.close()
            who = "an unknown account" if uid is None else f"account {account_name(uid)}"
            raise ListenerRefused(
                f"port {port} on {host}, where the service {self.service} should listen, is "
                f"held by {who}: nothing was passed to it",
                hint="a hub user is listening on the service's port while the service is "
                     "down; stop that process and start the service")
        return stream


def checked_client(client: httpclient.AsyncHTTPClient, service: str) -> None:
    """Make a SimpleAsyncHTTPClient open only checked connections."""
    client.tcp_client = CheckedTCPClient(service)  # type: ignore[attr-defined]


async def checked_websocket(request: httpclient.HTTPRequest, service: str,
                            **options: Any) -> WebSocketClientConnection:
    """tornado's websocket_connect, on a checked connection."""
    request.headers = httputil.HTTPHeaders(request.headers)
    request = httpclient._RequestProxy(  # type: ignore[assignment]
        request, httpclient.HTTPRequest._DEFAULTS)
    connection = WebSocketClientConnection(request, **options)
    # Its first connect runs on the next turn of the loop, through this attribute.
    connection.tcp_client = CheckedTCPClient(service)
    return await connection.connect_future
