"""Checks of owners and modes: the state directory with its secrets, and users' homes.

What they expect is what hubkeeper itself makes: the state dir and its run/ and logs/ are
writable only by their owner; secrets/, credentials/ and the hook logs are 0700 with 0600
files (state/statedir.py, ops/converge.py, hub/hooks.py); homes are 0700 and their user's
(host/shadow.py, hub/spawner_base.py). A mode is repaired only on what hubkeeper made, and only on
the path itself; an owner is never changed (the finding says why and what to run).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import renew
from hubkeeper.config.types import config_relative
from hubkeeper.doctor.findings import (
    Context,
    Finding,
    Fix,
    chmod_fix,
    error_text,
    mode_text,
)
from hubkeeper.state.statedir import check_state_version

PRIVATE = 0o077  # bits that let others in: secrets, credentials, hook logs, homes, run/,
#                  the lock files and the database
OTHERS_WRITE = 0o022  # bits that let others write: envs/, users/
PASS_THROUGH = 0o066  # the state dir: others may pass through (x) to envs/, nothing more
LOGS = 0o027  # logs/: the hub account's group may read, nobody else may enter


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def _lstat(path: Path | str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def inspect(ctx: Context, check: str, path: Path, what: str, forbidden: int,
            directory: bool) -> list[Finding]:
    """One file or folder hubkeeper made in its state dir: a plain file or folder (not a
    link), owned by root or the hub's account, without the `forbidden` mode bits."""
    info = _lstat(path)
    subject = str(path)
    if info is None:
        return []
    kind_ok = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    if stat.S_ISLNK(info.st_mode) or not kind_ok:
        kind = "symbolic link" if stat.S_ISLNK(info.st_mode) else "something else"
        wanted = "folder" if directory else "plain file"
        return [Finding(check, "problem", subject, (
            f"{path} ({what}) is a {kind}, not a {wanted} as hubkeeper writes it. hubkeeper "
            f"does not follow or replace it: look at it (`ls -l {path}`) and put the "
            f"{wanted} back, e.g. from a snapshot."))]
    findings = []
    owners = " or ".join(owner_name(uid) for uid in sorted(ctx.hub_uids))
    if info.st_uid not in ctx.hub_uids:
        findings.append(Finding(check, "problem", subject, (
            f"{path} ({what}) belongs to {owner_name(info.st_uid)}, so that account can "
            f"change it; it should belong to {owners}, the account that runs the hub. "
            "hubkeeper does not change owners: check who changed it, then run "
            f"`chown {owner_name(min(ctx.hub_uids))} {path}`."),
            Fix(f"chown {owner_name(min(ctx.hub_uids))} {path}", owner_name(info.st_uid),
                owner_name(min(ctx.hub_uids)), safe=False)))
    mode = stat.S_IMODE(info.st_mode)
    if mode & forbidden:
        wanted = mode & ~forbidden
        if mode & forbidden & 0o022:
            harm = f"other users on this machine can change {what}"
        else:
            harm = f"other users on this machine can read {what}"
        findings.append(Finding(check, "problem", subject, (
            f"{path} has mode {mode_text(mode)}, so {harm}; hubkeeper makes it "
            f"{wanted:04o}. `hubkeeper doctor --fix` runs `chmod {wanted:04o} {path}` "
            "(this path only)."), chmod_fix(str(path), info, wanted)))
    if not findings:
        findings.append(Finding(check, "ok", subject, (
            f"{what[0].upper()}{what[1:]} ({path}) belongs to {owner_name(info.st_uid)} and "
            f"has mode {mode_text(mode)}.")))
    return findings


def _private_folder(ctx: Context, check: str, folder: Path, what: str,
                    files: str) -> list[Finding]:
    """A 0700 folder of 0600 files (secrets, credentials, hook logs)."""
    findings = inspect(ctx, check, folder, what, PRIVATE, directory=True)
    if not folder.is_dir() or folder.is_symlink():
        return findings
    try:
        entries = sorted(folder.iterdir())
    except PermissionError:
        return findings + [Finding(check, "warning", str(folder), (
            f"{folder} cannot be listed by this account; run `hubkeeper doctor` as the "
            "account that runs the hub (root in system mode)."))]
    for entry in entries:
        findings += inspect(ctx, check, entry, files, PRIVATE, directory=False)
    return findings


