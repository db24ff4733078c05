"""Making a home as root without giving its owner a moment to steer root elsewhere.

The home is made root's and 0700, filled from the skeleton through directory descriptors
(every name created relative to its parent's fd, O_EXCL/O_NOFOLLOW, owner set by fd), and
handed to its owner by one fchown of the top folder, last. Until that fchown no other account
can enter the home; after it root does nothing more inside. Nothing is walked by path and no
link is followed (DESIGN.md, principle 6).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.whoami import effective_uid

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def make_home(path: str | os.PathLike[str], uid: int, gid: int,
              skeleton: Path | None = None) -> None:
    """Create the home `path` (which must not exist), 0700, filled from `skeleton` (root's,
    e.g. /etc/skel), everything owned by uid:gid. Missing parents are made root's, 0755."""
    if not _make(Path(path), uid, gid, skeleton):
        raise HubkeeperError(f"{path} exists already; a home is never made over it",
                             hint="move it away, or make the account use it")


def make_private_dir(path: str | os.PathLike[str], uid: int, gid: int) -> bool:
    """A missing home made empty, 0700, owned by uid:gid (the spawner's first start).
    Returns False when something is there already (left as it is)."""
    return _make(Path(path), uid, gid, None)


def _make(home: Path, uid: int, gid: int, skeleton: Path | None) -> bool:
    home.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    parent = os.open(home.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.mkdir(home.name, 0o700, dir_fd=parent)
        except FileExistsError:
            return False
        top = _open_made_dir(parent, home.name, home)
    finally:
        os.close(parent)
    try:
        os.fchmod(top, 0o700)  # mkdir's mode went through the umask
        if skeleton is not None and skeleton.is_dir():
            source = os.open(skeleton, _DIR)
            try:
                _copy_tree(source, top, uid, gid, home)
            finally:
                os.close(source)
        os.fchown(top, uid, gid)  # the owner gets the home only now, complete
    finally:
        os.close(top)
    return True


def _open_made_dir(parent: int, name: str, where: Path) -> int:
    """The folder root just made at `name`: a root-owned directory, not a link put there."""
    fd = os.open(name, _DIR, dir_fd=parent)
    info = os.fstat(fd)
    if info.st_uid != 0 and info.st_uid != effective_uid():
        os.close(fd)
        raise HubkeeperError(f"{where} was replaced while it was being made",
                             hint="someone else can write to its parent folder; fix that")
    return fd


def _copy_tree(source: int, target: int, uid: int, gid: int, where: Path) -> None:
    """Everything in the folder `source` into the new folder `target` (both fds)."""
    with os.scandir(source) as listing:
        entries = sorted((e.name, e.stat(follow_symlinks=False)) for e in listing)
    for name, info in entries:
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(name, 0o700, dir_fd=target)
            child = _open_made_dir(target, name, where / name)
            inner = os.open(name, _DIR, dir_fd=source)
            try:
                _copy_tree(inner, child, uid, gid, where / name)
                os.fchmod(child, mode)
                os.fchown(child, uid, gid)
            finally:
                os.close(inner)
                os.close(child)
        elif stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(name, dir_fd=source), name, dir_fd=target)
            os.chown(name, uid, gid, dir_fd=target, follow_symlinks=False)
        elif stat.S_ISREG(info.st_mode):
            _copy_file(source, target, name, mode, uid, gid)
        # sockets, fifos and devices in a skeleton are not copied


def _copy_file(source: int, target: int, name: str, mode: int, uid: int, gid: int) -> None:
    src = os.open(name, _READ, dir_fd=source)
    try:
        os.set_blocking(src, True)
        dst = os.open(name, _NEW_FILE, 0o600, dir_fd=target)
        try:
            while chunk := os.read(src, 1 << 16):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view):]
            os.fchown(dst, uid, gid)
            os.fchmod(dst, mode)  # after fchown, which clears set-id bits
        finally:
            os.close(dst)
    finally:
        os.close(src)

