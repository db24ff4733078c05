"""No secret to whoever listens first (issue 17, finding 3).

A student listens on a port of the hub while its owner is away and records every byte it
receives; hubkeeper (as root) and JupyterHub must not send it a token. And a student who
sends the login gate's user header straight to the service's port is refused by the kernel.
The positive path: a real hub answers `hubkeeper status` with the read-only token, and that
token can stop no server and delete no user.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubkeeper.config import load
from hubkeeper.state.statedir import StatePaths, ensure_layout, ensure_secrets
from tests.conftest import TEST_ACCOUNT_PREFIX, require_root
from tests.support.hubproc import (
    HUBKEEPER,
    RunningHub,
    free_ports,
    start_hub,
    write_config,
)
from tests.support.simuser import SimUser

pytestmark = pytest.mark.attack

SECRETS = ("api-token", "service-token", "status-token", "proxy-token", "cookie-secret")

# The student's recorder: from the moment `go` exists (argv 3; "-": at once), bind each port
# in argv 1 as soon as it is free, answer every connection like a hub would (200, "[]") and
# append whatever arrives to the log (argv 2).
RECORDER = r'''
import os, socket, sys, threading, time
ports = [int(p) for p in sys.argv[1].split(",")]
log = open(sys.argv[2], "ab", buffering=0)
go = sys.argv[3]
lock = threading.Lock()

def note(data):
    with lock:
        log.write(data)

def answer(conn, port):
    note(b"CONNECTION %d\n" % port)
    conn.settimeout(3)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    note(data + b"\nEND\n")
    try:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 2\r\nConnection: close\r\n\r\n[]")
    except OSError:
        pass
    conn.close()

def serve(port):
    while go != "-" and not os.path.exists(go):
        time.sleep(0.005)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    while True:
        try:
            s.bind(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.005)
    s.listen(64)
    note(b"LISTENING %d\n" % port)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=answer, args=(conn, port), daemon=True).start()

for port in ports:
    threading.Thread(target=serve, args=(port,), daemon=True).start()
while True:
    time.sleep(1)
'''


def recorder(student, ports: list[int], log: Path, go: str = "-"):
    log.touch()
    os.chown(log, student.uid, -1)
    return student.start(RECORDER, ",".join(map(str, ports)), str(log), go)


def wait_for(predicate, what: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, f"{what} within {deadline} s"
        time.sleep(0.05)


def heard(log: Path) -> bytes:
    return log.read_bytes() if log.exists() else b""


def assert_no_secret(log: Path, state: Path) -> None:
    data = heard(log)
    assert b"Authorization" not in data and b"authorization" not in data, data[:2000]
    for name in SECRETS:
        secret = (state / "secrets" / name).read_bytes().strip()
        assert secret not in data, f"{name} reached the student"


def hubkeeper(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_status_apply_and_prewarm_send_no_token_to_a_student_on_the_hubs_port(
        workdir: Path, students) -> None:
    """The hub is stopped; a student holds its API port. Each verb connects, sees whose
    listener it is, and stops with a message naming the account; no token leaves."""
    student = students.make("lis")
    config = write_config(workdir, name=f"{TEST_ACCOUNT_PREFIX}-listen", auth="dummy")
    spec = load(config).spec
    paths = StatePaths(workdir / "state")
    ensure_layout(paths)
    ensure_secrets(paths)  # as a hub that ran once and is now down
    log = workdir / "heard.log"
    recorder(student, [spec.hub.api_port], log)
    wait_for(lambda: b"LISTENING" in heard(log), "the student listens")

    for argv in (("status",), ("apply",), ("prewarm", "--user", "student1")):
        before = heard(log).count(b"CONNECTION")
        done = hubkeeper(config, *argv)
        # The verb did reach the student's socket (the attack was live) and sent nothing.
        wait_for(lambda before=before: heard(log).count(b"CONNECTION") > before,
                 f"{argv[0]} connecting to the student's port")
        time.sleep(0.2)  # whatever was sent is in the log
        assert_no_secret(log, workdir / "state")
        assert done.returncode != 0, (argv, done.stdout, done.stderr)
        message = done.stdout + done.stderr
        assert f"held by account {student.name}" in message, (argv, message)
        assert "is someone else listening on the hub's port?" in message, message


def _jupyterhub_child(up: subprocess.Popen) -> bool:
    """Whether `hubkeeper up` has started its jupyterhub (after its port preflight)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((line.split()[1] for line in status.splitlines()
                     if line.startswith("PPid:")), "")
        if ppid == str(up.pid) and b"jupyterhub" in cmdline:
            return True
    return False