def lock_checks(ctx: Context, check: str, path: Path) -> list[Finding]:
    """A lock file: 0600, or a student could open it and hold a shared flock that refuses
    root's apply, snapshot, build or hub start. An older hubkeeper's 0644 file is not
    chmodded but replaced (a new inode): a student may hold the old one open already."""
    findings = inspect(ctx, check, path, "a lock file", PRIVATE, directory=False)
    info = _lstat(path)
    if info is None or not stat.S_ISREG(info.st_mode) or not stat.S_IMODE(info.st_mode) & PRIVATE:
        return findings
    mode = mode_text(info.st_mode)

    def replace() -> None:
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise HubkeeperError(f"{path} changed since it was checked; left as it is")
        if not renew(path):
            raise HubkeeperError(f"{path} is in use by hubkeeper; run `hubkeeper doctor "
                                 "--fix` again once that is done")

    fix = Fix(f"replace {path} by a new 0600 file", mode, "0600", True, replace)
    return [Finding(check, "problem", str(path), (
        f"{path} has mode {mode}, so every account on this machine can open it and hold a "
        "shared lock on it, which refuses root's apply, snapshot, environment build or hub "
        "start. A chmod would not close a descriptor a student already holds: `hubkeeper "
        "doctor --fix` replaces the file by a new 0600 one (when no hubkeeper holds it)."),
        fix) if finding.fix and finding.fix.run else finding for finding in findings]


def state_checks(ctx: Context) -> list[Finding]:
    """The state directory: marked as hubkeeper's, its layout's owners and modes."""
    paths = ctx.paths
    check = "state"
    if _lstat(paths.root) is None:
        return [Finding(check, "warning", str(paths.root), (
            f"There is no state directory at {paths.root} yet: this hub was never set up "
            "on this machine. `hubkeeper up` (or `hubkeeper apply`) creates it."))]
    findings = []
    try:
        check_state_version(paths)
    except HubkeeperError as exc:
        findings.append(Finding(check, "problem", str(paths.root), error_text(exc)))
    findings += inspect(ctx, check, paths.root, "the hub's state directory", PASS_THROUGH,
                        directory=True)
    for folder, what, forbidden in (
            (paths.run, "the hub's lock and pid files", PRIVATE),
            (paths.logs, "the hub's logs", LOGS),
            (paths.envs, "the environments every server runs", OTHERS_WRITE),
            (paths.users, "the folders of personal-mode users", OTHERS_WRITE),
            # the web account's group enters it; nobody else may reach the helper's socket
            (paths.web, "the folder of the web pages' root helper socket", LOGS)):
        findings += inspect(ctx, check, folder, what, forbidden, directory=True)
    for lock in paths.lock_files():
        findings += lock_checks(ctx, check, lock)
    for database in paths.database_files:
        findings += inspect(ctx, check, database, "the hub database (server ports, admins, "
                            "native login's password hashes)", PRIVATE, directory=False)
    findings += inspect(ctx, check, paths.journal, "the journal of what hubkeeper created",
                        PRIVATE, directory=False)
    findings += _private_folder(ctx, check, paths.secrets, "the secrets folder",
                                "a secret (tokens and passwords the hub runs with)")
    findings += _private_folder(ctx, check, paths.root / "credentials",
                                "the folder of generated passwords",
                                "a list of generated passwords")
    hooks = ctx.loaded.spec.hooks
    log_dir = (config_relative(ctx.loaded.directory, hooks.log_dir) if hooks.log_dir
               else paths.hook_logs)
    findings += _private_folder(ctx, check, log_dir, "the start-up hooks' log folder",
                                "a user's start-up hook output")
    return findings


def home_checks(ctx: Context) -> list[Finding]:
    """Every roster user's home: theirs and private (0700, as hubkeeper makes it)."""
    if ctx.mode != "system":
        return _personal_homes(ctx)
    findings: list[Finding] = []
    journal = ctx.journal
    for member in ctx.roster.members:
        account = ctx.host.accounts.get(member.account)
        if account is None:
            continue  # no account: the journal check says why and what creates it
        ours = journal is not None and member.account in journal.accounts
        findings += check_home(ctx, member.account, account.home, account.uid, account.gid, ours)
    return findings


