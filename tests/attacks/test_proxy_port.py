"""The proxy's ports cannot be taken over between a proxy crash and its restart (issue 17,
finding 3).

A real hub as root; a real student account tries, a thousand times a second, to bind the
proxy's public port and its API port (127.0.0.1 and ::1; plain, SO_REUSEADDR, SO_REUSEPORT,
both), and listens on every one it gets. The proxy is killed (as a
crash would); JupyterHub starts a new one within 5 s. With the Python proxy the student never
binds either port and the new proxy serves the login page. With the Node proxy, whose port
hubkeeper cannot hold, the student does bind it, and the hub's log says so loudly.

(Without the hold, the student binds ::1 on the public port even while the proxy runs, and
127.0.0.1 as soon as it dies; the restarted proxy then cannot listen at all.)
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.attacks.test_proxy_hostile import NODE_PROXY, wait_for_line
from tests.conftest import require
from tests.support.hubproc import write_config

pytestmark = [pytest.mark.attack, pytest.mark.component]

ATTEMPT_SECONDS = 25.0
SQUATTER = """
import socket, sys, time
ports, seconds = [int(p) for p in sys.argv[1].split(",")], float(sys.argv[2])
end = time.monotonic() + seconds
options = [(), (socket.SO_REUSEADDR,), (socket.SO_REUSEPORT,),
           (socket.SO_REUSEADDR, socket.SO_REUSEPORT)]
held, tries = {}, 0
print("trying", flush=True)
while time.monotonic() < end:
    for ip in ("127.0.0.1", "::1"):
        for port in ports:
            if (ip, port) in held:
                continue
            for opts in options:
                family = socket.AF_INET6 if ":" in ip else socket.AF_INET
                sock = socket.socket(family)
                for opt in opts:
                    sock.setsockopt(socket.SOL_SOCKET, opt, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                tries += 1
                try:
                    sock.bind((ip, port))
                    sock.listen()
                except OSError:
                    sock.close()
                    continue
                held[(ip, port)] = sock  # kept, listening, until the end
                print("BOUND", ip, port, opts, round(time.monotonic() - end + seconds, 2),
                      flush=True)
                break
    time.sleep(0.001)
print("tries", tries, flush=True)
"""


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "hub/login", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def kill_proxy_and_squat(hub, students, workdir: Path) -> tuple[str, int]:
    """Start the squatter, kill the proxy; return the squatter's log once it is done and the
    pid of the proxy that runs then (0 if none answers)."""
    spec = hub.config.read_text()
    port = int(hub.url.rsplit(":", 1)[1].strip("/"))
    api_port = int(spec.split("api_port: ")[-1].split()[0])
    eve = students.make("eve")
    log = workdir / "squatter.log"
    squatter = eve.start(SQUATTER, f"{port},{api_port}", str(ATTEMPT_SECONDS), log=log)
    wait_for_line(log, "trying", 30)
    old = hub.proxy_pid()
    os.kill(old, signal.SIGKILL)  # as a crash would
    squatter.wait(timeout=ATTEMPT_SECONDS + 30)
    new = 0
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            pid = hub.proxy_pid()
        except (OSError, ValueError):
            pid = 0
        if pid and pid != old and answers(hub.url):
            new = pid
            break
        time.sleep(0.5)
    return log.read_text(errors="replace"), new


@pytest.mark.timeout(300)
def test_nobody_takes_the_python_proxys_ports_while_it_restarts(workdir, students,
                                                                  hubs) -> None:
    hub = hubs.start(write_config(workdir, proxy="python"))
    squatted, new_proxy = kill_proxy_and_squat(hub, students, workdir)
    assert "BOUND" not in squatted, squatted
    assert "tries" in squatted, squatted
    assert new_proxy, f"no new proxy answered after the crash:\n{hub.log()[-3000:]}"


@pytest.mark.timeout(300)
def test_with_the_node_proxy_a_squatter_is_named_loudly(workdir, students, hubs) -> None:
    """The limit of proxy.kind node: the port is not held, but the operator is told."""
    require(NODE_PROXY.exists(), "the npm configurable-http-proxy (./run setup)")
    hub = hubs.start(write_config(workdir, proxy="node"))
    squatted, _ = kill_proxy_and_squat(hub, students, workdir)
    assert "BOUND" in squatted, squatted  # the limit this test documents
    uid = students.made[0].uid
    assert f"SECURITY: uid {uid} listens on the hub's public port" in \
        (hub.state / "logs" / "hub.log").read_text(errors="replace"), squatted
