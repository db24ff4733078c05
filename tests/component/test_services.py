"""Extra services at /services/<name>/ with a real hub, real proxy, the real login gate and a
real upstream web server (aiohttp, below), in personal mode with dummy login on loopback.

- ext: hub_login, groups [rusers], an upstream the test runs itself (an external service);
- app: hub_login for every user, the upstream as the gate's child (command);
- plain: hub_login false, the upstream run by the hub directly, reached on its own route.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from hubkeeper.config import load
from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import RunningHub, free_ports, write_config
from tests.support.procs import proxy_pids, wait_gone
from tests.support.simuser import SimUser

pytestmark = pytest.mark.component

# The upstream: answers any method on any path with what it received (path, the user header,
# the body's size and SHA-256, its own environment), echoes WebSocket messages, redirects to
# its own address on /redirect, streams 8 MiB on /big. argv: port [pid file].
UPSTREAM = r'''
import hashlib, os, sys
from aiohttp import web

port = int(sys.argv[1])
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as out:
        out.write(str(os.getpid()))

async def handle(request):
    if request.headers.get("Upgrade", "").lower() == "websocket":
        ws = web.WebSocketResponse(protocols=("echo",))
        await ws.prepare(request)
        user = request.headers.get("X-Hubkeeper-User")
        async for message in ws:
            if message.type == web.WSMsgType.TEXT:
                await ws.send_str(f"{user}: {message.data}")
            elif message.type == web.WSMsgType.BINARY:
                await ws.send_bytes(message.data[::-1])
        return ws
    if request.path == "/redirect":
        raise web.HTTPFound(f"http://127.0.0.1:{port}/landed?x=1")
    if request.path == "/big":
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(128):
            await response.write(bytes([i]) * 65536)
        await response.write_eof()
        return response
    digest, size = hashlib.sha256(), 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    response = web.json_response({
        "path": request.path_qs, "method": request.method,
        "user": request.headers.get("X-Hubkeeper-User"),
        "cookie": request.headers.get("Cookie", ""),
        "forwarded_prefix": request.headers.get("X-Forwarded-Prefix"),
        "size": size, "sha256": digest.hexdigest(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("JUPYTERHUB_", "HUBKEEPER_", "HKTV_"))},
    })
    response.set_cookie("upstream", "1", path="/")
    return response

app = web.Application(client_max_size=1 << 30)
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=port, print=None)
'''


@pytest.fixture
def svcdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"{TEST_ACCOUNT_PREFIX}-services-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def external_upstream(script: Path, port: int, pid_file: Path) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, str(script), str(port), str(pid_file)],
                            stdin=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while not pid_file.exists() or not _answers(port):
            assert proc.poll() is None, "the external upstream exited"
            assert time.monotonic() < end, "the external upstream did not start"
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(port: int) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def logged_in(hub: RunningHub, name: str) -> SimUser:
    user = SimUser(hub.url, name, "any password")  # dummy login
    await user.login()
    return user


async def visit(hub: RunningHub, name: str, path: str, **kwargs) -> tuple[int, str, str]:
    """Log in, GET `path` following every redirect; (status, final URL, body)."""
    async with SimUser(hub.url, name, "any password") as user:
        await user.login()
        async with user.session.get(hub.url + path, **kwargs) as response:
            return response.status, str(response.url), await response.text()


async def ws_echo(hub: RunningHub, name: str, path: str, *,
                  binary: bool) -> tuple[str | None, list[str | bytes]]:
    """(the subprotocol agreed, the echoes of a text and, if `binary`, a binary message)."""
    async with SimUser(hub.url, name, "any password") as user:
        await user.login()
        async with user.session.get(hub.url + path) as response:  # the OAuth round: cookie
            assert response.status == 200, await response.text()
        ws_url = URL(hub.url.replace("http", "ws", 1) + path)
        origin = str(URL(hub.url).origin())
        async with user.session.ws_connect(ws_url, origin=origin, protocols=("echo",)) as ws:
            await ws.send_str("hello")
            echoes: list[str | bytes] = [await asyncio.wait_for(ws.receive_str(), 30)]
            if binary:
                await ws.send_bytes(b"abc")
                echoes.append(await asyncio.wait_for(ws.receive_bytes(), 30))
            protocol = ws.protocol
        # A page on another site cannot open the service's WebSocket with the user's cookie.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await user.session.ws_connect(ws_url, origin="https://evil.example")
        assert refused.value.status == 403
        return protocol, echoes


@pytest.mark.parametrize("proxy", ["node", "python"])
def test_services_behind_the_gate_and_plain(svcdir: Path, hubs, proxy: str) -> None:
    script = svcdir / "upstream.py"
    script.write_text(UPSTREAM)
    ext_port, ext_gate, app_port, app_gate, plain_port = free_ports(5)
    app_pid_file = svcdir / "app.pid"
    plain_pid_file = svcdir / "plain.pid"
    config = write_config(svcdir, name=f"{TEST_ACCOUNT_PREFIX}-services", auth="dummy",
                          proxy=proxy, admins=("instructor",),
                          allowed=("student1", "student2"), extra=f"""\
