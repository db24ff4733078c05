"""Invite codes for native sign-up: a roster name is signed up only with its code.

`hubkeeper apply` (and `up`) issues one random code per roster user who has none yet: the
code goes to the instructor in the credentials CSV (0600), only its SHA-256 goes to
<state>/secrets/invite-codes.json (0600), which the hub reads at each sign-up. A code is
used once: nativeauthenticator refuses a second sign-up of a name that exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from hubkeeper.base.userfile import load_users, save_users

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
    return {str(name): str(value) for name, value in load_users(path, 4 << 20).items()}


def save(path: Path, codes: dict[str, str]) -> None:
    save_users(path, codes)


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
