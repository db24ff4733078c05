"""Small JSON files of the hub's own that map each hub user to a value (invite code hashes,
GitHub ids): {"schema": 1, "users": {...}}, 0600, written whole and atomically.

Read without following a link, and only if the hub's account owns the file and nobody else
may write it: whoever could write one could let themselves in as another user.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from hubkeeper.base.files import write_atomic
from hubkeeper.base.whoami import effective_uid

SCHEMA = 1


def load_users(path: Path, limit: int) -> dict[str, Any]:
    """The file's `users`; {} when it does not exist. ValueError (or OSError) when it is not
    the hub's own, too large, or not this layout."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != effective_uid()
                or info.st_mode & 0o022):
            raise ValueError(f"{path} must be a regular file of the hub's account, not "
                             "writable by others")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    body = json.loads(data)
    if not isinstance(body, dict) or body.get("schema") != SCHEMA \
            or not isinstance(body.get("users"), dict):
        raise ValueError(f"{path}: not a hubkeeper users file of schema {SCHEMA}")
    return body["users"]


def save_users(path: Path, users: dict[str, Any]) -> None:
    body = {"schema": SCHEMA, "users": dict(sorted(users.items()))}
    write_atomic(path, (json.dumps(body, indent=1) + "\n").encode(), mode=0o600)
