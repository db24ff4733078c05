"""nativeauthenticator's password of one hub user, in the hub database (`users_info`).

Only while no hub runs on the state dir (the caller holds its HubLock): the running hub keeps
its own database session, and its admin page takes only a browser's cookie, not a token. The
hash is bcrypt's, exactly as nativeauthenticator's `change_password` writes it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import bcrypt

from hubkeeper.base.errors import HubkeeperError


def set_native_password(database: Path, user: str, password: str) -> bool:
    """Replace `user`'s sign-up password; False when `user` never signed up."""
    if not database.exists():
        return False
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
    connection = sqlite3.connect(database, timeout=30)
    try:
        with connection:  # one transaction: committed whole, or rolled back
            try:
                cursor = connection.execute(
                    "UPDATE users_info SET password = ? WHERE username = ?", (hashed, user))
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # native never ran on this hub
                    return False
                raise
            if cursor.rowcount > 1:
                raise HubkeeperError(f"{database}: {cursor.rowcount} sign-ups named {user!r}; "
                                     "nothing was changed")
            return cursor.rowcount == 1
    except sqlite3.Error as exc:
        raise HubkeeperError(f"cannot change {user}'s password in {database}: {exc}") from None
    finally:
        connection.close()
