"""Which GitHub user id each hub user of a GitHub-login hub is: recorded at the first login.

GitHub logins can be renamed, and a freed login registered by someone else; the numeric id
stays with the person. <state>/github-ids.json (0600, written whole and atomically by the
hub) maps hub user -> GitHub user id; a login whose id differs from the recorded one is
refused. Removing a line (the person really changed their GitHub account) lets the next
login bind again.
"""

from __future__ import annotations

from pathlib import Path

from hubkeeper.base.userfile import load_users, save_users

FILE_NAME = "github-ids.json"


class Mismatch(Exception):
    """The login is bound to another GitHub id (the message is for the log)."""


def load(path: Path) -> dict[str, int]:
    return {str(name): int(value) for name, value in load_users(path, 16 << 20).items()}


def bind(path: str, user: str, github_id: int) -> bool:
    """Check `user` against its recorded id, recording it at the first login. Returns
    whether this login recorded it; raises Mismatch when another id holds the name."""
    file = Path(path)
    if not file.parent.is_dir():  # the hub's state dir; never made here
        raise Mismatch(f"{file.parent} does not exist, so no login can be bound")
    try:
        ids = load(file)
    except (OSError, ValueError) as exc:
        raise Mismatch(f"{path} cannot be read: {exc}") from None
    recorded = ids.get(user)
    if recorded == github_id:
        return False
    if recorded is not None:
        raise Mismatch(f"hub user {user} is bound to GitHub user id {recorded}, and this "
                       f"login as {user} is GitHub user id {github_id} (a renamed or "
                       f"re-registered login); remove the line from {path} only if the "
                       "person really changed GitHub accounts")
    ids[user] = github_id
    save_users(file, ids)
    return True
