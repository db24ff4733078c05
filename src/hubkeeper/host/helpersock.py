"""The root helper's Unix socket: where it is, who may reach it, and its wire format.

The web service (proc/webpage.py, an unprivileged account) asks the root helper
(lifecycle/webhelper.py, run by `hubkeeper up`) for a user's files over one Unix socket:

- `<state>/web/helper.sock` (StatePaths.helper_socket); the folder `<state>/web` is root's,
  group the web account's, mode 0750, the socket 0660 root:<that group>: no other account
  can even reach it, and the helper still checks SO_PEERCRED on every connection (root or
  the web account only).
- one request per connection: a JSON object on one line (at most MAX_REQUEST bytes), then
  one JSON line back: `{"ok": true, ...}` or `{"ok": false, "error": "..."}`; when the
  answer carries bytes (a file, a zip) its `size` is given and exactly that many follow.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_REQUEST = 1088 * 1024  # one request line: a name, a path, or a roster of up to 1 MiB
MAX_ANSWER = 4 * 1024 * 1024  # one answer line: a listing of a folder
CHUNK = 64 * 1024
TIMEOUT = 600.0  # seconds: a restore of a large folder, a zip of a whole home


class HelperError(Exception):
    """The helper refused a request or could not be reached; `str()` is for the user."""


def read_line(sock: socket.socket, limit: int) -> tuple[bytes, bytes]:
    """One line (without its newline) of at most `limit` bytes, and what came after it in
    the same reads; ValueError otherwise."""
    data = bytearray()
    while b"\n" not in data:
        chunk = sock.recv(CHUNK)
        if not chunk:
            raise ValueError("the connection ended before a whole line")
        data += chunk
        if len(data) > limit and b"\n" not in data[:limit + 1]:
            raise ValueError(f"a line longer than {limit} bytes")
    line, _, rest = bytes(data).partition(b"\n")
    if len(line) > limit:
        raise ValueError(f"a line longer than {limit} bytes")
    return line, rest


def send_json(sock: socket.socket, value: dict[str, Any]) -> None:
    sock.sendall(json.dumps(value, separators=(",", ":")).encode() + b"\n")


class Answer:
    """The helper's answer: its JSON line, and for a file or zip its bytes in `chunks()`."""

    def __init__(self, sock: socket.socket, header: dict[str, Any], rest: bytes) -> None:
        self.sock, self.header, self.rest = sock, header, rest

    @property
    def size(self) -> int:
        return int(self.header.get("size", 0))

    def chunks(self) -> Iterator[bytes]:
        left = self.size
        if self.rest:
            first, self.rest = self.rest[:left], b""
            left -= len(first)
            yield first
        while left > 0:
            chunk = self.sock.recv(min(CHUNK, left))
            if not chunk:
                raise HelperError("the helper ended the download early")
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.sock.close()


def ask(path: Path, request: dict[str, Any]) -> Answer:
    """Send `request` to the helper at `path`; the answer, or HelperError with its reason.
    The caller closes the answer (after reading its bytes)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect(os.fspath(path))
        send_json(sock, request)
        line, rest = read_line(sock, MAX_ANSWER)
        header = json.loads(line)
    except (OSError, ValueError) as exc:
        sock.close()
        raise HelperError(f"the helper could not be asked: {exc}") from None
    if not isinstance(header, dict) or not header.get("ok"):
        sock.close()
        error = header.get("error") if isinstance(header, dict) else None
        raise HelperError(str(error or "the helper refused the request"))
    return Answer(sock, header, rest)


def ask_json(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """A request whose answer is its JSON line only."""
    answer = ask(path, request)
    answer.close()
    return answer.header
