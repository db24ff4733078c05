"""`hubkeeper status`: is the hub reachable, who is there, what runs; through the REST API."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubkeeper import __version__
from hubkeeper.config.loader import load
from hubkeeper.host.statedir import read_secret, state_paths
from hubkeeper.hub.render import public_url


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


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _server_state(user: dict[str, Any]) -> str | None:
    server = (user.get("servers") or {}).get("")
    if server is None:
        return f"pending: {user['pending']}" if user.get("pending") else None
    if server.get("pending"):
        return f"pending: {server['pending']}"
    return "running" if server.get("ready") else "starting"


def status(config: Path) -> StatusResult:
    loaded = load(config)
    paths = state_paths(loaded, os.geteuid() == 0)
    url = public_url(loaded.spec)
    api = url + "hub/api"
    token = read_secret(paths, "service-token")
    try:
        info = _get(api + "/info", token)
        users = _get(api + "/users", token)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return StatusResult(url, False, f"{reason}", __version__, None,
                            sys.version.split()[0], None, None, ())
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
