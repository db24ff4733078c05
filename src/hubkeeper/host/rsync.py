"""One tree into a snapshot with rsync, read by whoever may read it.

The writing side (rsync's receiver) is root: the snapshot keeps owners, modes, ACLs and hard
links to `latest` (`--link-dest`). The reading side depends on the tree:

- a home is read with its owner's uid, gid and groups (`host/asuser.reading_command`): a
  link the owner plants, or a folder swapped for one mid-copy, leads only to what the
  owner could read anyway, and the owner cannot trace or speak for that process;
- a group folder (root:<group>, 2770) is read as `nobody` with the folder's group: its
  members share it, so that is what the group can read;
- the hub's own staged files and the shared data folders (root's, 0755, which no user
  writes) are read by root.

What one home's owner can do to its copy (files vanishing or unreadable mid-copy, a read
that stalls) makes that home `Incomplete`, a warning on its line, never a failed target.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.host.asuser import Identity, reading_command

# setpriv: each rsync gets SIGKILL when the thread that started it ends, so a snapshot killed
# with kill -9 leaves no rsync writing into a partial snapshot the next run removes.
RSYNC = ("setpriv", "--pdeathsig", "KILL", "--", "rsync", "-a", "-A", "--numeric-ids")
# A read that moves nothing for this long (a stalled filesystem mounted in a home) ends that
# tree's copy with exit 30; the snapshot goes on without the rest of it.
STALL_SECONDS = 300
NOBODY = 65534
# rsync's exit codes that mean "this tree was not copied whole", not "the target is broken".
_INCOMPLETE = {23: "some files could not be read or copied",
               24: "files vanished while it was copied",
               30: f"reading it stalled for {STALL_SECONDS} s"}
# The reading side ended part-way (5: at start-up, 10 or 12: mid-stream, as the receiver
# saw the pipe break first or the protocol end first, 19/20: on a signal). A home's owner
# may signal the process reading their home (exec copies its effective uid, theirs, to its
# saved uid), though never trace it or write to it: that is their home's loss alone.
_READER_ENDED = (5, 10, 12, 19, 20)
# The receiver's own words for a full disk end the line with the errno; a file name in a
# message is always quoted, so it cannot end a line this way.
_FULL = re.compile(r"No space left on device \(28\)$")
_MAX_DETAILS = 3


@dataclass(frozen=True)
class Source:
    key: str  # its place in the snapshot: hub, homes/<user>, data/<path>
    path: Path
    reader: Identity | None = None  # None: root reads it


@dataclass(frozen=True)
class Incomplete:
    """A tree that is in the snapshot but not whole, and why (rsync's own lines)."""

    source: str
    why: str
    details: tuple[str, ...] = ()


class TargetFailed(Exception):
    pass


def group_reader(gid: int) -> Identity:
    """Who reads a group folder: no one's uid, the folder's group."""
    return Identity(NOBODY, gid, (gid,))


def _printable(line: str) -> str:
    """A line of rsync's output fit for a terminal (names in it are users' choice)."""
    return "".join(c if c.isprintable() else "?" for c in line)[:300]


def copy_tree(source: Source, dest: Path, link_dest: Path | None) -> Incomplete | None:
    """rsync `source` into `dest`; None when whole. Raises TargetFailed when the target is
    the problem (full, unwritable) or when root's own copy fails."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    args = [*RSYNC]
    if link_dest is not None and link_dest.is_dir():
        args.append(f"--link-dest={link_dest}/")
    if source.reader is None:
        args += [f"{source.path}/", f"{dest}/"]
    else:
        rsync = shutil.which("rsync") or "rsync"
        # -s: the path travels inside rsync's protocol, not through a command line;
        # the host name before ':' is ignored by the remote shell. -W: whole files, as a
        # local copy does (a remote shell would otherwise turn on the delta algorithm).
        words = reading_command(source.reader, rsync)
        if any("'" in word for word in words):  # rsync splits -e on blanks, honours quotes
            raise TargetFailed(f"cannot quote {words} for rsync's -e")
        rsh = " ".join(f"'{word}'" for word in words)
        args += ["-s", "-W", f"--timeout={STALL_SECONDS}", f"--rsync-path={rsync}", "-e", rsh,
                 f"owner:{source.path}/", f"{dest}/"]
    done = subprocess.run(args, capture_output=True, text=True, errors="replace", cwd="/",
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    if done.returncode == 0:
        return None
    lines = [_printable(line) for line in done.stderr.splitlines() if line.strip()]
    if any(_FULL.search(line) for line in lines):
        raise TargetFailed(f"the target filesystem is full while copying {source.path}")
    why = _INCOMPLETE.get(done.returncode) if source.key != "hub" else None
    if source.reader is not None and done.returncode in _READER_ENDED:
        why = f"its reading side ended part-way (rsync exit {done.returncode})"
    if why is not None:
        details = [line for line in lines if not line.startswith("rsync error:")]
        return Incomplete(source.key, why, tuple(details[:_MAX_DETAILS]))
    raise TargetFailed(f"rsync failed copying {source.path} (exit {done.returncode}): "
                       + "; ".join(lines[-3:]))
