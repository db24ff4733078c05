"""Shared data on one machine: read-only directories and group folders, and their links in
homes. Pure planning from the facts of their paths (`data_paths` says which to observe,
host/pathfacts.py observes them); `roster.converge` performs the actions.

- A shared directory is root-owned and 0755: every user reads it, none writes it.
- A group folder is root:<group>, mode 2770 (setgid: files stay group-owned), with default
  ACLs so that what a member creates stays writable by the group and invisible to others.
- A link in a home is made only where nothing of that name exists: a user's file is never
  replaced.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hubkeeper.base.errors import Problem
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.host.accounts import HostUsers
from hubkeeper.host.pathfacts import ABSENT, PathFact
from hubkeeper.plan.actions import Action
from hubkeeper.roster import Roster
from hubkeeper.state.journal import Journal


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
                  journal: Journal, paths: Mapping[str, PathFact]) -> list[Problem]:
    problems = []
    for item in shared:
        found = paths.get(item.path, ABSENT)
        if item.path in journal.dirs or not found.exists:
            continue
        if not found.own_dir:
            problems.append(_at(item.where, f"{item.path} exists and is not a directory"))
        elif found.uid != 0 or (found.mode or 0) & 0o022:
            problems.append(_at(item.where, (
                f"{item.path} exists, was not made by hubkeeper, and users could write to it "
                f"(owner uid {found.uid}, mode {found.mode or 0:o}); make it "
                f"root's and not group- or world-writable: chown root: {item.path} && "
                f"chmod go-w {item.path}")))
    for folder in folders:
        if folder.group not in roster.groups:
            problems.append(_at(folder.where, (
                f"group {folder.group!r} is not a roster group; roster groups: "
                f"{', '.join(roster.groups) or 'none'}")))
        if paths.get(folder.path, ABSENT).exists and folder.path not in journal.dirs:
            problems.append(_at(folder.where, (
                f"{folder.path} exists and hubkeeper did not create it; a group folder's "
                "owner and mode are hubkeeper's to set: choose a new path")))
    return problems


def _links(shared: list[SharedDir], folders: list[GroupFolder], roster: Roster,
           host: HostUsers) -> list[tuple[str, str, str, str]]:
    """(account, link name, target, the link's path) for every link wanted in a home."""
    wanted: list[tuple[str, str, str]] = []  # (account, link name, target)
    for member in roster.active:
        wanted += [(member.account, s.link, s.path) for s in shared if s.link]
        wanted += [(member.account, f.link, f.path) for f in folders
                   if f.link and f.group in member.groups]
    links = []
    for account, name, target in wanted:
        entry = host.accounts.get(account)
        home = entry.home if entry else f"/home/{account}"  # an account apply will create
        links.append((account, name, target, os.path.join(home, name)))
    return links


def data_paths(shared: list[SharedDir], folders: list[GroupFolder], roster: Roster,
               host: HostUsers) -> list[str]:
    """The paths whose facts data_problems and plan_data decide from."""
    return ([item.path for item in shared] + [folder.path for folder in folders]
            + [link for _, _, _, link in _links(shared, folders, roster, host)])


def plan_data(shared: list[SharedDir], folders: list[GroupFolder], roster: Roster,
              host: HostUsers, journal: Journal, paths: Mapping[str, PathFact]
              ) -> tuple[list[Action], list[str]]:
    """The directories to create and the links to make in homes, and notes for the operator."""
    actions: list[Action] = []
    notes: list[str] = []
    for item in shared:
        if not paths.get(item.path, ABSENT).is_dir:
            actions.append(Action("create-shared-dir", item.path))
    for folder in folders:
        if not paths.get(folder.path, ABSENT).is_dir:
            actions.append(Action("create-group-folder", folder.path,
                                  roster.prefix + folder.group))
    for account, name, target, link in _links(shared, folders, roster, host):
        found = paths.get(link, ABSENT)
        if not found.exists:
            actions.append(Action("link-in-home", account, f"{name} -> {target}"))
        elif found.link != target:
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
