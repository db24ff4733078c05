"""A small client of the running hub's REST API, with hubkeeper's own service token."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from hubkeeper.errors import HubkeeperError

STOP_DEADLINE = 60.0


class HubUnreachable(Exception):
    pass


class HubAPI:
    def __init__(self, url: str, token: str) -> None:
        self.api = url.rstrip("/") + "/hub/api"
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api + path, data=data, method=method,
            headers={"Authorization": f"token {self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise HubkeeperError(f"the hub answered {exc.code} to {method} {path}: {detail}",
                                 hint="see the hub's log") from None
        except (urllib.error.URLError, OSError) as exc:
            raise HubUnreachable(str(getattr(exc, "reason", exc))) from None
        return json.loads(raw) if raw else None

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
