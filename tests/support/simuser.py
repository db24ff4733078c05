"""A simulated student: the login form, a server start, a kernel over the websocket, code, stop.

Only what a browser does, over HTTP: cookies, the _xsrf token, the OAuth redirects to the
user's server. Every wait has a deadline. Used by component tests and by bench/.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL


class SimUserError(Exception):
    pass


@dataclass
class Timings:
    login: float | None = None
    spawn: float | None = None  # from the start request until the server is ready
    first_result: float | None = None  # from the login request until `1+1` answered
    error: str | None = None
    marks: dict[str, float] = field(default_factory=dict)


class SimUser:
    def __init__(self, base_url: str, name: str, password: str,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """`ssl_context`: for an https:// hub, the context that trusts its certificate
        (e.g. a test's self-signed one as the CA); default: the system's CAs."""
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.name = name
        self.password = password
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies from 127.0.0.1
            timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None,
        )
        self.timings = Timings()

    async def __aenter__(self) -> SimUser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    def _cookie(self, path: str, name: str) -> str | None:
        cookies = self.session.cookie_jar.filter_cookies(URL(self.base + path))
        morsel = cookies.get(name)
        return morsel.value if morsel else None

    def _hub_headers(self) -> dict[str, str]:
        return {"X-XSRFToken": self._cookie("hub/", "_xsrf") or ""}

    async def login(self) -> None:
        began = time.monotonic()
        async with self.session.get(self.base + "hub/login") as response:
            page = await response.text()
            if response.status != 200:
                raise SimUserError(f"login page: HTTP {response.status}")
        match = re.search(r'name="_xsrf"\s+value="([^"]+)"', page)
        form = {"username": self.name, "password": self.password}
        if match:
            form["_xsrf"] = match.group(1)
        async with self.session.post(self.base + "hub/login?next=", data=form,
                                     allow_redirects=False) as response:
            if response.status not in (302, 303):
                body = await response.text()
                raise SimUserError(f"login refused: HTTP {response.status} "
                                   f"{_excerpt(body)}")
        self.timings.login = time.monotonic() - began

    async def start_server(self, deadline: float = 120.0, body: dict | None = None) -> None:
        """Start the server (`body`: its options, e.g. {"environment": "lab"}); wait ready."""
        began = time.monotonic()
        url = self.base + f"hub/api/users/{self.name}/server"
        async with self.session.post(url, json=body or {},
                                     headers=self._hub_headers()) as response:
            text = await response.text()
            # Already running (started for them before they came, e.g. `hubkeeper prewarm`):
            # a browser is sent straight to it.
            running = response.status == 400 and "is already running" in text
            if response.status not in (201, 202) and not running:
                raise SimUserError(f"start: HTTP {response.status} {text}")
        await self.wait_ready(deadline - (time.monotonic() - began))
        self.timings.spawn = time.monotonic() - began

    async def model(self) -> dict:
        url = self.base + f"hub/api/users/{self.name}"
        async with self.session.get(url, headers=self._hub_headers()) as response:
            if response.status != 200:
                raise SimUserError(f"user model: HTTP {response.status}")
            return await response.json()

    async def wait_ready(self, deadline: float) -> None:
        end = time.monotonic() + deadline
        delay = 0.1
        while time.monotonic() < end:
            user = await self.model()
            server = user.get("servers", {}).get("")
            if server and server.get("ready"):
                return
            if not server and not user.get("pending"):
                raise SimUserError("server start failed (no server and nothing pending)")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        raise SimUserError(f"server not ready within {deadline:.0f} s")

    async def open_server(self) -> None:
        """What a browser does on /user/<name>/lab: the OAuth dance that sets the server cookie."""
        async with self.session.get(self.base + f"user/{self.name}/lab") as response:
            if response.status != 200:
                raise SimUserError(f"open server: HTTP {response.status} at {response.url}")
            await response.read()

    async def server_get(self, path: str) -> dict | list:
        """GET /user/<name>/<path> on the opened server (open_server first), as JSON."""
        url = self.base + f"user/{self.name}/{path}"
        async with self.session.get(url, headers=self._server_headers()) as response:
            if response.status != 200:
                raise SimUserError(f"GET {path}: HTTP {response.status} "
                                   f"{_excerpt(await response.text())}")
            return await response.json()

    def _server_headers(self) -> dict[str, str]:
        return {"X-XSRFToken": self._cookie(f"user/{self.name}/", "_xsrf") or ""}

    async def kernelspecs(self) -> dict:
        """The server's GET /api/kernelspecs: {"default": ..., "kernelspecs": {name: ...}}."""
        specs = await self.server_get("api/kernelspecs")
        assert isinstance(specs, dict)
        return specs

    async def run_code(self, code: str, deadline: float = 60.0,
                       kernel_name: str = "python3") -> str:
        """Start a kernel (`kernel_name`), run `code` over the websocket, return the
        text/plain result."""
        kernel = await self.start_kernel(kernel_name)
        try:
            return await self.execute(kernel, code, deadline, kernel_name)
        finally:
            await self.delete_kernel(kernel)

    async def start_kernel(self, kernel_name: str = "python3") -> str:
        """POST /api/kernels: a new kernel's id."""
        api = self.base + f"user/{self.name}/api/kernels"
        async with self.session.post(api, json={"name": kernel_name},
                                     headers=self._server_headers()) as response:
            if response.status != 201:
                raise SimUserError(f"kernel start: HTTP {response.status} "
                                   f"{_excerpt(await response.text())}")
            return (await response.json())["id"]

    async def kernel_action(self, kernel: str, action: str) -> None:
        """POST /api/kernels/<id>/<action> (interrupt, restart)."""
        url = self.base + f"user/{self.name}/api/kernels/{kernel}/{action}"
        async with self.session.post(url, headers=self._server_headers()) as response:
            if response.status not in (200, 204):
                raise SimUserError(f"kernel {action}: HTTP {response.status} "
                                   f"{_excerpt(await response.text())}")

    async def delete_kernel(self, kernel: str) -> None:
        api = self.base + f"user/{self.name}/api/kernels/{kernel}"
        async with self.session.delete(api, headers=self._server_headers()):
            pass

    async def execute(self, kernel: str, code: str, deadline: float = 60.0,
                      kernel_name: str = "python3", during: Any = None) -> str:
        """Run `code` in kernel `kernel` over its websocket; the text/plain result (a kernel
        error raises SimUserError with its value). `during`: an awaitable run once the
        request is sent (e.g. an interrupt)."""
        api = self.base + f"user/{self.name}/api/kernels"
        ws_url = URL(api.replace("http", "ws", 1) + f"/{kernel}/channels").with_query(
            session_id=uuid.uuid4().hex)
        msg_id = uuid.uuid4().hex
        request = {
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                       "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }
        origin = str(URL(self.base).origin())
        async with self.session.ws_connect(ws_url, origin=origin,
                                           headers=self._server_headers()) as ws:
            await ws.send_str(json.dumps(request))
            if during is not None:
                await during
            # IRkernel shows a value as display_data, ipykernel as execute_result
            kinds = {"execute_result"} | ({"display_data"} if kernel_name != "python3"
                                          else set())
            return await asyncio.wait_for(self._result(ws, msg_id, kinds), deadline)

    async def upload(self, path: str, data: bytes) -> dict:
        """Save `data` as the file `path` (relative to the home) through the contents API,
        as JupyterLab's upload does (base64 in one PUT). Returns the file's model."""
        url = self.base + f"user/{self.name}/api/contents/{path}"
        body = {"type": "file", "format": "base64", "content": base64.b64encode(data).decode()}
        async with self.session.put(url, json=body, headers=self._server_headers()) as response:
            if response.status not in (200, 201):
                raise SimUserError(f"upload: HTTP {response.status} "
                                   f"{_excerpt(await response.text())}")
            return await response.json()

    async def _result(self, ws: aiohttp.ClientWebSocketResponse, msg_id: str,
                      kinds: set[str]) -> str:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            reply = json.loads(message.data)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = reply.get("msg_type") or reply["header"]["msg_type"]
            if kind in kinds:
                return reply["content"]["data"]["text/plain"]
            if kind == "error":
                content = reply["content"]
                raise SimUserError(f"kernel error: {content.get('ename')}: {content.get('evalue')}")
        raise SimUserError("websocket closed before a result")

    async def stop_server(self, deadline: float = 60.0) -> None:
        url = self.base + f"hub/api/users/{self.name}/server"
        async with self.session.delete(url, headers=self._hub_headers()) as response:
            if response.status not in (202, 204):
                raise SimUserError(f"stop: HTTP {response.status}")
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            user = await self.model()
            if not user.get("servers") and not user.get("pending"):
                return
            await asyncio.sleep(0.2)
        raise SimUserError(f"server not stopped within {deadline:.0f} s")

    async def journey(self, code: str = "1+1") -> Timings:
        """The whole visit, timed: login, start, open, run code. Errors are recorded."""
        began = time.monotonic()
        try:
            await self.login()
            await self.start_server()
            await self.open_server()
            result = await self.run_code(code)
            if result.strip() != "2" and code == "1+1":
                raise SimUserError(f"1+1 gave {result!r}")
            self.timings.first_result = time.monotonic() - began
        except (SimUserError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.timings.error = f"{type(exc).__name__}: {exc}"
        return self.timings


async def run_once(url: str, name: str, password: str, code: str,
                   body: dict | None = None) -> str:
    """Log in through the form, start the server (with `body` as options), open it, run
    `code` in a kernel; return its result."""
    async with SimUser(url, name, password) as user:
        await user.login()
        await user.start_server(body=body)
        await user.open_server()
        return await user.run_code(code)


def _excerpt(body: str, limit: int = 200) -> str:
    text = re.sub(r"<[^>]+>", " ", body)
    return " ".join(text.split())[:limit]
