"""Shared data on one machine: read-only directories and group folders, and their links in
homes. Pure planning; `roster.converge` performs the actions.

- A shared directory is root-owned and 0755: every user reads it, none writes it.
- A group folder is root:<group>, mode 2770 (setgid: files stay group-owned), with default
  ACLs so that what a member creates stays writable by the group and invisible to others.
- A link in a home is made only where nothing of that name exists: a user's file is never
  replaced.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from hubkeeper.config.loader import LoadedSpec
from hubkeeper.errors import Problem
from hubkeeper.host.journal import Journal
from hubkeeper.host.users import HostUsers
from hubkeeper.plan.actions import Action
from hubkeeper.roster import Roster


@dataclass(frozen=True)
class SharedDir:
    path: str
    link: str | None
    where: Problem  # position in hub.yaml, message empty


@dataclass(frozen=True)
class GroupFolder:
    path: str
    group: str  # hub group (the Linux group is roster.prefix + group)
    link: str | None
    where: Problem


def _at(where: Problem, message: str) -> Problem:
    return Problem(where.file, where.line, where.column, where.field, message)


def data_problems(shared: list[SharedDir], folders: list[GroupFolder], roster: Roster,
                  journal: Journal) -> list[Problem]:
    problems = []
    for item in shared:
        if item.path in journal.dirs or not os.path.lexists(item.path):
            continue
        info = os.lstat(item.path)
        if not stat.S_ISDIR(info.st_mode):
            problems.append(_at(item.where, f"{item.path} exists and is not a directory"))
        elif info.st_uid != 0 or info.st_mode & 0o022:
            problems.append(_at(item.where, (
                f"{item.path} exists, was not made by hubkeeper, and users could write to it "
                f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); make it "
                f"root's and not group- or world-writable: chown root: {item.path} && "
                f"chmod go-w {item.path}")))
    for folder in folders:
        if folder.group not in roster.groups:
            problems.append(_at(folder.where, (
                f"group {folder.group!r} is not a roster group; roster groups: "
                f"{', '.join(roster.groups) or 'none'}")))
        if os.path.lexists(folder.path) and folder.path not in journal.dirs:
            problems.append(_at(folder.where, (
                f"{folder.path} exists and hubkeeper did not create it; a group folder's "
                "owner and mode are hubkeeper's to set: choose a new path")))
    return problems


def plan_data(shared: list[SharedDir], folders: list[GroupFolder], roster: Roster,
              host: HostUsers, journal: Journal) -> tuple[list[Action], list[str]]:
    """The directories to create and the links to make in homes, and notes for the operator."""
    actions: list[Action] = []
    notes: list[str] = []
    for item in shared:
        if not os.path.isdir(item.path):
            actions.append(Action("create-shared-dir", item.path))
    for folder in folders:
        if not os.path.isdir(folder.path):
            actions.append(Action("create-group-folder", folder.path,
                                  roster.prefix + folder.group))
    wanted: list[tuple[str, str, str]] = []  # (account, link name, target)
    for member in roster.active:
        wanted += [(member.account, s.link, s.path) for s in shared if s.link]
        wanted += [(member.account, f.link, f.path) for f in folders
                   if f.link and f.group in member.groups]
    for account, name, target in wanted:
        entry = host.accounts.get(account)
        home = entry.home if entry else f"/home/{account}"  # an account apply will create
        link = os.path.join(home, name)
        if not os.path.lexists(link):
            actions.append(Action("link-in-home", account, f"{name} -> {target}"))
        elif not (os.path.islink(link) and os.readlink(link) == target):
            notes.append(f"{link} exists and is not a link to {target}: left as it is")
    return actions, notes


def data_specs(loaded: LoadedSpec) -> tuple[list[SharedDir], list[GroupFolder]]:
    """hub.yaml's data.shared and data.group_folders, each with its place for messages."""
    data = loaded.spec.data
    shared = [SharedDir(item.path, item.link, loaded.problem(("data", "shared", index), ""))
              for index, item in enumerate(data.shared)]
    folders = [GroupFolder(item.path, item.group, item.link,
                           loaded.problem(("data", "group_folders", index), ""))
               for index, item in enumerate(data.group_folders)]
    return shared, folders
