"""Invite codes for native sign-up: a roster name is signed up only with its code.

`hubkeeper apply` (and `up`) issues one random code per roster user who has none yet: the
code goes to the instructor in the credentials CSV (0600), only its SHA-256 goes to
<state>/secrets/invite-codes.json (0600), which the hub reads at each sign-up. A code is
used once: nativeauthenticator refuses a second sign-up of a name that exists.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path

from hubkeeper.host.files import write_atomic

SCHEMA = 1
FILE_NAME = "invite-codes.json"


class Refused(Exception):
    """Why a sign-up's code was not accepted (for the log)."""


def digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def new_code() -> str:
    """About 72 bits: not guessed in a term of tries at a login form."""
    return "-".join(secrets.token_hex(3) for _ in range(3))


def load(path: Path) -> dict[str, str]:
    """hub user -> SHA-256 of their code; {} when none was issued yet."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.geteuid() or info.st_mode & 0o022 or not stat.S_ISREG(
                info.st_mode):
            raise Refused(f"{path} must be a regular file of the hub's account, not "
                          "writable by others")
        body = json.loads(handle.read(4 * 1024 * 1024))
    if body.get("schema") != SCHEMA or not isinstance(body.get("users"), dict):
        raise Refused(f"{path}: unknown layout (schema {body.get('schema')!r})")
    return {str(name): str(value) for name, value in body["users"].items()}


def save(path: Path, codes: dict[str, str]) -> None:
    body = {"schema": SCHEMA, "users": dict(sorted(codes.items()))}
    write_atomic(path, (json.dumps(body, indent=1) + "\n").encode(), mode=0o600)


def check(path: str, user: str, code: str) -> None:
    """Raise Refused unless `code` is `user`'s invite code."""
    if not path:
        raise Refused("no invite codes file is configured (NativeAuthenticator."
                      "invite_codes_file)")
    try:
        codes = load(Path(path))
    except (OSError, ValueError) as exc:
        raise Refused(f"{path} cannot be read: {exc}") from None
    expected = codes.get(user)
    if expected is None:
        raise Refused(f"no invite code was issued for {user}; `hubkeeper apply` issues one")
    if not code:
        raise Refused("no invite code was given")
    if not hmac.compare_digest(digest(code), expected):
        raise Refused("the invite code given is not theirs")
