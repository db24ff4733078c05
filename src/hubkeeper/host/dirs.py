"""Shared directories, group folders and links in homes (see plan/data.py for the rules)."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from hubkeeper.errors import HubkeeperError

# Members' new files stay group-writable, others get nothing, whatever the user's umask.
GROUP_FOLDER_ACL = "u::rwx,g::rwx,o::---,d:u::rwX,d:g::rwX,d:m::rwX,d:o::---"


def make_shared_dir(path: str) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, 0)
    os.chmod(path, 0o755)


def make_group_folder(path: str, gid: int) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, gid)
    os.chmod(path, 0o2770)
    result = subprocess.run(["setfacl", "-m", GROUP_FOLDER_ACL, "--", path],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise HubkeeperError(
            f"setfacl failed on {path}: {result.stderr.strip()}",
            hint="install the 'acl' package, on a filesystem with POSIX ACLs (ext4, xfs)",
        )


def link_in_home(account: str, name: str, target: str) -> None:
    entry = pwd.getpwnam(account)
    link = os.path.join(entry.pw_dir, name)
    if os.path.lexists(link):
        return  # appeared since the plan: a user's file is never replaced
    os.symlink(target, link)
    os.lchown(link, entry.pw_uid, entry.pw_gid)