services:
  - name: ext
    url: http://127.0.0.1:{ext_port}
    gate_port: {ext_gate}
    groups: [rusers]
  - name: app
    url: http://127.0.0.1:{app_port}/
    gate_port: {app_gate}
    command: [{sys.executable}, {script}, "{app_port}", {app_pid_file}]
    environment: {{HKTV_COLOUR: blue}}
  - name: plain
    hub_login: false
    url: http://127.0.0.1:{plain_port}
    command: [{sys.executable}, {script}, "{plain_port}", {plain_pid_file}]
""")
    # write_config writes users:; the group goes there.
    config.write_text(config.read_text().replace(
        "  allowed: [student1, student2]\n",
        "  allowed: [student1, student2]\n  groups: {rusers: [student1]}\n"))
    with external_upstream(script, ext_port, svcdir / "ext.pid"):
        hub = hubs.start(config)
        _check_anonymous(hub, ext_gate)
        _check_allowed_user(hub, proxy)
        _check_refusals(hub)
        _check_managed_child(hub, app_pid_file)
        _check_plain(hub)
        gates = _gate_pids(ext_gate, app_gate)
        assert len(gates) == 2, gates
        if proxy == "node":  # once is enough: this waits for the hub's next poll
            _check_restart_together(hub, app_pid_file, app_gate)
            gates = _gate_pids(ext_gate, app_gate)
        child = int(app_pid_file.read_text())
        plain = int(plain_pid_file.read_text())
        if proxy == "node":
            hub.stop(signal.SIGTERM)
            assert hub.proc.returncode == 0, hub.log()
            # The hub stopped the gates, and the gate its child.
            assert wait_gone([*gates, child, plain], deadline=15) == []
        else:
            # The hub killed outright (no clean-up of its own): the gates, the gate's command
            # and the plain service go with it all the same.
            proxies = proxy_pids(load(config).spec.proxy.api_port)
            os.kill(hub.hub_pid(), signal.SIGKILL)
            left = wait_gone([*gates, child, plain], deadline=15)
            hub.stop()
            for pid in [*proxies, *left]:  # the killed hub's proxy is left over: ours to stop
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            assert left == []
            assert wait_gone(proxies, deadline=15) == []
        # The external upstream is not the gate's: it still runs.
        assert _answers(ext_port)


def _check_anonymous(hub: RunningHub, gate_port: int) -> None:
    # The proxy keeps its connections to the gate open: refusals and redirects must not
    # close them (a closed one fails the proxy's next request with 503).
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", gate_port, timeout=30)
    for method, body, status in [("GET", None, 302), ("POST", b"x", 403), ("GET", None, 302)]:
        connection.request(method, "/services/ext/a", body=body)
        response = connection.getresponse()
        response.read()
        assert response.status == status
    connection.close()

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(hub.url + "services/ext/a", allow_redirects=False) as first:
                assert first.status == 302
                assert "/hub/api/oauth2/authorize?" in first.headers["Location"]
            async with session.get(hub.url + "services/ext/a") as response:
                assert [r.status for r in response.history] == [302] * len(response.history)
                assert response.url.path == "/hub/login"
                assert response.status == 200
                assert 'name="username"' in await response.text()
            # Not logged in: a POST is refused, not redirected.
            async with session.post(hub.url + "services/ext/a", data=b"x",
                                    allow_redirects=False) as post:
                assert post.status == 403
    asyncio.run(run())


def _check_allowed_user(hub: RunningHub, proxy: str) -> None:
    status, url, body = asyncio.run(visit(
        hub, "student1", "services/ext/some/path?x=1",
        headers={"X-Hubkeeper-User": "instructor"}))  # made up by the browser: replaced
    assert status == 200, body
    assert url.endswith("/services/ext/some/path?x=1")
    answer = json.loads(body)
    assert answer["path"] == "/some/path?x=1"  # the path below /services/ext/
    assert answer["user"] == "student1"
    assert answer["forwarded_prefix"] == "/services/ext"
    assert "service-ext" not in answer["cookie"]  # the gate's token stays with the gate

    async def stream_and_socket() -> None:
        async with SimUser(hub.url, "student1", "x") as user:
            await user.login()
            session = user.session
            async with session.get(hub.url + "services/ext/") as response:
                assert response.status == 200
            # The gate's login cookie is its own: only sent below /services/ext/.
            (login,) = [c for c in session.cookie_jar if c.key == "service-ext"]
            assert login["path"] == "/services/ext/"
            assert login["httponly"]
            upload = os.urandom(5 << 20)
            async with session.put(hub.url + "services/ext/upload", data=upload) as response:
                answer = await response.json()
                assert (answer["method"], answer["size"]) == ("PUT", len(upload))
                assert answer["sha256"] == hashlib.sha256(upload).hexdigest()
                assert response.cookies["upstream"]["path"] == "/services/ext/"
            # The Python proxy (tornado's standard methods) answers 405 to WebDAV's itself.
            for method in ("DELETE", "PROPFIND") if proxy == "node" else ("DELETE",):
                async with session.request(method, hub.url + "services/ext/any",
                                           headers={"Sec-Fetch-Site": "same-origin"}) as response:
                    assert (await response.json())["method"] == method
            async with session.post(hub.url + "services/ext/any", data=b"x", headers={
                    "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}) as response:
                assert response.status == 403
                assert "from another site" in await response.text()
            async with session.get(hub.url + "services/ext/big") as response:
                data = await response.read()
                assert len(data) == 128 * 65536
                assert data[-1] == 127
            async with session.get(hub.url + "services/ext/redirect",
                                   allow_redirects=False) as response:
                assert response.status == 302
                assert response.headers["Location"] == "/services/ext/landed?x=1"
    asyncio.run(stream_and_socket())
    if proxy == "node":
        assert asyncio.run(ws_echo(hub, "student1", "services/ext/ws", binary=True)) == (
            "echo", ["student1: hello", b"cba"])
    else:
        # The Python configurable-http-proxy (0.4) answers no subprotocol to the browser and
        # sends the browser's binary messages on as text: only text is checked through it.
        _, echoes = asyncio.run(ws_echo(hub, "student1", "services/ext/ws", binary=False))
        assert echoes == ["student1: hello"]


def _check_refusals(hub: RunningHub) -> None:
    # Not in rusers: the hub itself does not let the OAuth round finish.
    status, url, body = asyncio.run(visit(hub, "student2", "services/ext/"))
    assert status == 403, body
    assert "/hub/api/oauth2/authorize" in url
    # An admin holds access to every service in JupyterHub; the gate still checks groups.
    status, url, body = asyncio.run(visit(hub, "instructor", "services/ext/"))
    assert status == 403, body
    assert url.endswith("/services/ext/")
    assert body == ("403 Forbidden: instructor may not use ext: it is open to the members of "
                    "rusers\n")


def _check_managed_child(hub: RunningHub, pid_file: Path) -> None:
    status, _, body = asyncio.run(visit(hub, "student2", "services/app/hi"))
    assert status == 200, body
    answer = json.loads(body)
    assert (answer["path"], answer["user"]) == ("/hi", "student2")
    env = answer["env"]
    assert env["HKTV_COLOUR"] == "blue"  # hub.yaml's environment reaches the command
    assert env["HUBKEEPER_SERVICE_PREFIX"] == "/services/app/"
    assert not [key for key in env if key.startswith("JUPYTERHUB_")]  # no hub credentials
    assert _pid_alive(int(pid_file.read_text()))


def _check_restart_together(hub: RunningHub, pid_file: Path, gate_port: int) -> None:
    """The command dies: its gate stops too, and the hub starts both again."""
    child = int(pid_file.read_text())
    (gate,) = _gate_pids(gate_port)
    os.kill(child, signal.SIGKILL)
    assert wait_gone([gate], deadline=15) == []
    end = time.monotonic() + 120  # JupyterHub polls its services every 30 s or so
    while time.monotonic() < end:
        again = _gate_pids(gate_port)
        if again and again != [gate] and pid_file.exists() and \
                int(pid_file.read_text()) != child and _pid_alive(int(pid_file.read_text())):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the hub did not start the gate and its command again")
    status, _, body = asyncio.run(visit(hub, "student1", "services/app/again"))
    assert status == 200 and json.loads(body)["path"] == "/again", body


def _check_plain(hub: RunningHub) -> None:
    async def run() -> dict:
        async with aiohttp.ClientSession() as session, session.get(
                hub.url + "services/plain/hello", allow_redirects=False) as response:
            assert response.status == 200
            return await response.json()
    answer = asyncio.run(run())
    assert answer["path"] == "/services/plain/hello"  # JupyterHub's route: the whole path
    assert answer["user"] is None  # no gate in front of it
    assert answer["env"]["JUPYTERHUB_SERVICE_NAME"] == "plain"  # a managed JupyterHub service


def _gate_pids(*ports: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if b"hubkeeper.proc.gate" in cmdline and any(
                f"JUPYTERHUB_SERVICE_URL=http://127.0.0.1:{port}".encode() in environ
                for port in ports):
            found.append(int(name))
    return found


def test_bad_services_change_nothing(svcdir: Path) -> None:
    """A bad services section, or a gate_port another program holds: `up` says where, with
    exit 2, and nothing is created (no state directory, no process)."""
    import socket

    from tests.support.hubproc import HUBKEEPER

    config = write_config(svcdir, name=f"{TEST_ACCOUNT_PREFIX}-badsvc", extra="""\
services:
  - name: rstudio
    url: http://192.0.2.7:8787
    gate_port: 8788
""")
    lines = config.read_text().splitlines()
    url_line = lines.index("    url: http://192.0.2.7:8787") + 1
    result = subprocess.run([HUBKEEPER, "--config", str(config), "up"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert (f"{config}:{url_line}:10: services[0].url: 'http://192.0.2.7:8787' must be "
            "http://127.0.0.1:<port>") in result.stderr
    assert not (svcdir / "state").exists()

    (gate_port,) = free_ports(1)
    config.write_text(config.read_text().replace("http://192.0.2.7:8787",
                                                 "http://127.0.0.1:8787")
                      .replace("gate_port: 8788", f"gate_port: {gate_port}"))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", gate_port))
        squatter.listen()
        result = subprocess.run([HUBKEEPER, "--config", str(config), "up"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert (f"{config}:{url_line + 1}:16: services[0].gate_port: port {gate_port} on "
            "127.0.0.1 is in use by another program") in result.stderr
    assert not (svcdir / "state").exists()
