"""The canary: hubkeeper's own hub user proves that a hub serves, end to end.

It is made through the hub's REST API with hubkeeper's service token (`admin:users`), gets a
token of its own from the hub (the service may issue tokens for this one user only:
`tokens!user=hubkeeper-canary`, render/hubkeeper_services.py), starts its server with that
token, runs `1+1` in a kernel over the websocket through the proxy, as a browser's JupyterLab
does, then its server is stopped and the hub user deleted. In system mode its server runs as
the account `hkcanary-<hub>` (one per hub: hubs may share a machine), which hubkeeper makes
once and records in its journal
(origin `canary`: not a roster user, never unregistered by the roster's sync; `retire`
removes it with the others).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.host.hubapi import ApiError, HubAPI, HubUnreachable, fetch
from hubkeeper.host.peer import ListenerRefused
from hubkeeper.host.service_account import ensure_account as ensure_service_account
from hubkeeper.state.identity import per_hub_account
from hubkeeper.state.journal import Journal

CANARY_USER = "hubkeeper-canary"  # the hub user, in each hub's own database
CANARY_ACCOUNT_PREFIX = "hkcanary-"  # its Linux account: hkcanary-<hub> (canary_account)
CANARY_ORIGIN = "canary"
START_DEADLINE = 120.0
CODE_DEADLINE = 60.0


class CanaryFailed(HubkeeperError):
    pass


@dataclass(frozen=True)
class CanaryResult:
    user: str
    result: str
    seconds: float


def canary_account(hub_name: str) -> str:
    """The canary's Linux account on this machine for hub `hub_name`: one per hub, so that
    hubs sharing a machine never claim each other's (and at most 32 characters)."""
    return per_hub_account(CANARY_ACCOUNT_PREFIX, hub_name)


def ensure_account(journal_path: Path, hub_name: str) -> str:
    """System mode: the canary's Linux account, made once and journaled (intent first),
    keyed by its account name as every journal account is (retire and the roster's sync
    go by that key). A journal that already records one (an earlier hubkeeper's
    `hubkeeper-canary`) keeps it."""
    journal = Journal.load(journal_path)
    known = [key for key, record in journal.accounts.items() if record.origin == CANARY_ORIGIN]
    account = journal.accounts[known[0]].account if known else canary_account(hub_name)
    if known and known[0] != account:  # keyed by its hub user: re-keyed by its account
        journal.accounts[account] = journal.accounts.pop(known[0])
        journal.save()
    try:
        return ensure_service_account(journal_path, account, account, CANARY_ORIGIN,
                                      "hubkeeper canary", user=CANARY_USER).pw_name
    except CanaryFailed:
        raise
    except HubkeeperError as exc:
        raise CanaryFailed(exc.message, hint=exc.hint) from None


def run_canary(hub_url: str, public_url: str, service_token: str) -> CanaryResult:
    """Make the canary, start its server, run `1+1`; always clean up. Raises CanaryFailed
    naming the step that failed."""
    began = time.monotonic()
    api = HubAPI(hub_url, service_token)
    name = urllib.parse.quote(CANARY_USER)
    step = "creating the canary hub user"
    try:
        try:
            api.call("POST", f"/users/{name}")
        except ApiError as exc:
            if exc.status != 409:  # 409: left by an earlier canary
                raise
        step = "issuing the canary's token"
        token = api.call("POST", f"/users/{name}/tokens",
                         {"note": "hubkeeper upgrade canary", "expires_in": 900})["token"]
        step = "starting the canary's server"
        user_api = HubAPI(hub_url, token)
        try:
            user_api.call("POST", f"/users/{name}/server", {})
        except ApiError as exc:
            if exc.status != 400:  # 400: already running
                raise
        _wait_ready(api, name)
        step = "running 1+1 in a kernel"
        base = public_url.rstrip("/") + f"/user/{name}/"
        fetch(base + "api/status", what="the hub's proxy", headers=_auth(token))  # listener
        result = asyncio.run(asyncio.wait_for(_one_plus_one(base, token), CODE_DEADLINE))
        if result.strip() != "2":
            raise CanaryFailed(f"1+1 gave {result!r}")
        return CanaryResult(CANARY_USER, result, time.monotonic() - began)
    except CanaryFailed as exc:
        raise CanaryFailed(f"canary, {step}: {exc.message}", hint=exc.hint) from None
    except Exception as exc:  # whatever broke (tornado's HTTP errors too), the canary failed
        raise CanaryFailed(f"canary, {step}: {getattr(exc, 'message', None) or exc!r}",
                           hint="see the hub's log") from None
    finally:
        _clean_up(api, name)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def _wait_ready(api: HubAPI, name: str) -> None:
    end = time.monotonic() + START_DEADLINE
    delay = 0.2
    while time.monotonic() < end:
        user = api.call("GET", f"/users/{name}")
        server = (user.get("servers") or {}).get("")
        if server and server.get("ready"):
            return
        if not server and not user.get("pending"):
            raise CanaryFailed("the server did not start (see the hub's log)")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    raise CanaryFailed(f"the server was not ready within {START_DEADLINE:.0f} s")


async def _one_plus_one(base: str, token: str) -> str:
    """A kernel started over the server's REST API, `1+1` sent over its websocket."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    client = AsyncHTTPClient()
    answer = await client.fetch(HTTPRequest(base + "api/kernels", method="POST",
                                            body=json.dumps({"name": "python3"}),
                                            headers=_auth(token), request_timeout=60))
    kernel = json.loads(answer.body)["id"]
    ws_url = base.replace("http", "ws", 1) + f"api/kernels/{kernel}/channels?session_id=" + \
        uuid.uuid4().hex
    msg_id = uuid.uuid4().hex
    request = {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": CANARY_USER,
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": "1+1", "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False},
    }
    ws = await websocket_connect(HTTPRequest(ws_url, headers=_auth(token)))
    try:
        await ws.write_message(json.dumps(request))
        while True:
            message = await ws.read_message()
            if message is None:
                raise CanaryFailed("the kernel's websocket closed before a result")
            reply = json.loads(message)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = reply.get("msg_type") or reply["header"]["msg_type"]
            if kind == "execute_result":
                return str(reply["content"]["data"]["text/plain"])
            if kind == "error":
                raise CanaryFailed(f"the kernel answered an error: {reply['content']}")
    finally:
        ws.close()
        await client.fetch(HTTPRequest(base + f"api/kernels/{kernel}", method="DELETE",
                                       headers=_auth(token)), raise_error=False)


def _clean_up(api: HubAPI, name: str) -> None:
    """The canary's server stopped and its hub user (with its tokens) deleted; the account
    stays for the next canary. Best effort: the canary's verdict is already made."""
    try:
        user = api.call("GET", f"/users/{name}")
    except (HubkeeperError, HubUnreachable, ListenerRefused, OSError):
        return
    try:
        if user.get("servers") or user.get("pending"):
            api.stop_server(CANARY_USER)
        api.call("DELETE", f"/users/{name}")
    except (HubkeeperError, HubUnreachable, ListenerRefused, OSError):
        pass
