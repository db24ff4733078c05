"""Acting as an account instead of as root (DESIGN.md, principle 6).

Root never writes or reads by path inside a tree a user can write: it runs the tool that does
(rsync, cp, mkdir, a hook) as the tree's owner, with the owner's uid, gid and supplementary
groups and no way back. These are the forms of that drop: a command prefix for
subprocesses that exec a program, a `preexec_fn` for those that run Python's own code, and
a remote shell for rsync's reading side that the account cannot trace or speak for
(`reading_command`, host/asreader.py).
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SETPRIV = "setpriv"  # util-linux


@dataclass(frozen=True)
class Identity:
    """Who a command runs as: a uid, its primary gid and its supplementary groups."""

    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def of(cls, account: str) -> Identity:
        """The account's identity as the system's group database has it now."""
        entry = pwd.getpwnam(account)
        return cls(entry.pw_uid, entry.pw_gid,
                   tuple(sorted(set(os.getgrouplist(account, entry.pw_gid)))))

    @classmethod
    def of_uid(cls, uid: int, gid: int) -> Identity:
        """The identity of a uid: its account's groups when it has one, else just `gid`."""
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return cls(uid, gid, (gid,))
        return cls(uid, gid, tuple(sorted(set(os.getgrouplist(entry.pw_name, gid)))))

    @property
    def is_root(self) -> bool:
        return self.uid == 0


def command_as(identity: Identity, argv: Sequence[str]) -> list[str]:
    """`argv` run as `identity` (setpriv: real and effective ids, groups, no new privileges).

    Root (uid 0) gets `argv` unchanged: there is nothing to drop.
    """
    if identity.is_root:
        return list(argv)
    groups = ",".join(str(g) for g in identity.groups) or str(identity.gid)
    return [SETPRIV, f"--reuid={identity.uid}", f"--regid={identity.gid}",
            f"--groups={groups}", "--no-new-privs", "--", *argv]


def become(identity: Identity) -> Callable[[], None]:
    """A `preexec_fn` that drops to `identity` for good (groups, then gid, then uid)."""

    def drop() -> None:
        if identity.is_root:
            return
        os.setgroups(list(identity.groups))
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)

    return drop


def reading_command(identity: Identity, rsync: str) -> list[str]:
    """A remote shell for `rsync -s -e ... --rsync-path=RSYNC host:TREE/ DEST/`: rsync's
    sending side runs with `identity`'s file access (uid, gid, groups), while its real uid
    is `nobody`, so the account cannot trace or speak for the process that reads its files
    (host/asreader.py says how)."""
    if identity.is_root:
        raise ValueError("reading as root needs no remote shell")
    groups = ",".join(str(g) for g in identity.groups) or str(identity.gid)
    return [sys.executable, "-I", "-S", str(Path(__file__).with_name("asreader.py")),
            str(identity.uid), str(identity.gid), groups, rsync]