def check_home(ctx: Context, name: str, home: str, uid: int, gid: int,
          ours: bool) -> list[Finding]:
    check = "homes"
    subject = home
    info = _lstat(home)
    if info is None:
        maker = ("`hubkeeper apply` creates it (0700, from /etc/skel)" if ours
                 else "the first server start creates it (0700)")
        return [Finding(check, "warning", subject,
                        f"{name} has no home at {home} yet: {maker}.")]
    if stat.S_ISLNK(info.st_mode):
        return [Finding(check, "warning", subject, (
            f"{name}'s home {home} is a symbolic link to {os.readlink(home)}; doctor does "
            f"not follow it. Check the folder it points to by hand (`ls -ld {home}/`): it "
            f"should belong to {name} and have mode 0700."))]
    if not stat.S_ISDIR(info.st_mode):
        return [Finding(check, "problem", subject, (
            f"{name}'s home {home} is not a folder, so their server cannot start. Move it "
            "away; the first server start (or `hubkeeper apply`) makes the home."))]
    findings = []
    user_group = f"{name}:{group_name(gid)}"
    if info.st_uid != uid:
        findings.append(Finding(check, "problem", subject, (
            f"{name}'s home {home} belongs to {owner_name(info.st_uid)}, not to {name} "
            f"(uid {uid}), so {name} may not be able to use it. hubkeeper never changes the "
            "owner of a home: the files in it may be someone else's (a home restored from "
            "elsewhere, or an account re-created with a new uid), and a chown would hand "
            f"them to {name}. Look at whose files they are (`ls -ln {home}`); if they are "
            f"{name}'s, run `chown -R {user_group} {home}` yourself."),
            Fix(f"chown -R {user_group} {home}", owner_name(info.st_uid), name, safe=False)))
    elif info.st_gid != gid:
        findings.append(Finding(check, "warning", subject, (
            f"{name}'s home {home} has the group {group_name(info.st_gid)}, not {name}'s "
            f"own group {group_name(gid)}. With mode 0700 this gives nobody access, but it "
            f"is not how hubkeeper makes homes: `chgrp {group_name(gid)} {home}` puts it "
            "back."), Fix(f"chgrp {group_name(gid)} {home}", group_name(info.st_gid),
                          group_name(gid), safe=False)))
    mode = stat.S_IMODE(info.st_mode)
    if mode & PRIVATE:
        wanted = mode & ~PRIVATE
        if ours:
            findings.append(Finding(check, "problem", subject, (
                f"{name}'s home {home} has mode {mode_text(mode)}, so other users can look "
                f"into it; hubkeeper makes homes {wanted:04o} (only their user). `hubkeeper "
                f"doctor --fix` runs `chmod {wanted:04o} {home}`: the folder itself, "
                "nothing inside it."), chmod_fix(home, info, wanted)))
        else:
            findings.append(Finding(check, "warning", subject, (
                f"{name}'s home {home} has mode {mode_text(mode)}, so other users can look "
                f"into it. hubkeeper did not create the account {name} (it is not in the "
                "journal), so it does not change its home; to make it private, run "
                f"`chmod {wanted:04o} {home}`."),
                Fix(f"chmod {wanted:04o} {home}", mode_text(mode), f"{wanted:04o}",
                    safe=False)))
    if not findings:
        findings.append(Finding(check, "ok", subject, (
            f"{name}'s home {home} is theirs and has mode {mode_text(mode)}.")))
    return findings


def _personal_homes(ctx: Context) -> list[Finding]:
    """Personal mode: <state>/users/<name>, the hub account's own and 0700."""
    findings: list[Finding] = []
    for member in ctx.roster.members:
        folder = ctx.paths.users / member.name
        if _lstat(folder) is None:
            continue  # made at the first server start
        findings += inspect(ctx, "homes", folder, f"{member.name}'s folder", PRIVATE,
                            directory=True)
    return findings
