"""Keep the proxy's ports for the hub's account while the proxy is down.

JupyterHub restarts a proxy that died (`ConfigurableHTTPProxy.check_running`, every 5 s):
it starts a new process, which binds the public port again. In between, the port is free,
and any local account could bind it and receive every login that nginx passes on, PAM
passwords included (and, on the API port, the proxy's token that the hub sends when it
restores the routes).

`hubkeeper up` therefore binds both ports itself before it starts the hub and keeps them
until it exits: sockets that are bound but never listen, with SO_REUSEPORT and without
SO_REUSEADDR. Linux lets another socket bind the same address and port only if both have
SO_REUSEPORT *and the same effective uid*; so the proxy, started by the hub as the same
account, binds beside the reservation (hubkeeper.proc.proxy listens with SO_REUSEPORT),
while every other account gets EADDRINUSE, with or without SO_REUSEADDR or SO_REUSEPORT. A
socket that does not listen receives no connections: they all go to the proxy.

The address of the other family (::1 beside 127.0.0.1, [::] beside 0.0.0.0) is held too,
so that nobody can answer the same port over IPv6 either.

The Node proxy cannot listen with SO_REUSEPORT (Node 20), so it cannot bind beside a
reservation: with `proxy.kind: node` nothing is held, and `peer.listeners()` lets the
supervisor say loudly who holds the port instead (`host/peer.py` reads them).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

# The same port on the other family, for each address the proxy may listen on.
MIRRORS = {"127.0.0.1": "::1", "::1": "127.0.0.1", "0.0.0.0": "::", "::": "0.0.0.0"}


def _reserve(ip: str, port: int) -> socket.socket | None:
    """A bound, non-listening SO_REUSEPORT socket on ip:port; None if this host has no
    such address (e.g. no IPv6). Raises OSError EADDRINUSE if someone else has it."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        if err.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
            return None
        raise
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:  # as tornado binds it: IPv6 only
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((ip, port))
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRNOTAVAIL:
            return None
        raise
    return sock


@dataclass
class PortHold:
    sockets: list[socket.socket]
    refused: list[str]  # ip:port we could not reserve (someone had it)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets = []


def hold(addresses: list[tuple[str, int]]) -> PortHold:
    """Reserve each (ip, port) and its other-family mirror for this process's uid."""
    held = PortHold([], [])
    for ip, port in addresses:
        for address in (ip, MIRRORS.get(ip)):
            if address is None:
                continue
            try:
                sock = _reserve(address, port)
            except OSError:
                held.refused.append(f"{address}:{port}")
                continue
            if sock is not None:
                held.sockets.append(sock)
    return held