def test_the_hub_sends_no_proxy_token_to_a_student_holding_the_proxys_ports(
        workdir: Path, students) -> None:
    """Right after `up`'s port check, as its jupyterhub starts, a student takes the proxy's
    API port (and its public port, so that JupyterHub believes the proxy is up). JupyterHub
    asks the proxy for its routes: the hub's proxy class sees whose listener that is and
    refuses; the hub does not start and says why."""
    student = students.make("prx")
    # The Node proxy: hubkeeper's own holds these ports for the hub's account while `up`
    # runs (test_proxy_port.py), so a student could not even bind them; with Node the
    # ports are open and the hub's checked proxy class alone keeps the token.
    config = write_config(workdir, name=f"{TEST_ACCOUNT_PREFIX}-listen", auth="dummy",
                          proxy="node")
    spec = load(config).spec
    log = workdir / "heard.log"
    go = workdir / "go"
    recorder(student, [spec.proxy.api_port, spec.hub.port], log, str(go))
    output = workdir / "up.log"
    with open(output, "ab") as sink:
        up = subprocess.Popen([HUBKEEPER, "--config", str(config), "up"], stdout=sink,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_for(lambda: _jupyterhub_child(up) or up.poll() is not None,
                 "jupyterhub started by `hubkeeper up`", deadline=60)
        go.touch()
        wait_for(lambda: heard(log).count(b"LISTENING") == 2, "the student holds both ports")
        with contextlib.suppress(subprocess.TimeoutExpired):  # judged below
            up.wait(timeout=90)
        text = output.read_text(errors="replace") + _hub_log(workdir)
        assert heard(log).count(b"CONNECTION %d" % spec.proxy.api_port) >= 1, text[-3000:]
        assert_no_secret(log, workdir / "state")
        assert f"held by account {student.name}" in text, text[-3000:]
        assert up.poll() not in (None, 0), "the hub must not run with a stranger's proxy"
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGTERM)
            try:
                up.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
    assert_no_secret(log, workdir / "state")


def test_a_proxy_restarted_onto_a_students_ports_gets_no_token(workdir: Path, students,
                                                               hubs) -> None:
    """The proxy of a running hub dies (a crash: root kills it here); a student takes its
    API and public ports at once. JupyterHub notices, starts a proxy (which cannot bind)
    and restores its routes through the API port: the check refuses the student's
    listener, and the hub's log names the account."""
    student = students.make("rst")
    # The Node proxy: hubkeeper's own holds these ports for the hub's account while `up`
    # runs (test_proxy_port.py), so a student could not even bind them; with Node the
    # ports are open and the hub's checked proxy class alone keeps the token.
    config = write_config(workdir, name=f"{TEST_ACCOUNT_PREFIX}-listen", auth="dummy",
                          proxy="node")
    spec = load(config).spec
    hub = hubs.start(config)
    log = workdir / "heard.log"
    go = workdir / "go"
    recorder(student, [spec.proxy.api_port, spec.hub.port], log, str(go))
    go.touch()
    os.kill(hub.proxy_pid(), signal.SIGKILL)
    wait_for(lambda: heard(log).count(b"LISTENING") == 2, "the student holds both ports")
    refused = f"held by account {student.name}"
    wait_for(lambda: refused in _hub_log(workdir) or b"/api/routes" in heard(log),
             "the hub turning to the student's proxy API port", deadline=60)
    time.sleep(0.5)  # whatever was sent is in the log
    assert_no_secret(log, workdir / "state")
    assert refused in _hub_log(workdir)


def _hub_log(workdir: Path) -> str:
    path = workdir / "state" / "logs" / "hub.log"
    return path.read_text(errors="replace") if path.exists() else ""


# --- a real hub: the login gate's service, and the read-only status token ----------------

UPSTREAM = r'''
import http.server, json, sys

class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"user": self.headers.get("X-Hubkeeper-User")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
'''


@pytest.fixture(scope="module")
def gated_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHub, int]]:
    """A real hub (personal mode as root, dummy login) with a service behind the login gate
    whose upstream trusts X-Hubkeeper-User."""
    require_root()
    directory = tmp_path_factory.mktemp(f"{TEST_ACCOUNT_PREFIX}-gate")
    os.chmod(directory, 0o755)
    script = directory / "upstream.py"
    script.write_text(UPSTREAM)
    service_port, gate_port = free_ports(2)
    config = write_config(directory, name=f"{TEST_ACCOUNT_PREFIX}-gate", auth="dummy",
                          extra=f"""\
services:
  - name: board
    url: http://127.0.0.1:{service_port}
    gate_port: {gate_port}
    command: [{sys.executable}, {script}, "{service_port}"]
""")
    hub = start_hub(config)
    try:
        wait_for(lambda: _answers_as_root(service_port), "the service behind the gate", 60)
        yield hub, service_port
    finally:
        hub.stop()


