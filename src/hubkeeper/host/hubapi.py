"""The one client hubkeeper uses for the hub's REST API and the proxy's API: its tokens go
only to a listener run by root or the hub's account.

`fetch` connects, checks who holds the other end of that connection (host/peer.py) and only
then sends the request; it never goes through an environment proxy (`http_proxy`), and every
step has a deadline. `HubAPI` is the REST API on top of it. status, apply, prewarm, doctor,
`up` (waiting for the hub to answer) and the schedule service all use it. Code running
inside JupyterHub (hub/chp.py) checks its connections the same way with aiohttp; the
separate processes (proxy, gate) are servers, not clients of the hub's API; the slurm
server (proc/slurm_server.py) calls home from a compute node, where no listener of this
machine can be checked.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.host.peer import check_listener

STOP_DEADLINE = 60.0
TIMEOUT = 30.0  # seconds for each step: connect, send, each read of the answer
MAX_ANSWER = 64 << 20  # the users list of a large hub fits; an endless answer does not


class HubUnreachable(Exception):
    pass


class ApiError(HubkeeperError):
    """The hub answered with an HTTP error."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def fetch(url: str, *, what: str, method: str = "GET",
          headers: Mapping[str, str] | None = None, body: bytes | None = None,
          timeout: float = TIMEOUT, allowed: Collection[int] | None = None) -> Answer:
    """One HTTP request to a server on this machine. Raises ListenerRefused (nothing sent)
    when the listener is not root's or the hub's account's (`allowed`), HubUnreachable when
    nothing answers. `what` names the server in messages ("the hub's API")."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise HubkeeperError(f"cannot reach {url}: only http:// addresses on this machine")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        try:
            connection.connect()
        except OSError as exc:
            raise HubUnreachable(str(exc.strerror or exc)) from None
        assert connection.sock is not None
        check_listener(connection.sock, what, allowed)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(method, target, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return Answer(response.status, response.read(MAX_ANSWER))
        except (OSError, http.client.HTTPException) as exc:
            raise HubUnreachable(str(exc) or type(exc).__name__) from None
    finally:
        connection.close()


class HubAPI:
    """The hub's REST API at `url` (the hub's own address and base_url), with `token`."""

    def __init__(self, url: str, token: str, timeout: float = TIMEOUT) -> None:
        self.api = url.rstrip("/") + "/hub/api"
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        answer = fetch(self.api + path, what="the hub's API", method=method, body=data,
                       headers={"Authorization": f"token {self.token}",
                                "Content-Type": "application/json"},
                       timeout=self.timeout)
        if answer.status >= 400:
            detail = answer.body.decode(errors="replace")[:300]
            raise ApiError(answer.status,
                           f"the hub answered {answer.status} to {method} {path}: {detail}",
                           hint="see the hub's log")
        try:
            return json.loads(answer.body) if answer.body else None
        except ValueError:
            raise HubUnreachable(f"{method} {path}: the answer is not JSON") from None

    def users(self) -> list[dict[str, Any]]:
        return self.call("GET", "/users")

    def groups(self) -> list[dict[str, Any]]:
        return self.call("GET", "/groups")

    def stop_server(self, name: str, deadline: float = STOP_DEADLINE) -> None:
        quoted = urllib.parse.quote(name)
        self.call("DELETE", f"/users/{quoted}/server")
        end = time.monotonic() + deadline
        delay = 0.1
        while time.monotonic() < end:
            user = self.call("GET", f"/users/{quoted}")
            if not user.get("servers") and not user.get("pending"):
                return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise HubkeeperError(f"{name}'s server did not stop within {deadline:.0f} s")
