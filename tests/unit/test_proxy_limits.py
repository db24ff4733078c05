"""The proxy's limits as each proxy's options, its own options parsed apart from
configurable-http-proxy's, and who listens on a port read from /proc/net/tcp."""

from __future__ import annotations

import socket
from pathlib import Path

from hubkeeper.config.model import HubSpec
from hubkeeper.host import peer, porthold
from hubkeeper.proc.proxy import Limits, parse_own
from hubkeeper.render.jupyterhub import proxy_limits

PYTHON = ("/venv/bin/python", "-m", "hubkeeper.proc.proxy")


def spec(**proxy) -> HubSpec:
    return HubSpec.model_validate({"version": 1, "hub": {"name": "t"}, "proxy": proxy})


def test_the_python_proxy_gets_both_limits_with_their_defaults() -> None:
    assert proxy_limits(spec(), PYTHON) == ["--idle-timeout=300", "--max-per-route=128"]
    assert proxy_limits(spec(idle_timeout=0, max_per_route=0), PYTHON) == [
        "--idle-timeout=0", "--max-per-route=0"]


def test_the_node_proxy_gets_the_idle_timeout_as_proxy_timeout_in_ms() -> None:
    node = ("/venv/node_modules/.bin/configurable-http-proxy",)
    assert proxy_limits(spec(kind="node", idle_timeout="90s"), node) == [
        "--proxy-timeout=90000"]
    assert proxy_limits(spec(kind="node", idle_timeout=0), node) == []


def test_another_proxy_command_gets_nothing() -> None:
    assert proxy_limits(spec(command="/opt/chp"), ("/opt/chp",)) == []


def test_own_options_are_taken_out_the_rest_left_for_the_proxy() -> None:
    limits, rest = parse_own(["--idle-timeout=12", "--ip", "127.0.0.1", "--max-per-route",
                              "5", "--port", "8000"])
    assert limits == Limits(12.0, 5)
    assert rest == ["--ip", "127.0.0.1", "--port", "8000"]


def test_listeners_are_read_with_their_owner(tmp_path: Path) -> None:
    net = tmp_path / "net"
    net.mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    (net / "tcp").write_text(header +
        "   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001 0 1\n"
        "   1: 0100007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0 0 2\n"
        "   2: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 0 3\n")
    (net / "tcp6").write_text(header +
        "   0: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000  1002 0 4\n")
    assert peer.listeners(8000, tmp_path) == [peer.Listener("127.0.0.1", 8000, 1001),
                                              peer.Listener("::1", 8000, 1002)]


def test_a_held_port_refuses_another_socket_without_reuseport() -> None:
    held = porthold.hold([("127.0.0.1", 0)])  # port 0: the kernel picks one
    try:
        assert held.sockets and not held.refused
        port = held.sockets[0].getsockname()[1]
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                other.bind(("127.0.0.1", port))
                raise AssertionError("bound beside the hold")
            except OSError:
                pass
    finally:
        held.close()
