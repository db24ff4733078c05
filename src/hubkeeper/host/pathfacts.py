"""What is at a path, read once (lstat, and stat through a link), for the pure planners:
plan/data.py decides from these facts what to create and what to refuse."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PathFact:
    exists: bool  # something is there (a dangling link too)
    is_dir: bool  # a directory, a link to one included (os.path.isdir)
    own_dir: bool  # a directory itself, not a link (lstat)
    uid: int | None  # lstat's owner
    mode: int | None  # lstat's permission bits
    link: str | None  # a symbolic link's target


ABSENT = PathFact(False, False, False, None, None, None)


def observe_path(path: str) -> PathFact:
    try:
        info = os.lstat(path)
    except OSError:
        return ABSENT
    link = None
    if stat.S_ISLNK(info.st_mode):
        try:
            link = os.readlink(path)
        except OSError:
            link = None
    return PathFact(True, os.path.isdir(path), stat.S_ISDIR(info.st_mode), info.st_uid,
                    stat.S_IMODE(info.st_mode), link)


def observe_paths(paths: Iterable[str]) -> dict[str, PathFact]:
    return {path: observe_path(path) for path in paths}
