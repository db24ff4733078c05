"""Who holds the other end of a local connection (host/peer.py), the client that checks it
before a token goes out (host/hubapi.py), and the gate's port rule (proc/gate_firewall.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from hubkeeper.host.hubapi import HubAPI, HubUnreachable
from hubkeeper.host.peer import ListenerRefused, check_listener, tcp_peer_uid, unix_peer_uid
from hubkeeper.proc.gate_firewall import FirewallError, PortGuard
from tests.conftest import require_root
from tests.support.hubproc import free_ports

NOBODY = 65534
# Listens on argv[1] (IPv4, or dual-stack [::] with argv[2] == "6"), prints what arrives.
LISTENER = r'''
import socket, sys
six = len(sys.argv) > 2
s = socket.socket(socket.AF_INET6 if six else socket.AF_INET)
if six:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::" if six else "127.0.0.1", int(sys.argv[1])))
s.listen()
print("ready", flush=True)
conn, _ = s.accept()
conn.settimeout(3)
try:
    print(repr(conn.recv(65536)), flush=True)
except OSError:
    print("nothing", flush=True)
'''


@pytest.fixture
def nobody_listens() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    require_root()
    procs: list[subprocess.Popen[str]] = []

    def start(port: int, *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                 "--clear-groups", "/usr/bin/python3", "-c", LISTENER,
                                 str(port), *extra], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("dual_stack", [False, True])
def test_a_stranger_on_the_port_gets_nothing(nobody_listens, dual_stack: bool) -> None:
    (port,) = free_ports(1)
    proc = nobody_listens(port, *(["6"] if dual_stack else []))
    with pytest.raises(ListenerRefused) as refused:
        HubAPI(f"http://127.0.0.1:{port}/", "SECRET-TOKEN").users()
    assert f"port {port} on 127.0.0.1 is held by account nobody (uid {NOBODY})" in str(
        refused.value)
    out, _ = proc.communicate(timeout=10)
    assert "SECRET" not in out and out.strip() in ("b''", "nothing")


def test_our_own_listener_and_a_unix_peer_pass() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            assert tcp_peer_uid(client) == os.geteuid()
            check_listener(client, "the test's server")
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert unix_peer_uid(left) == os.geteuid()
        check_listener(left, "the test's socket")


def test_nothing_listening_is_unreachable_not_refused() -> None:
    (port,) = free_ports(1)
    began = time.monotonic()
    with pytest.raises(HubUnreachable):
        HubAPI(f"http://127.0.0.1:{port}/", "x", timeout=5).users()
    assert time.monotonic() - began < 5


class Tables:
    """iptables as the gate calls it: rules per tool, -C/-I/-D."""

    def __init__(self, fail_insert: bool = False) -> None:
        self.rules: dict[str, list[list[str]]] = {"iptables": [], "ip6tables": []}
        self.fail_insert = fail_insert

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        tool, _wait, _seconds, op, chain, *rest = argv
        assert chain == "OUTPUT"
        rules = self.rules[tool]
        if op == "-C":
            code = 0 if rest in rules else 1
        elif op == "-I":
            if self.fail_insert:
                return subprocess.CompletedProcess(argv, 4, "", "Permission denied (you "
                                                   "must be root)")
            assert rest[0] == "1"
            rules.insert(0, rest[1:])
            code = 0
        else:
            code = 0 if rest in rules else 1
            if rest in rules:
                rules.remove(rest)
        return subprocess.CompletedProcess(argv, code, "", "")


def test_the_gate_rule_is_added_once_and_removed() -> None:
    guard = PortGuard.for_upstream("board", "http://127.0.0.1:8787", 0)
    assert guard.rule() == ["-o", "lo", "-p", "tcp", "--dport", "8787", "-m", "owner", "!",
                            "--uid-owner", "0", "-m", "comment", "--comment",
                            "hubkeeper gate board", "-j", "REJECT", "--reject-with",
                            "tcp-reset"]
    tables = Tables()
    guard.close(tables)
    guard.close(tables)  # a second gate (after a kill) finds it there
    for tool in guard.tools():
        assert tables.rules[tool] == [guard.rule()]
    guard.open(tables)
    assert tables.rules == {"iptables": [], "ip6tables": []}
    with pytest.raises(FirewallError, match="could not close port 8787.*must be root"):
        guard.close(Tables(fail_insert=True))


# --- the login gate's connections to its service (proc/gate_upstream.py) --------------------


def test_the_gate_passes_nothing_to_a_stranger_in_its_services_place(nobody_listens) -> None:
    """A hub user's uid (nobody, 65534, stands in: >= 1000) listens where the service should;
    neither a request nor a WebSocket handshake of the gate's reaches it."""
    import asyncio

    from tornado import httpclient
    from tornado.simple_httpclient import SimpleAsyncHTTPClient

    from hubkeeper.proc.gate_upstream import checked_client, checked_websocket

    async def fetch(port: int) -> None:
        client = SimpleAsyncHTTPClient(force_instance=True)
        checked_client(client, "board")
        try:
            await client.fetch(httpclient.HTTPRequest(
                f"http://127.0.0.1:{port}/", headers={"Cookie": "SECRET-COOKIE"}))
        finally:
            client.close()

    async def handshake(port: int) -> None:
        await checked_websocket(httpclient.HTTPRequest(
            f"ws://127.0.0.1:{port}/", headers={"Cookie": "SECRET-COOKIE"}), "board")

    for attempt in (fetch, handshake):
        (port,) = free_ports(1)
        proc = nobody_listens(port)
        with pytest.raises(ListenerRefused) as refused:
            asyncio.run(attempt(port))
        assert (f"port {port} on 127.0.0.1, where the service board should listen, is held "
                f"by account nobody (uid {NOBODY})") in str(refused.value)
        out, _ = proc.communicate(timeout=10)
        assert "SECRET" not in out and out.strip() in ("b''", "nothing"), out


def test_the_gate_reaches_a_service_of_root_or_a_system_account() -> None:
    from hubkeeper.proc.gate_upstream import may_serve

    assert may_serve(0) and may_serve(33) and may_serve(os.geteuid())  # root, www-data
    assert not may_serve(1000) and not may_serve(NOBODY) and not may_serve(None)
