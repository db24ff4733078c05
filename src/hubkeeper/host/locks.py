"""Exclusive locks that name their holder: the hub's, apply's and snapshot's.

flock(2) on a file holding the holder's pid. The kernel releases the lock when the holder
dies, so a kill -9 never leaves a stale lock behind; the pid is only there to be named.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from hubkeeper.errors import HubkeeperError


class PidLock:
    def __init__(self, path: Path, busy: str, hint: str) -> None:
        self.path = path
        self.busy = busy  # what a refusal says: "another snapshot of this hub is running"
        self.hint = hint
        self.fd: int | None = None

    def refusal(self) -> HubkeeperError:
        holder = self.holder()
        return HubkeeperError(self.busy + (f" (pid {holder})" if holder else ""),
                              hint=self.hint)

    def check_free(self) -> None:
        """Raise if someone holds the lock; creates nothing (used before any change)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise self.refusal() from None
        finally:
            os.close(fd)

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise self.refusal() from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
