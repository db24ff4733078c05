"""Check the shared data folders and group folders of hub.yaml against what apply makes.

The expected owner, mode and default ACL are host/dirs.py's own constants. A folder
hubkeeper made (in the journal) gets back, with --fix, what apply sets on its top directory
(never anything inside it); a folder it did not make is only reported.
"""

from __future__ import annotations

import os
import stat
import subprocess

from hubkeeper.base.errors import HubkeeperError, Problem
from hubkeeper.doctor.findings import Context, Finding, Fix, error_text, mode_text
from hubkeeper.doctor.permissions import group_name, owner_name
from hubkeeper.host.dirs import (
    GROUP_FOLDER_ACL,
    GROUP_FOLDER_MODE,
    SHARED_DIR_MODE,
    acl_entries,
    read_acl,
)
from hubkeeper.host.pathfacts import observe_paths
from hubkeeper.plan.data import data_problems, data_specs
from hubkeeper.state.journal import Journal

CHECK = "data"


def data_checks(ctx: Context) -> list[Finding]:
    shared, folders = data_specs(ctx.loaded)
    if not shared and not folders:
        return []
    if ctx.mode != "system":
        return [Finding(CHECK, "warning", "data", (
            "hub.yaml lists data.shared or data.group_folders, but this hub runs in personal "
            "mode, where they are not set up (they need Linux accounts: system mode, as "
            "root)."))]
    findings: list[Finding] = []
    journal = ctx.journal or Journal(ctx.paths.journal)
    for item in shared:
        refusal = data_problems([item], [], ctx.roster, journal, observe_paths([item.path]))
        findings += _folder(ctx, item.path, "the shared data folder", 0, SHARED_DIR_MODE,
                            None, refusal)
    prefix = ctx.roster.prefix
    for folder in folders:
        refusal = data_problems([], [folder], ctx.roster, journal,
                                observe_paths([folder.path]))
        group = ctx.host.groups.get(prefix + folder.group)
        if group is None:
            findings.append(Finding(CHECK, "problem", folder.path, (
                f"The group folder {folder.path} belongs to the Linux group "
                f"{prefix + folder.group}, which does not exist on this machine. "
                "`hubkeeper apply` creates the group (the journal check says whether it "
                "was there before).")))
            continue
        findings += _folder(ctx, folder.path, f"the group folder of {prefix + folder.group}",
                            group.gid, GROUP_FOLDER_MODE, acl_entries(GROUP_FOLDER_ACL),
                            refusal)
    return findings


def _folder(ctx: Context, path: str, what: str, gid: int, mode: int,
            acl: frozenset[str] | None, refusal: list[Problem]) -> list[Finding]:
    """`refusal`: why `apply` would refuse the folder (plan/data.py), for one it did not
    make."""
    ours = ctx.journal is not None and path in ctx.journal.dirs
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if ours:
            return [Finding(CHECK, "problem", path, (
                f"{path} ({what}) was made by hubkeeper (it is in the journal) and is gone: "
                "deleted, or its disk is not mounted. Mount it again, or run `hubkeeper "
                "apply` to make it anew (empty) and put its files back from a snapshot "
                "(`hubkeeper restore`, docs/lifecycle.md)."))]
        return [Finding(CHECK, "warning", path, (
            f"{path} ({what}) does not exist yet: `hubkeeper apply` creates it."))]
    if not ours:
        if refusal:
            return [Finding(CHECK, "problem", path, (
                f"`hubkeeper apply` refuses {path} ({what}): "
                + "; ".join(problem.message for problem in refusal) + ". hubkeeper did not "
                "make it (it is not in the journal), so doctor does not change it either."))]
        return [Finding(CHECK, "ok", path, (
            f"{path} ({what}) was not made by hubkeeper; it is root's and not writable by "
            "others, so `hubkeeper apply` uses it as it is."))]
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        return [Finding(CHECK, "problem", path, (
            f"{path} ({what}) is not a folder (a link or a file), so users do not see the "
            "data hub.yaml promises. hubkeeper does not replace it: move it away and run "
            "`hubkeeper apply`."))]
    wrong: list[str] = []
    owner = (info.st_uid, info.st_gid)
    if owner != (0, gid):
        wrong.append(f"owner {owner_name(info.st_uid)}:{group_name(info.st_gid)}, not "
                     f"root:{group_name(gid)}")
    have_mode = stat.S_IMODE(info.st_mode)
    if have_mode != mode:
        wrong.append(f"mode {mode_text(have_mode)}, not {mode:04o}")
    missing: frozenset[str] = frozenset()
    if acl is not None:
        try:
            missing = acl - read_acl(path)
        except HubkeeperError as exc:
            return [Finding(CHECK, "warning", path, error_text(exc))]
        if missing:
            wrong.append("default ACL entries missing: " + ", ".join(sorted(missing)))
    if not wrong:
        return [Finding(CHECK, "ok", path, (
            f"{path} ({what}) belongs to root:{group_name(gid)} and has mode {mode:04o}"
            + (" and its default ACLs." if acl is not None else "."))
        )]
    why = ("members' new files would not stay writable by the group, or others could see "
           "them" if acl is not None else "users could change data every user reads")
    fix = _fix(path, info, gid, mode, acl is not None and bool(missing))
    return [Finding(CHECK, "problem", path, (
        f"{path} ({what}) has {'; '.join(wrong)}, so {why}. `hubkeeper doctor --fix` sets "
        f"what `hubkeeper apply` made, on the folder itself (nothing inside it): "
        f"`{fix.command}`."), fix)]


def _fix(path: str, info: os.stat_result, gid: int, mode: int, acl: bool) -> Fix:
    steps = []
    if (info.st_uid, info.st_gid) != (0, gid):
        steps.append(f"chown root:{group_name(gid)} {path}")
    if stat.S_IMODE(info.st_mode) != mode:
        steps.append(f"chmod {mode:04o} {path}")
    if acl:
        steps.append(f"setfacl -m {GROUP_FOLDER_ACL} {path}")
    before = (f"{owner_name(info.st_uid)}:{group_name(info.st_gid)} "
              f"{mode_text(info.st_mode)}" + (", default ACL incomplete" if acl else ""))
    after = f"root:{group_name(gid)} {mode:04o}" + (", default ACL set" if acl else "")

    def run() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino, now.st_mode, now.st_uid, now.st_gid) != (
                    info.st_dev, info.st_ino, info.st_mode, info.st_uid, info.st_gid):
                raise HubkeeperError(f"{path} changed since it was checked; left as it is")
            os.fchown(fd, 0, gid)
            os.fchmod(fd, mode)  # after the chown, which may clear setgid
            if acl:
                _setfacl_by_fd(fd, path)
        finally:
            os.close(fd)

    return Fix("; ".join(steps), before, after, True, run)


def _setfacl_by_fd(fd: int, path: str) -> None:
    """setfacl on the folder already opened and checked, not on its path: a folder whose
    parent a user can write could be swapped for a link to elsewhere in between. setfacl
    gets the descriptor and names it /proc/self/fd/N, which is that inode."""
    result = subprocess.run(["setfacl", "-m", GROUP_FOLDER_ACL, "--", f"/proc/self/fd/{fd}"],
                            capture_output=True, text=True, timeout=60, pass_fds=(fd,))
    if result.returncode != 0:
        raise HubkeeperError(f"setfacl failed on {path}: {result.stderr.strip()}",
                             hint="install the 'acl' package, on a filesystem with POSIX "
                             "ACLs (ext4, xfs)")
