"""Which person each hub user is at their identity provider: bound at the first login.

A provider's name for a person (a GitHub login, a preferred_username, an e-mail) can change
hands; its subject (GitHub's numeric id, OIDC's iss + sub, an LDAP entry, LTI's iss + sub)
stays with the person. <state>/subjects.json (0600, written whole and atomically by the hub)
maps hub user -> subject; a login whose subject differs from the recorded one is refused, so
the hub user (files, account, admin role) never passes to whoever holds the name next.
Removing a line (the person really changed accounts at the provider) lets the next login
bind again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubkeeper.base.userfile import load_users, save_users

FILE_NAME = "subjects.json"


class Mismatch(Exception):
    """The hub user is bound to another subject (the message is for the log)."""


def load(path: Path) -> dict[str, str]:
    return {str(name): str(value) for name, value in load_users(path, 16 << 20).items()}


def bind(path: str, user: str, subject: str) -> bool:
    """Check `user` against its recorded subject, recording it at the first login. Returns
    whether this login recorded it; raises Mismatch when another subject holds the name."""
    return bind_value(path, user, subject, load, "subject")


def bind_value(path: str, user: str, value: Any, reader: Callable[[Path], dict[str, Any]],
               what: str) -> bool:
    """`bind` for any such file (also state/github_ids.py): `reader` reads it, `what` names
    the value in the refusal."""
    file = Path(path)
    if not file.parent.is_dir():  # the hub's state dir; never made here
        raise Mismatch(f"{file.parent} does not exist, so no login can be bound")
    try:
        recorded = reader(file)
    except (OSError, ValueError) as exc:
        raise Mismatch(f"{path} cannot be read: {exc}") from None
    if recorded.get(user) == value:
        return False
    if user in recorded:
        raise Mismatch(f"hub user {user} is bound to {what} {recorded[user]!r}, and this "
                       f"login as {user} is {what} {value!r} (a renamed or re-registered "
                       f"name at the provider); remove the line from {path} only if the "
                       "person really changed accounts there")
    recorded[user] = value
    save_users(file, recorded)
    return True
