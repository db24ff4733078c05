"""Seed ~/<environment>/ from a home template: `python -m hubkeeper.proc.seed FOLDER TEMPLATE`.

Run by the spawner as the user (so it can only write where the user can). Makes FOLDER
(0700) and copies every file of TEMPLATE that FOLDER does not have yet; never overwrites,
never follows a symlink in FOLDER.
"""

from __future__ import annotations

import os
import shutil
import sys


def seed(folder: str, template: str) -> list[str]:
    """Copy what is missing; return the relative paths copied."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if os.path.islink(folder) or not os.path.isdir(folder):
        raise SystemExit(f"{folder} is not a directory")
    copied: list[str] = []
    if not template:
        return copied
    for root, dirs, files in os.walk(template):
        relative = os.path.relpath(root, template)
        target_dir = os.path.normpath(os.path.join(folder, relative))
        if os.path.islink(target_dir):
            dirs[:] = []  # the user's own link: leave it and what is behind it alone
            continue
        os.makedirs(target_dir, mode=0o700, exist_ok=True)
        for name in files:
            target = os.path.join(target_dir, name)
            if os.path.lexists(target):
                continue  # the user's file wins
            source = os.path.join(root, name)
            # O_EXCL|O_NOFOLLOW: a file or link that appears meanwhile is not overwritten.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            os.fchmod(fd, 0o700 if os.stat(source).st_mode & 0o100 else 0o600)
            with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst)
            copied.append(os.path.relpath(target, folder))
    return copied


def main() -> None:
    folder, template = sys.argv[1], sys.argv[2]
    for path in seed(folder, template):
        print(f"copied {path}")


if __name__ == "__main__":
    main()