def _answers_as_root(port: int) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
            return True
    except OSError:
        return False


FORGE = r'''
import http.client, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
    c.request("GET", "/", headers={"X-Hubkeeper-User": "instructor"})
    print("ANSWERED", c.getresponse().read().decode())
except OSError as exc:
    print("REFUSED", type(exc).__name__)
'''


def test_a_student_cannot_send_the_gates_user_header_to_the_service(gated_hub,
                                                                    students) -> None:
    hub, service_port = gated_hub
    student = students.make("hdr")
    done = student.python(FORGE, str(service_port))
    assert done.stdout.startswith("REFUSED"), done.stdout
    # The gate itself still passes a logged-in user, named by the gate, not by the browser.

    async def through_the_gate() -> dict:
        async with SimUser(hub.url, "student1", "any password") as user:
            await user.login()
            async with user.session.get(hub.url + "services/board/",
                                        headers={"X-Hubkeeper-User": "instructor"}) as answer:
                assert answer.status == 200, await answer.text()
                return json.loads(await answer.text())

    assert asyncio.run(through_the_gate()) == {"user": "student1"}


def test_status_reads_with_a_token_that_can_change_nothing(gated_hub) -> None:
    hub, _ = gated_hub
    done = hubkeeper(hub.config, "status", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["reachable"] is True
    assert {"instructor", "student1", "student2"} <= {u["name"] for u in body["users"]}

    async def with_status_token() -> dict[str, int]:
        import aiohttp
        spec = load(hub.config).spec
        api = f"http://127.0.0.1:{spec.hub.api_port}/hub/api"
        headers = {"Authorization": f"token {hub.secret('status-token')}"}
        async with SimUser(hub.url, "student1", "any password") as user:  # the user exists
            await user.login()
        codes = {}
        async with aiohttp.ClientSession(headers=headers) as session:
            for method, path in (("GET", "/users"), ("DELETE", "/users/student1/server"),
                                 ("DELETE", "/users/student1"), ("POST", "/users/student2"),
                                 ("POST", "/users/student1/server")):
                async with session.request(method, api + path) as answer:
                    codes[f"{method} {path}"] = answer.status
        return codes

    assert asyncio.run(with_status_token()) == {
        "GET /users": 200, "DELETE /users/student1/server": 403,
        "DELETE /users/student1": 403, "POST /users/student2": 403,
        "POST /users/student1/server": 403}


def test_the_gate_passes_nothing_to_a_student_listening_in_a_stopped_services_place(
        workdir: Path, students, hubs) -> None:
    """A gated service is down (an external one: nothing runs it); a student listens on its
    port. A logged-in user's visit through the gate reaches the student's socket, which
    receives nothing: not the user's cookies, not the user header; the user is told the
    service does not answer."""
    student = students.make("svc")
    service_port, gate_port = free_ports(2)
    config = write_config(workdir, name=f"{TEST_ACCOUNT_PREFIX}-down", auth="dummy",
                          extra=f"services:\n  - name: board\n"
                                f"    url: http://127.0.0.1:{service_port}\n"
                                f"    gate_port: {gate_port}\n")
    hub = hubs.start(config)
    log = workdir / "heard.log"
    recorder(student, [service_port], log)
    wait_for(lambda: b"LISTENING" in heard(log), "the student listens")

    async def visit() -> tuple[int, str]:
        async with SimUser(hub.url, "student1", "any password") as user:
            await user.login()
            async with user.session.get(hub.url + "services/board/") as answer:
                return answer.status, await answer.text()

    status, text = asyncio.run(visit())
    # The gate did connect (the attack was live), checked whose listener it was, sent nothing.
    wait_for(lambda: b"CONNECTION" in heard(log), "the gate connecting to the student")
    time.sleep(0.5)  # whatever was sent is in the log
    data = heard(log)
    assert b"GET" not in data and b"Cookie" not in data and b"X-Hubkeeper-User" not in data, \
        data[:2000]
    assert status == 502 and "board does not answer" in text, (status, text[-500:])
    hub.wait_logged(f"where the service board should listen, is held by account "
                    f"{student.name}")
