"""Which GitHub user id each hub user of a GitHub-login hub is: recorded at the first login.

GitHub logins can be renamed, and a freed login registered by someone else; the numeric id
stays with the person. <state>/github-ids.json (0600, written whole and atomically by the
hub) maps hub user -> GitHub user id; a login whose id differs from the recorded one is
refused. Removing a line (the person really changed their GitHub account) lets the next
login bind again.
"""

from __future__ import annotations

from pathlib import Path

from hubkeeper.base.userfile import load_users
from hubkeeper.state.subjects import Mismatch, bind_value

__all__ = ["FILE_NAME", "Mismatch", "bind", "load"]

FILE_NAME = "github-ids.json"


def load(path: Path) -> dict[str, int]:
    return {str(name): int(value) for name, value in load_users(path, 16 << 20).items()}


def bind(path: str, user: str, github_id: int) -> bool:
    """Check `user` against its recorded id, recording it at the first login. Returns
    whether this login recorded it; raises Mismatch when another id holds the name."""
    return bind_value(path, user, github_id, load, "GitHub user id")
