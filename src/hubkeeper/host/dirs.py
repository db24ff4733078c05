"""Shared directories, group folders and links in homes (see plan/data.py for the rules)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.host.asuser import Identity, command_as

# What apply makes; `hubkeeper doctor` checks against the same values.
SHARED_DIR_MODE = 0o755  # root's: every user reads, none writes
GROUP_FOLDER_MODE = 0o2770  # root:<group>, setgid: files made inside stay the group's
# Members' new files stay group-writable, others get nothing, whatever the user's umask.
GROUP_FOLDER_ACL = "u::rwx,g::rwx,o::---,d:u::rwX,d:g::rwX,d:m::rwX,d:o::---"

_ACL_TAGS = {"u": "user", "g": "group", "m": "mask", "o": "other"}


def _open_made_dir(path: str) -> int:
    """`path` made (with its parents) and opened without following a link at its end:
    owner and mode are then set on that descriptor, never by a path someone could swap."""
    Path(path).mkdir(parents=True, exist_ok=True)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise HubkeeperError(f"{path} is not a folder of its own ({exc.strerror}); it was "
                             "left as it is", hint="look at what is there, remove it, and "
                             "apply again") from None


def make_shared_dir(path: str) -> None:
    fd = _open_made_dir(path)
    try:
        os.fchown(fd, 0, 0)
        os.fchmod(fd, SHARED_DIR_MODE)
    finally:
        os.close(fd)


def make_group_folder(path: str, gid: int) -> None:
    fd = _open_made_dir(path)
    try:
        os.fchown(fd, 0, gid)
        os.fchmod(fd, GROUP_FOLDER_MODE)
        set_group_folder_acl(path, fd)
    finally:
        os.close(fd)


def set_group_folder_acl(path: str, fd: int | None = None) -> None:
    """The group folder's ACL; given `fd`, on that open folder (/proc/self/fd/N in
    setfacl, which inherits it), whatever is at `path` by then."""
    where = f"/proc/self/fd/{fd}" if fd is not None else path
    result = subprocess.run(["setfacl", "-m", GROUP_FOLDER_ACL, "--", where],
                            capture_output=True, text=True, timeout=60,
                            pass_fds=(fd,) if fd is not None else ())
    if result.returncode != 0:
        raise HubkeeperError(
            f"setfacl failed on {path}: {result.stderr.strip()}",
            hint="install the 'acl' package, on a filesystem with POSIX ACLs (ext4, xfs)",
        )


def link_in_home(account: str, name: str, target: str) -> None:
    """The link ~/<name> -> target, made by the account itself (`ln` as the owner): root
    never creates or chowns a name in a home, where the owner could swap it in between."""
    entry = pwd.getpwnam(account)
    link = os.path.join(entry.pw_dir, name)
    if os.path.lexists(link):
        return  # appeared since the plan: a user's file is never replaced
    # -T: never "into" a folder that appeared meanwhile; ln fails if the name exists
    result = subprocess.run(command_as(Identity.of(account), ["ln", "-s", "-T", "--", target,
                                                              link]),
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and not os.path.lexists(link):
        raise HubkeeperError(f"cannot make the link {link} -> {target} as {account}: "
                             f"{result.stderr.strip()}",
                             hint="check that the home exists and belongs to its account")


def acl_entries(spec: str) -> frozenset[str]:
    """setfacl's short spelling on a directory as getfacl prints it: 'd:g::rwX' ->
    'default:group::rwx' (X is x on a directory)."""
    entries = set()
    for item in spec.split(","):
        default = item.startswith("d:")
        tag, qualifier, perms = item.removeprefix("d:").split(":")
        entry = f"{_ACL_TAGS.get(tag, tag)}:{qualifier}:{perms.replace('X', 'x')}"
        entries.add(("default:" if default else "") + entry)
    return frozenset(entries)


def parse_getfacl(text: str) -> frozenset[str]:
    """The entries of `getfacl --omit-header` output, without '#effective:' notes."""
    return frozenset(line.split("#")[0].strip() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def read_acl(path: str) -> frozenset[str]:
    """The ACL entries of `path` (access and default), as getfacl prints them."""
    result = subprocess.run(["getfacl", "--omit-header", "--absolute-names", "--", path],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise HubkeeperError(f"getfacl failed on {path}: {result.stderr.strip()}",
                             hint="install the 'acl' package")
    return parse_getfacl(result.stdout)
