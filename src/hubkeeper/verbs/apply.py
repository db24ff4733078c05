"""`hubkeeper apply`: make accounts, groups, passwords and the hub's users follow the roster."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.errors import HubkeeperError
from hubkeeper.host.statedir import ensure_layout
from hubkeeper.plan.users import Action
from hubkeeper.roster.converge import execute
from hubkeeper.verbs.plan import prepare_from


@dataclass(frozen=True)
class ApplyResult:
    config: str
    mode: str
    users: int
    actions: tuple[Action, ...]
    notes: tuple[str, ...]
    credentials: str | None  # the 0600 CSV of generated passwords, if any were made


class ApplyLock:
    """Only one apply at a time per state dir (flock: released if apply is killed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> ApplyLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise HubkeeperError("another `hubkeeper apply` is running on this hub",
                                 hint="wait for it to finish") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


def apply(config: Path, progress: Callable[[int, int, Action], None]) -> ApplyResult:
    first = prepare_from(config)  # validates everything before the first change
    ensure_layout(first.paths)
    with ApplyLock(first.paths.run / "apply.lock"):
        prepared = prepare_from(config)  # again, under the lock: nobody changed it since
        credentials = execute(prepared, progress)
    return ApplyResult(str(prepared.loaded.path), prepared.mode, len(prepared.roster.members),
                       prepared.plan.actions, prepared.plan.notes,
                       str(credentials) if credentials else None)
