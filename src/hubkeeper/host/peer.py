"""Who holds the other end of a local connection: checked before a secret is sent over it.

Every account on the machine can listen on an unprivileged port the moment the hub (or its
proxy) is not holding it. A client that connects to "the hub's port" and sends its token
has then given it to whoever listened first. So a client of ours connects, asks the kernel
who owns the server side of *this very connection*, and sends nothing unless that is root
or the hub's own account:

- TCP: the kernel lists both ends of a local connection in /proc/net/tcp (or tcp6); the
  server's end is the established socket whose local address is our peer's and whose remote
  address is ours, and its `uid` column is the account that made the listening socket (an
  accepted socket inherits it). A connection to another machine has no such entry: refused.
- Unix socket: SO_PEERCRED names the peer's uid.

The check costs one read of a /proc file per new connection (keep-alive connections are
checked once), so it is cheap enough for the hub's own event loop.
"""

from __future__ import annotations

import pwd
import socket
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.whoami import effective_uid

_ESTABLISHED = "01"
_LISTEN = "0A"
_TABLES = {socket.AF_INET: "tcp", socket.AF_INET6: "tcp6"}


class ListenerRefused(HubkeeperError):
    """The other end of a connection belongs to an account we do not send secrets to."""


def hub_accounts() -> frozenset[int]:
    """Whom a secret of this hub may go to: root, and the account we run as (the hub's own
    in system mode; in personal mode the invoking account, which runs the hub)."""
    return frozenset({0, effective_uid()})


def _proc_address(family: int, address: tuple) -> str:
    """An address as /proc/net/tcp{,6} writes it: the raw words in host byte order, in hex,
    then the port in hex."""
    host, port = address[0], address[1]
    packed = socket.inet_pton(family, host)
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def _hex_address(text: str) -> str:
    """The inverse of `_proc_address` for the address part: a printable IP address."""
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def _rows(proc: Path, family: int) -> Iterator[list[str]]:
    """The fields of each socket in /proc/net/tcp or tcp6: sl, local, remote, state,
    tx:rx, tr:when, retrnsmt, uid, ...; nothing when the table cannot be read."""
    try:
        with open(proc / "net" / _TABLES[family], encoding="ascii") as table:
            next(table, None)  # the header
            for line in table:
                fields = line.split()
                if len(fields) > 7:
                    yield fields
    except OSError:
        return


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    uid: int


def listeners(port: int, proc: Path = Path("/proc")) -> list[Listener]:
    """Sockets listening on `port` (any address, both families), with their owner's uid."""
    found = []
    for family in _TABLES:
        for fields in _rows(proc, family):
            address, _, hex_port = fields[1].rpartition(":")
            if fields[3] == _LISTEN and int(hex_port, 16) == port:
                found.append(Listener(_hex_address(address), port, int(fields[7])))
    return found


def tcp_peer_uid(sock: socket.socket, proc_root: str = "") -> int | None:
    """The uid owning the server side of this connected TCP socket, or None when this
    machine does not hold it (a remote server, another network namespace)."""
    ours, theirs = sock.getsockname(), sock.getpeername()
    tables = [(sock.family, ours, theirs)]
    if sock.family == socket.AF_INET:
        # A dual-stack listener on [::] accepts IPv4 as IPv4-mapped IPv6, listed in tcp6.
        tables.append((socket.AF_INET6, ("::ffff:" + ours[0], ours[1]),
                       ("::ffff:" + theirs[0], theirs[1])))
    for family, local, remote in tables:
        server, client = _proc_address(family, remote), _proc_address(family, local)
        for fields in _rows(Path(proc_root + "/proc"), family):
            if fields[1] == server and fields[2] == client and fields[3] == _ESTABLISHED:
                return int(fields[7])
    return None


def unix_peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def peer_uid(sock: socket.socket) -> int | None:
    if sock.family == socket.AF_UNIX:
        return unix_peer_uid(sock)
    return tcp_peer_uid(sock)


def account_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def where(sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        return f"socket {sock.getpeername()}"
    host, port = sock.getpeername()[:2]
    return f"port {port} on {host}"


def check_listener(sock: socket.socket, what: str,
                   allowed: Collection[int] | None = None) -> None:
    """Raise ListenerRefused unless the server end of `sock` belongs to an allowed account
    (default: `hub_accounts()`). Call it after connect() and before the first byte is sent;
    `what` names the server we meant to reach ("the hub's API")."""
    allowed = hub_accounts() if allowed is None else allowed
    uid = peer_uid(sock)
    if uid is not None and uid in allowed:
        return
    place = where(sock)
    if uid is None:
        raise ListenerRefused(
            f"cannot tell who listens on {place}, where {what} should be: nothing was sent "
            "to it",
            hint="hubkeeper sends its tokens only to a server on this machine run by root "
                 "or the hub's account")
    raise ListenerRefused(
        f"{place} is held by account {account_name(uid)}, not by {what}: is someone else "
        "listening on the hub's port? Nothing was sent to it",
        hint=f"find the process with `ss -ltnp 'sport = :{sock.getpeername()[1]}'` (as "
             "root) and stop it, then start the hub again"
        if sock.family != socket.AF_UNIX else "stop that process, then start the hub again")
