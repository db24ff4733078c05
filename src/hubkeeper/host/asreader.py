"""Run rsync's sending side with an account's file access, out of that account's reach.

    python -I -S asreader.py UID GID GROUPS RSYNC HOST RSYNC --server --sender ...

rsync runs this as its "remote shell" (`-e`) when root copies a tree an account can write
(`host/asuser.py`, `reading_command`). It ignores HOST, checks that what rsync asks for is
its own sending side, and execs RSYNC with:

- effective uid, gid and groups of the account: every file is opened with the account's
  permissions, so a symlink it plants leads only where it could read anyway;
- real uid `nobody` (65534), not the account's: the account cannot trace this process
  or open its descriptors or environment (the kernel allows that only when all its uids
  match), so it cannot forge what the process tells root's receiving side. It can signal
  it (exec copies the effective uid, the account's, to the saved uid): that ends or stalls
  the copy of its own home only, which the snapshot reports as incomplete;
- no capability left (no uid is 0), no way back, an empty environment.

Standalone on purpose: it starts with `python -I -S` and imports nothing else, so that a
snapshot of many homes does not pay for a full interpreter start per home.
"""

import os
import sys

NOBODY = 65534


def main(argv: list[str]) -> None:
    # argv: this script, UID, GID, GROUPS, RSYNC, then what rsync gives its remote shell:
    # the host name (ignored) and the command, which must be RSYNC's sending side.
    if len(argv) < 9 or argv[7:9] != ["--server", "--sender"] or argv[6] != argv[4]:
        sys.stderr.write("asreader: not an rsync sender command\n")
        raise SystemExit(2)
    uid, gid = int(argv[1]), int(argv[2])
    groups = [int(g) for g in argv[3].split(",") if g]
    if uid == 0:
        sys.stderr.write("asreader: refusing to read as root\n")
        raise SystemExit(2)
    os.setgroups(groups or [gid])
    os.setresgid(gid, gid, gid)
    os.setresuid(NOBODY, uid, NOBODY)  # capabilities go: no uid is 0 any more
    os.execve(argv[4], argv[6:], {"LC_ALL": "C", "PATH": "/usr/bin:/bin"})


if __name__ == "__main__":
    main(sys.argv)
