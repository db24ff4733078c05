"""hubkeeper's Python proxy (`python -m hubkeeper.proc.proxy`) as a real process in front of a
real HTTP server: responses are relayed as they arrive (the spawn page's progress stream),
whatever they take (no 20 s cut), large ones without being held in the proxy's memory, and
statuses, headers, empty bodies, a dead target and a target that breaks off are passed on
as they are."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support.hubproc import free_ports

pytestmark = pytest.mark.component

TOKEN = "proxy-test-token"
BIG = 64 * 1024 * 1024  # bytes of /big
LONGER_THAN_TORNADO_DEFAULT = 22.0  # seconds; tornado's request_timeout default is 20


@dataclass
class Proxy:
    proc: subprocess.Popen
    url: str
    api: str

    def peak_rss(self) -> int:
        """VmHWM, in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")


def start_proxy(port: int, api_port: int, target: str, log: Path) -> Proxy:
    with open(log, "wb") as sink:  # a file, not a pipe nobody reads: the proxy never blocks
        proc = subprocess.Popen(
            [sys.executable, "-m", "hubkeeper.proc.proxy", "--ip", "127.0.0.1", "--port",
             str(port), "--api-ip", "127.0.0.1", "--api-port", str(api_port),
             "--default-target", target],
            env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": TOKEN},
            stdout=sink, stderr=subprocess.STDOUT)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Proxy(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}")
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the proxy did not listen within 30 s")


def upstream(first_chunk_seen: asyncio.Event, body: bytes) -> web.Application:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "X-Hub-Test": "kept"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await first_chunk_seen.wait()  # only once the client has it: no buffering passes
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        end = time.monotonic() + LONGER_THAN_TORNADO_DEFAULT
        while time.monotonic() < end:
            await response.write(b"data: waiting\n\n")
            await asyncio.sleep(2)
        await response.write(b"data: ready\n\n")
        await response.write_eof()
        return response

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(body)
        await response.prepare(request)
        if request.method != "HEAD":
            for start in range(0, len(body), 1024 * 1024):
                await response.write(body[start:start + 1024 * 1024])
        await response.write_eof()
        return response

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such notebook", headers={"X-Hub-Test": "404"})

    async def empty(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"x" * 100)
        await asyncio.sleep(0.2)
        request.transport.close()  # type: ignore[union-attr]  # 900 bytes never come
        return response

    app = web.Application()
    app.router.add_get("/stream", stream)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)  # GET and HEAD
    app.router.add_get("/missing", missing)
    app.router.add_get("/empty", empty)
    app.router.add_get("/broken", broken)
    return app


def test_responses_are_relayed_as_they_arrive_whole_and_unchanged(tmp_path: Path) -> None:
    port, api_port, target_port = free_ports(3)
    body = os.urandom(BIG)

    async def run() -> None:
        first_chunk_seen = asyncio.Event()
        runner = web.AppRunner(upstream(first_chunk_seen, body))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", target_port).start()
        proxy = start_proxy(port, api_port, f"http://127.0.0.1:{target_port}",
                            tmp_path / "proxy.log")
        try:
            timeout = aiohttp.ClientTimeout(total=120)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                # 1. A server-sent event reaches the client before the response ends.
                async with session.get(proxy.url + "/stream") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "text/event-stream"
                    assert response.headers["X-Hub-Test"] == "kept"
                    first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
                    assert first == b"data: first\n\n"
                    first_chunk_seen.set()
                    assert await response.content.read() == b"data: second\n\n"

                # 2. A response longer than tornado's default 20 s is not cut.
                began = time.monotonic()
                async with session.get(proxy.url + "/slow") as response:
                    events = (await response.read()).split(b"\n\n")
                assert response.status == 200
                assert time.monotonic() - began >= LONGER_THAN_TORNADO_DEFAULT
                assert events[-2:] == [b"data: ready", b""], events[-3:]

                # 3. 64 MiB arrive whole, without the proxy holding them.
                before = proxy.peak_rss()
                digest = hashlib.sha256()
                received = 0
                async with session.get(proxy.url + "/big") as response:
                    assert response.status == 200
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        digest.update(chunk)
                        received += len(chunk)
                assert received == BIG
                assert digest.digest() == hashlib.sha256(body).digest()
                grown = proxy.peak_rss() - before
                assert grown < BIG // 2, f"the proxy's peak memory grew by {grown} bytes"
                async with session.head(proxy.url + "/big") as response:
                    assert response.status == 200
                    assert await response.read() == b""

                # 4. Statuses, headers and empty bodies as the target sent them.
                async with session.get(proxy.url + "/missing") as response:
                    assert (response.status, await response.text()) == (404, "no such notebook")
                    assert response.headers["X-Hub-Test"] == "404"
                async with session.get(proxy.url + "/empty") as response:
                    assert (response.status, await response.read()) == (204, b"")

                # 5. A target that breaks off mid-body: the client sees a cut response.
                with pytest.raises(aiohttp.ClientPayloadError):
                    async with session.get(proxy.url + "/broken") as response:
                        await response.read()

                # 6. A route to a target that is not there: the proxy's 503.
                (dead_port,) = free_ports(1)
                async with session.post(
                        proxy.api + "/api/routes/dead",
                        data=json.dumps({"target": f"http://127.0.0.1:{dead_port}"}),
                        headers={"Authorization": f"token {TOKEN}"}) as response:
                    assert response.status == 201, await response.text()
                async with session.get(proxy.url + "/dead/x") as response:
                    assert response.status == 503
                # ... and the proxy still serves everyone else.
                async with session.get(proxy.url + "/missing") as response:
                    assert response.status == 404
        finally:
            proxy.proc.kill()
            proxy.proc.wait()
            await runner.cleanup()

    asyncio.run(run())
