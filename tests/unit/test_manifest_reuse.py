"""A snapshot's manifest reuses the hash of every file rsync hard-linked to the previous
snapshot (same inode, same metadata), and scans each tree as soon as its copy ends. These
tests show what that reuse may and may not hide."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hubkeeper.lifecycle.manifest import Entry, scan, verify_tree


def tree(root: Path) -> None:
    (root / "homes" / "ann" / "work").mkdir(parents=True)
    (root / "homes" / "bob").mkdir(parents=True)
    (root / "homes" / "ann" / "work" / "a.py").write_text("print(1)\n")
    (root / "homes" / "ann" / "notes.txt").write_text("week 1\n")
    (root / "homes" / "bob" / "b.txt").write_text("bob's\n")
    (root / "hub").mkdir()
    (root / "hub" / "roster.json").write_text("{}\n")


def by_path(entries: list[Entry]) -> dict[str, Entry]:
    return {entry.path: entry for entry in entries}


def link_copy(old: Path, new: Path) -> None:
    """What rsync --link-dest makes of an unchanged tree: folders anew, files hard-linked."""
    for folder, _, files in os.walk(old):
        place = new / Path(folder).relative_to(old)
        place.mkdir(exist_ok=True)
        for name in files:
            os.link(Path(folder) / name, place / name)


def test_trees_scanned_apart_give_the_whole_scan(tmp_path: Path) -> None:
    tree(tmp_path)
    keys = frozenset({"hub", "homes/ann", "homes/bob"})
    parts = scan(tmp_path, prune=keys)
    for key in sorted(keys):
        parts += scan(tmp_path, under=key)
    whole = scan(tmp_path)
    assert sorted(map(vars, parts), key=lambda e: e["path"]) == \
        sorted(map(vars, whole), key=lambda e: e["path"])
    assert {e.path for e in scan(tmp_path, prune=keys)} == {"hub", "homes", "homes/ann",
                                                            "homes/bob"}


def test_a_hard_linked_file_keeps_its_hash_without_being_read(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    tree(old)
    before = by_path(scan(old))
    link_copy(old, new)
    reused = dict(before)
    reused["homes/bob/b.txt"] = Entry(**{**vars(before["homes/bob/b.txt"]), "sha256": "0" * 64})
    after = by_path(scan(new, reused))
    # the inode and metadata match: the hash is taken from the previous manifest
    assert after["homes/bob/b.txt"].sha256 == "0" * 64
    assert after["homes/ann/notes.txt"].sha256 == before["homes/ann/notes.txt"].sha256


def test_a_copied_file_with_the_same_size_and_mtime_is_hashed_afresh(tmp_path: Path) -> None:
    """rsync copies a file when its quick check (size, mtime) says it changed; a file it
    copies is a new inode, so its hash is read even if size and mtime are the old ones."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    tree(old)
    before = by_path(scan(old))
    link_copy(old, new)
    target = new / "homes" / "ann" / "notes.txt"
    info = target.stat()
    target.unlink()
    target.write_text("week 2\n")  # same size
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = by_path(scan(new, before))
    assert after["homes/ann/notes.txt"].sha256 == hashlib.sha256(b"week 2\n").hexdigest()


def test_damage_to_a_linked_file_is_not_laundered_by_reuse(tmp_path: Path) -> None:
    """A byte flipped in place in the previous snapshot (same inode, size and mtime) is
    shared by the hard-linked new copy. Reuse keeps the hash taken before the damage, so
    `snapshot verify` names the file in both snapshots: the manifest never learns the
    damaged content as the truth."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    tree(old)
    before = scan(old)
    victim = old / "homes" / "bob" / "b.txt"
    info = victim.stat()
    with open(victim, "r+b") as handle:
        handle.write(b"X")
    os.utime(victim, ns=(info.st_atime_ns, info.st_mtime_ns))
    link_copy(old, new)
    after = scan(new, by_path(before))
    assert by_path(after)["homes/bob/b.txt"].sha256 == by_path(before)["homes/bob/b.txt"].sha256
    for root, entries in ((old, before), (new, after)):
        assert verify_tree(root, entries) == ["homes/bob/b.txt: sha256 differ from the manifest"]
