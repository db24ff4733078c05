"""What `hubkeeper doctor` reports: findings, their fixes, the checks that make them.

A check is a function of the `Context` (everything observed once: hub.yaml, roster, journal,
accounts) that returns findings. A finding may carry a `Fix`: the command that repairs it,
with the value before and after. Only a fix marked `safe` is ever run (by `doctor --fix`);
the others are commands for the operator to run by hand, with the reason in the finding.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.host.accounts import HostUsers
from hubkeeper.roster import Roster
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import StatePaths

Status = Literal["ok", "warning", "problem"]


@dataclass(frozen=True)
class Fix:
    command: str  # what is done, as a shell command: "chmod 0700 /home/ann"
    before: str  # "0755"
    after: str  # "0700"
    safe: bool  # --fix runs it; otherwise it is shown for the operator to run by hand
    run: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.command} (was {self.before})"


@dataclass(frozen=True)
class Finding:
    check: str  # the name of the check that made it: "homes"
    status: Status
    subject: str  # what it is about: a path, an account, a URL
    explanation: str  # full sentences: what is wrong, why it matters, what to run
    fix: Fix | None = None


@dataclass(frozen=True)
class Context:
    """Everything the checks look at, observed once per run."""

    loaded: LoadedSpec
    roster: Roster
    mode: str  # system | personal
    paths: StatePaths
    journal: Journal | None  # None: it cannot be read (journal_error says why)
    journal_error: str | None
    host: HostUsers
    hub_uids: frozenset[int]  # who may own the state dir: root and the hub's own account
    free: Callable[[str], tuple[str, int]]  # (existing dir, bytes free); a seam for tests
    # The Class.trait names hubkeeper's rendered configuration sets (hub.extra_config's
    # overrides); asked only when there are extra files. None: nothing to compare with.
    hub_settings: Callable[[], frozenset[str]] | None = None


CheckFunction = Callable[[Context], Iterable[Finding]]


@dataclass(frozen=True)
class Check:
    name: str  # short, stable (JSON, tests): "homes"
    title: str  # the heading in the text output: "Users' homes"
    run: CheckFunction


def error_text(exc: HubkeeperError) -> str:
    """An error and its hint as sentences."""
    text = exc.message.rstrip(".") + "."
    if exc.hint:
        text += " " + exc.hint[0].upper() + exc.hint[1:].rstrip(".") + "."
    return text


def mode_text(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"


def chmod_fix(path: str, info: os.stat_result, wanted: int) -> Fix:
    """A safe chmod of `path` alone (never recursive, never through a symlink), only if it
    is still the same file with the same mode as when it was checked.

    By descriptor: an O_PATH descriptor of the path itself (O_NOFOLLOW: a link put in its
    place is opened as the link, and refused below), checked, then changed through
    /proc/self/fd, which names that inode whatever the path holds by then. O_PATH needs no
    read permission, so a 0000 file of our own is changed the same way."""
    before = stat.S_IMODE(info.st_mode)

    def run() -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise HubkeeperError(f"cannot open {path}: {exc.strerror}") from None
        try:
            now = os.fstat(fd)
            if ((now.st_dev, now.st_ino) != (info.st_dev, info.st_ino)
                    or stat.S_ISLNK(now.st_mode) or stat.S_IMODE(now.st_mode) != before):
                raise HubkeeperError(f"{path} changed since it was checked; left as it is")
            os.chmod(f"/proc/self/fd/{fd}", wanted)
        finally:
            os.close(fd)

    return Fix(f"chmod {wanted:04o} {path}", f"{before:04o}", f"{wanted:04o}", True, run)
