"""Manifests: every entry of a tree with its size, mode, owner, mtime and SHA-256.

MANIFEST.json is written whole and atomically beside a `MANIFEST.json.sha256` in
sha256sum's format, so `sha256sum -c MANIFEST.json.sha256` checks it by hand. Each entry:

    {"path": "homes/alice/notes.ipynb", "type": "f", "size": 1234, "mode": 33188,
     "uid": 1001, "gid": 1001, "mtime_ns": ..., "sha256": "...", "ino": ...}

type is f (file), d (directory) or l (symlink, with "link": its target). `ino` is only a
hint for the next snapshot on the same filesystem: a file rsync hard-linked to the previous
snapshot has the previous inode, so its SHA-256 is taken from there instead of re-read.
`verify_tree` never trusts it: it re-reads every file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic
from hubkeeper.base.tree import Entry

MANIFEST_SCHEMA = 1
MANIFEST = "MANIFEST.json"
Progress = Callable[[int, int, str], None]


def silent(done: int, total: int, what: str) -> None:
    pass


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb", buffering=0) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def walk(root: Path, under: str = "", prune: frozenset[str] = frozenset()
         ) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything under root (or only under root/`under`, with
    paths still relative to root), parents before children, sorted. Folders in `prune` are
    listed but not entered."""
    pending = [under]
    while pending:
        relative = pending.pop()
        directory = root / relative if relative else root
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda e: e.name, reverse=True)
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            path = f"{relative}/{entry.name}" if relative else entry.name
            yield path, info
            if stat.S_ISDIR(info.st_mode) and path not in prune:
                pending.append(path)


def entry_for(root: Path, path: str, info: os.stat_result) -> Entry | None:
    """The manifest entry of one lstat'ed path (no hash yet); None for sockets and fifos."""
    kind = ("d" if stat.S_ISDIR(info.st_mode) else "f" if stat.S_ISREG(info.st_mode)
            else "l" if stat.S_ISLNK(info.st_mode) else None)
    if kind is None:
        return None
    return Entry(path, kind, info.st_size if kind == "f" else 0, info.st_mode, info.st_uid,
                 info.st_gid, info.st_mtime_ns,
                 link=os.readlink(root / path) if kind == "l" else None,
                 ino=info.st_ino if kind == "f" else None)


def scan(root: Path, previous: dict[str, Entry] | None = None,
         progress: Progress = silent, under: str = "",
         prune: frozenset[str] = frozenset()) -> list[Entry]:
    """Every entry under `root` (`under` and `prune` as for `walk`), hashed. A file with the
    inode and metadata `previous` gives for its path is the same file (a hard link): its
    hash is reused, not re-read."""
    entries = [entry for path, info in walk(root, under, prune)
               if (entry := entry_for(root, path, info)) is not None]
    files = [entry for entry in entries if entry.type == "f"]
    previous = previous or {}
    for done, entry in enumerate(files, 1):
        before = previous.get(entry.path)
        if before is not None and before.ino == entry.ino and before.sha256 and \
                before.same_metadata(entry):
            entry.sha256 = before.sha256
        else:
            entry.sha256 = sha256_file(root / entry.path)
        if done % 200 == 0 or done == len(files):
            progress(done, len(files), entry.path)
    return entries


def write_manifest(directory: Path, header: dict, entries: list[Entry]) -> str:
    """Write MANIFEST.json (header + entries) and its .sha256; returns the manifest's hash."""
    body = dict(header, schema=MANIFEST_SCHEMA,
                totals={"files": sum(e.type == "f" for e in entries),
                        "bytes": sum(e.size for e in entries)},
                # vars(), not dataclasses.asdict: an Entry holds only scalars, and asdict's
                # deep copy took 1.4 of write_manifest's 1.55 s for 100,000 entries
                entries=[{k: v for k, v in vars(e).items() if v is not None}
                         for e in entries])
    data = json.dumps(body, separators=(",", ":")).encode() + b"\n"
    digest = hashlib.sha256(data).hexdigest()
    write_atomic(directory / MANIFEST, data, mode=0o600)
    write_atomic(directory / f"{MANIFEST}.sha256", f"{digest}  {MANIFEST}\n".encode(),
                 mode=0o600)
    return digest


def read_manifest(directory: Path) -> tuple[dict, list[Entry]]:
    """The header and entries of `directory`/MANIFEST.json, checked against its .sha256."""
    path = directory / MANIFEST
    try:
        data = path.read_bytes()
        recorded = (directory / f"{MANIFEST}.sha256").read_text().split()[0]
    except (OSError, IndexError) as exc:
        raise HubkeeperError(f"cannot read {path} and its .sha256: {exc}",
                             hint="this snapshot or archive is incomplete") from None
    if hashlib.sha256(data).hexdigest() != recorded:
        raise HubkeeperError(f"{path} does not match {path.name}.sha256: the manifest "
                             "itself is damaged")
    body = json.loads(data)
    if body.get("schema") != MANIFEST_SCHEMA:
        raise HubkeeperError(f"{path} has schema {body.get('schema')!r}; this hubkeeper "
                             f"reads {MANIFEST_SCHEMA}")
    entries = [Entry(**entry) for entry in body.pop("entries")]
    return body, entries


def verify_tree(root: Path, entries: list[Entry], progress: Progress = silent,
                ignore: frozenset[str] = frozenset()) -> list[str]:
    """Re-read everything under `root` and compare it with `entries`. Returns one line per
    mismatch (changed content or metadata, missing, unexpected); empty when all match."""
    problems: list[str] = []
    expected = {entry.path: entry for entry in entries}
    seen: set[str] = set()
    total = sum(entry.type == "f" for entry in entries)
    done = 0
    try:
        walked = list(walk(root))
    except OSError as exc:
        return [f"cannot read {root}: {exc.strerror}"]
    for path, info in walked:
        if path in ignore:
            continue
        found = entry_for(root, path, info)
        want = expected.get(path)
        if found is None or want is None:
            problems.append(f"{path}: not in the manifest")
            continue
        seen.add(path)
        if found.type == "f":
            done += 1
            try:
                found.sha256 = sha256_file(root / path)
            except OSError as exc:
                problems.append(f"{path}: cannot be read ({exc.strerror})")
                continue
            if done % 200 == 0 or done == total:
                progress(done, total, path)
        found.sha256 = found.sha256 if found.type == "f" else None
        differs = [name for name in ("type", "size", "sha256", "mode", "uid", "gid", "link")
                   if getattr(found, name) != getattr(want, name)]
        if found.type != "d" and found.mtime_ns != want.mtime_ns:
            differs.append("mtime")
        if differs:
            problems.append(f"{path}: {', '.join(differs)} differ from the manifest")
    for path in sorted(set(expected) - seen):
        problems.append(f"{path}: missing")
    return problems
