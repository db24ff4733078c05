"""`hubkeeper status`: is the hub reachable, who is there, what runs; through the REST API."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from hubkeeper import __version__
from hubkeeper.context.hub import Hub
from hubkeeper.host.hubapi import ApiError, HubAPI, HubUnreachable

STATUS_TIMEOUT = 10.0  # seconds per step: a hub slower than that is reported unreachable


@dataclass(frozen=True)
class UserStatus:
    name: str
    admin: bool
    server: str | None  # "running", "pending: spawn", or None
    last_activity: str | None


@dataclass(frozen=True)
class StatusResult:
    url: str
    reachable: bool
    error: str | None
    hubkeeper_version: str
    jupyterhub_version: str | None
    python_version: str | None
    authenticator: str | None
    spawner: str | None
    users: tuple[UserStatus, ...]

    @property
    def running(self) -> int:
        return sum(1 for user in self.users if user.server == "running")


def _server_state(user: dict[str, Any]) -> str | None:
    server = (user.get("servers") or {}).get("")
    if server is None:
        return f"pending: {user['pending']}" if user.get("pending") else None
    if server.get("pending"):
        return f"pending: {server['pending']}"
    return "running" if server.get("ready") else "starting"


def status(hub: Hub) -> StatusResult:
    url = hub.public_url
    # The read-only token, to the hub's own port: it is checked to be the hub's (root's or
    # our account's) before the token is sent (host/hubapi.py); a stranger there is an error.
    api = HubAPI(hub.hub_api_url, hub.read_secret("status-token"),
                 timeout=STATUS_TIMEOUT)
    try:
        info = api.call("GET", "/info")
        users = api.users()
    except HubUnreachable as exc:
        return StatusResult(url, False, f"{exc}", __version__, None,
                            sys.version.split()[0], None, None, ())
    except ApiError as exc:
        if exc.status == 403:
            exc.hint = ("a hub started by an older hubkeeper does not know the status token "
                        "yet: restart it (`hubkeeper up`)")
        raise
    return StatusResult(
        url=url,
        reachable=True,
        error=None,
        hubkeeper_version=__version__,
        jupyterhub_version=info.get("version"),
        python_version=(info.get("python") or "").split()[0] or None,
        authenticator=(info.get("authenticator") or {}).get("class"),
        spawner=(info.get("spawner") or {}).get("class"),
        users=tuple(
            UserStatus(
                name=user["name"],
                admin=bool(user.get("admin")),
                server=_server_state(user),
                last_activity=user.get("last_activity"),
            )
            for user in sorted(users, key=lambda u: u["name"])
        ),
    )
