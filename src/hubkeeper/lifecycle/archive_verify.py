"""Checking an end-of-course archive (lifecycle/archive.py) against its MANIFEST.json: every
tar re-read whole, every member compared with its entry (type, size, SHA-256, link, owner,
mode, mtime), damage and truncation named by file and member. `archive verify` and `retire`
use it; a student's zip (lifecycle/userzip.py) compares its members the same way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.lifecycle.archive import KIND
from hubkeeper.lifecycle.manifest import MANIFEST, Entry, Progress, read_manifest, silent
from hubkeeper.lifecycle.tarzst import TarDamage, TarZstReader, read_member


def tar_members(header: dict) -> dict[str, list[Entry]]:
    """Each tar of an archive's MANIFEST.json header -> the entries of its members."""
    sections = [*header.get("users", {}).values(), *header.get("data", {}).values(),
                header.get("hub_files", {})]
    return {section["tar"]: [Entry(**member) for member in section["members"]]
            for section in sections if section}


def verify_archive(directory: Path, progress: Progress = silent) -> list[str]:
    """Re-read every tar of the archive in `directory` and every member in it; one line per
    problem, naming the file (and the member); [] when everything matches MANIFEST.json."""
    try:
        header, entries = read_manifest(directory)
        if header.get("kind") != KIND:
            return [f"{MANIFEST}: not a hubkeeper archive (kind {header.get('kind')!r})"]
        members = tar_members(header)
    except HubkeeperError as exc:
        return [f"{MANIFEST}: {exc.message}"]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return [f"{MANIFEST}: cannot be understood ({type(exc).__name__}: {exc})"]
    problems: list[str] = []
    listed = {entry.path for entry in entries}
    for tar in sorted(set(members) - listed):
        problems.append(f"{tar}: has members in {MANIFEST} but no entry of its own")
    progress(0, len(entries), "verifying")
    for done, entry in enumerate(sorted(entries, key=lambda e: e.path), 1):
        problems += _verify_tar(directory, entry, members.get(entry.path, []))
        progress(done, len(entries), entry.path)
    # A tar nobody listed is reported; notes beside the manifest (retire's RETIREMENT.json)
    # are not archive content.
    for root, _, files in os.walk(directory):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), directory)
            if relative not in listed and (relative.endswith(".tar.zst")
                                           or relative.startswith(("users/", "data/"))):
                problems.append(f"{relative}: not in {MANIFEST}")
    return problems


_NAMES = {"sha256": "SHA-256", "mtime_ns": "mtime"}


def compare_member(found: Entry, want: Entry) -> list[str]:
    """What differs between a member read from a tar and its manifest entry."""
    differs = [name for name in ("type", "size", "sha256", "link", "uid", "gid", "mtime_ns")
               if getattr(found, name) != getattr(want, name)]
    if stat.S_IMODE(found.mode) != stat.S_IMODE(want.mode):
        differs.append("mode")
    return [_NAMES.get(name, name) for name in differs]


def _verify_tar(directory: Path, entry: Entry, members: list[Entry]) -> list[str]:
    path = directory / entry.path
    tar = entry.path
    if not path.is_file() or path.is_symlink():
        return [f"{tar}: missing"]
    expected = {member.path: member for member in members}
    seen: set[str] = set()
    inner: list[str] = []
    damage = None
    try:
        with TarZstReader(path) as reader:
            try:
                for found, data in reader.members():
                    if data is not None:
                        found.sha256, _ = read_member(data)
                    want = expected.get(found.path)
                    if want is None:
                        inner.append(f"{tar}: {found.path}: in the tar but not in {MANIFEST}")
                        continue
                    if found.path in seen:
                        inner.append(f"{tar}: {found.path}: twice in the tar")
                    seen.add(found.path)
                    if differs := compare_member(found, want):
                        inner.append(f"{tar}: {found.path}: {', '.join(differs)} "
                                     f"differ{'s' if len(differs) == 1 else ''} from {MANIFEST}")
                digest, size = reader.finish()
            except TarDamage as exc:
                digest, size, cut = reader.rest()
                damage = (f"{tar}: is truncated: it ends in the middle of a zstd frame" if cut
                          else f"{tar}: {exc}")
    except OSError as exc:
        return [f"{tar}: cannot be read ({exc.strerror})"]
    outer: list[str] = []
    if size != entry.size:
        outer.append(f"{tar}: size differs from {MANIFEST} ({size} bytes, "
                     f"{entry.size} expected)")
    if digest != entry.sha256:
        outer.append(f"{tar}: SHA-256 differs from {MANIFEST}")
    unseen = sorted(set(expected) - seen)
    if damage:
        outer.append(damage)
        if unseen:
            more = f" and {len(unseen) - 1} more after it" if len(unseen) > 1 else ""
            inner.append(f"{tar}: {unseen[0]}{more}: cannot be read past the damage")
    else:
        inner += [f"{tar}: {p}: listed in {MANIFEST} but missing from the tar"
                  for p in unseen]
    return outer + inner


