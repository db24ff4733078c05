"""What the attacks on homes share: a system-mode hub made by `hubkeeper apply` (real
accounts, real homes, no hub started: its database is made by JupyterHub's own ORM), root's
decoys, and a fingerprint of a decoy that must not change."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from jupyterhub import orm

from tests.attacks.conftest import Student, Students
from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import hk, pam_hub, record_accounts

# A student's loop against a walk by path of a folder that becomes theirs while root walks
# it: as soon as one of the watched paths exists and is theirs, keep exchanging each folder
# d000.. in it with a link to the decoy (renameat2 RENAME_EXCHANGE, atomic), so that a walk
# that checks "not a link" and then uses the path sometimes goes into the decoy.
# argv: decoy, ready-file, count, watched paths...
EXCHANGER = """
import ctypes, os, sys, time
decoy, ready, count, watched = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
me = os.getuid()
os.makedirs("links", exist_ok=True)  # made beforehand: no time lost once the race is on
names = [f"d{i:03}" for i in range(count)]
for name in names:
    if not os.path.lexists(f"links/{name}"):
        os.symlink(decoy, f"links/{name}")
open(ready, "w").close()
end = time.time() + 120
found = None
while found is None and time.time() < end:
    for path in watched:
        try:
            if os.lstat(path).st_uid == me:
                found = path
        except OSError:
            pass
pairs = [(f"{found}/{n}".encode(), os.path.abspath(f"links/{n}").encode()) for n in names]
while time.time() < end:
    for one, other in pairs:
        libc.renameat2(AT_FDCWD, one, AT_FDCWD, other, RENAME_EXCHANGE)
"""


def wait_for(path: Path, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def course(workdir: Path, students: Students, *suffixes: str,
           more: str = "") -> tuple[Path, list[Student]]:
    """hub.yaml with these roster users (and `more` YAML), applied: their accounts and homes
    exist (0700), and the hub's database exists, so `hubkeeper snapshot` and `archive` run
    without a hub."""
    names = [f"{TEST_ACCOUNT_PREFIX}{suffix}" for suffix in suffixes]
    (workdir / "class.csv").write_text("username\n" + "".join(f"{n}\n" for n in names))
    config = pam_hub(workdir, "attacked", "users:\n  roster: {csv: class.csv}\n"
                     f"snapshots: {{targets: [{workdir / 'backup'}]}}\n" + more)
    applied = hk(config, "apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    orm.new_session_factory(f"sqlite:///{workdir / 'state' / 'jupyterhub.sqlite'}")
    made = [Student(name) for name in names]
    students.made += made  # their processes are killed at teardown
    return config, made


def decoy(workdir: Path, name: str = "decoy") -> Path:
    """A root-owned folder (0755) with root's files and a subfolder: what an attacker
    points links at."""
    top = workdir / name
    (top / "sub").mkdir(parents=True)
    for path in (top / "passwd", top / "sub" / "shadow"):
        path.write_text(f"root's {path.name}\n")
        os.chmod(path, 0o644)
    os.chmod(top / "sub", 0o755)
    os.chmod(top, 0o755)
    return top


def fingerprint(top: Path) -> dict[str, tuple]:
    """Owner, group, mode and contents of everything under `top` (itself included)."""
    seen = {}
    for path in [top, *sorted(top.rglob("*"))]:
        info = os.lstat(path)
        body = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
        seen[str(path.relative_to(top))] = (info.st_uid, info.st_gid,
                                            stat.S_IMODE(info.st_mode), body)
    return seen



def journal_of(workdir: Path, *students: Student) -> str:
    """A journal recording `students` as hubkeeper's accounts (as `adopt` records them), for
    a spawner made in the test: in system mode a hub user runs only as a journaled account."""
    return str(record_accounts(workdir / "journal.json", *(s.name for s in students)))
