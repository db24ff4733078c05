"""A student's own work as a zip: from the live home, or from their tar in an archive.

The zip (0600) is written under a temporary name and renamed when complete. Folders and
regular files go in with their modes and mtimes; symlinks and special files are skipped and
reported (a zip cannot hold them portably, and a link could point anywhere). From an
archive, every member is checked against MANIFEST.json while it is copied, and the tar's own
SHA-256 at the end: a damaged archive gives no zip at all.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.tree import Changed, walk_tree
from hubkeeper.base.whoami import effective_uid
from hubkeeper.host.writer import writer_for
from hubkeeper.lifecycle.archive import special_kind
from hubkeeper.lifecycle.archive_verify import compare_member, tar_members
from hubkeeper.lifecycle.manifest import MANIFEST, Entry, read_manifest
from hubkeeper.lifecycle.tarzst import TarDamage, TarZstReader, read_member


@dataclass(frozen=True)
class ExportInfo:
    path: Path
    files: int
    bytes: int  # of the files, before compression
    skipped: tuple[str, ...]  # what is not in the zip, and why


def require_own_folder(folder: Path) -> None:
    """Refuse a zip's folder (existing or to be made) that another account could steer: one
    it owns on the way could be swapped for a link while root writes there."""
    writer = writer_for(folder)  # raises for a folder others can write
    if writer.uid != effective_uid():
        raise HubkeeperError(
            f"will not write the zip into {folder}: uid {writer.uid} owns a folder on the "
            "way there, and could swap it for a link while it is written",
            hint="give --to a folder of root's (e.g. /root/zips), then hand the zip over")


class _Zip:
    """The zip being written: `.<name>.partial` until `commit()` renames it."""

    def __init__(self, path: Path) -> None:
        require_own_folder(path.parent)
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial")
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._handle = os.fdopen(fd, "w+b")
        self.zip = zipfile.ZipFile(self._handle, "w", zipfile.ZIP_DEFLATED, compresslevel=6,
                                   allowZip64=True)
        self.files = 0
        self.bytes = 0
        self.skipped: list[str] = []

    def _info(self, entry: Entry) -> zipfile.ZipInfo:
        name = entry.path
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # a name that is not UTF-8 on disk
            name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            self.skipped.append(f"{entry.path!r}: its name is not UTF-8; stored as {name!r}")
        seconds = max(entry.mtime_ns // 10**9, 315532800)  # zip dates start in 1980
        info = zipfile.ZipInfo(name + ("/" if entry.type == "d" else ""),
                               time.localtime(seconds)[:6])
        info.external_attr = (entry.mode & 0xFFFF) << 16 | (0x10 if entry.type == "d" else 0)
        info.compress_type = zipfile.ZIP_STORED if entry.type == "d" else zipfile.ZIP_DEFLATED
        info.file_size = entry.size
        return info

    def add(self, entry: Entry, data: BinaryIO | None = None,
            check: Callable[[str, int], None] | None = None) -> None:
        """A folder (data None) or a file whose bytes `data` gives; `check(sha256, size)`
        may refuse what was copied."""
        info = self._info(entry)
        if data is None:
            self.zip.writestr(info, b"")
            return
        with self.zip.open(info, "w") as target:
            digest, size = read_member(data, target.write)
        if check:
            check(digest, size)
        self.files += 1
        self.bytes += size

    def commit(self) -> None:
        self.zip.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.rename(self.partial, self.path)

    def abandon(self) -> None:
        try:
            self.zip.close()
        except (ValueError, OSError):  # a member half written: only the file is left to close
            self.zip.fp = None
        self._handle.close()
        self.partial.unlink(missing_ok=True)


class _Upto:
    """A file read no further than `limit` bytes."""

    def __init__(self, handle: BinaryIO, limit: int) -> None:
        self.handle, self.left = handle, limit

    def read(self, size: int = -1) -> bytes:
        want = self.left if size < 0 else min(size, self.left)
        chunk = self.handle.read(want) if want else b""
        self.left -= len(chunk)
        return chunk


def _changed(handle: BinaryIO, before: os.stat_result) -> str | None:
    """How a file changed since `before` (its lstat when listed), or None."""
    after = os.fstat(handle.fileno())
    if after.st_size != before.st_size:
        return f"its size changed from {before.st_size} to {after.st_size} bytes"
    if after.st_mtime_ns != before.st_mtime_ns:
        return "it was written to"
    return None


def _safe_name(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "" not in parts


def export_home(home: Path, target: Path, progress: Callable[[int], None]) -> ExportInfo:
    """Zip the live folder `home` into `target` (which must not exist)."""
    out = _Zip(target)
    try:
        changed: list[str] = []
        for found in walk_tree(home, changed):
            kind = found.kind
            if kind in (None, "l"):
                what = "a symlink" if kind == "l" else f"a {special_kind(found.info)}"
                out.skipped.append(f"{found.path}: {what}; not in the zip")
                continue
            if kind == "d":
                out.add(found.entry())
                continue
            try:
                handle, info = found.open()
            except Changed as why:
                out.skipped.append(f"{found.path}: changed while exporting ({why})")
                continue
            with handle:
                entry = found.entry(info)
                # at most the size it had when listed and when opened: a file that someone
                # keeps appending to (or growing from the moment it is opened) ends there
                entry.size = min(found.info.st_size, info.st_size)
                out.add(entry, _Upto(handle, entry.size))
                if changed_since := _changed(handle, found.info):
                    out.skipped.append(f"{found.path}: {changed_since} while exporting; the "
                                       "zip holds what was read (at most its size when "
                                       "opened)")
            progress(out.files)
        out.skipped += [f"{p}: replaced while exporting; its contents are not in the zip"
                        for p in changed]
        out.commit()
    except OSError as exc:
        out.abandon()
        raise HubkeeperError(f"cannot read {exc.filename or home}: {exc.strerror}",
                             hint="run as root") from None
    except BaseException:
        out.abandon()
        raise
    return ExportInfo(target, out.files, out.bytes, tuple(out.skipped))


def archived_users(directory: Path) -> tuple[dict, dict]:
    """The header of the archive in `directory` and its users (name -> section)."""
    try:
        header, _ = read_manifest(directory)
    except HubkeeperError as exc:
        raise HubkeeperError(exc.message, hint="check it with `hubkeeper archive verify "
                             f"{directory}`") from None
    if header.get("kind") != "hubkeeper-archive":
        raise HubkeeperError(f"{directory} is not a hubkeeper archive (kind "
                             f"{header.get('kind')!r} in {MANIFEST})")
    return header, header.get("users", {})


def export_archived(directory: Path, user: str, target: Path,
                    progress: Callable[[int], None]) -> ExportInfo:
    """Zip `user`'s tar in the archive in `directory` into `target`, checking each member
    against MANIFEST.json; the zip is removed and an error raised at the first mismatch."""
    header, users = archived_users(directory)
    if user not in users:
        raise HubkeeperError(f"{user!r} is not in the archive {directory}",
                             hint=f"users in it: {', '.join(sorted(users)) or 'none'}")
    _, entries = read_manifest(directory)
    tar = users[user]["tar"]
    expected = {member.path: member for member in tar_members(header)[tar]}
    whole = next((entry for entry in entries if entry.path == tar), None)
    if whole is None:
        raise HubkeeperError(f"{MANIFEST} in {directory} has no entry for {tar}")

    def damaged(what: str) -> HubkeeperError:
        return HubkeeperError(f"{directory / tar}: {what}; no zip was written",
                              hint=f"`hubkeeper archive verify {directory}` lists every "
                              "problem; export from the live home or a snapshot instead")

    out = _Zip(target)
    seen: set[str] = set()
    try:
        with TarZstReader(directory / tar) as reader:
            for found, data in reader.members():
                want = expected.get(found.path)
                if want is None or not _safe_name(found.path):
                    raise damaged(f"{found.path!r} is in the tar but not in {MANIFEST}")
                seen.add(found.path)
                if found.type == "d":
                    out.add(found)
                elif found.type == "f" and data is not None:

                    def check(digest: str, size: int, found: Entry = found,
                              want: Entry = want) -> None:
                        found.sha256, found.size = digest, size
                        if differs := compare_member(found, want):
                            raise damaged(f"{found.path}: {', '.join(differs)} "
                                          f"differ{'s' * (len(differs) == 1)} from {MANIFEST}")

                    out.add(found, data, check)
                    progress(out.files)
                else:
                    what = "a symlink" if found.type == "l" else "not a file or folder"
                    out.skipped.append(f"{found.path}: {what}; not in the zip")
            digest, size = reader.finish()
        if (digest, size) != (whole.sha256, whole.size):
            raise damaged(f"the tar's SHA-256 or size differs from {MANIFEST}")
        if missing := sorted(set(expected) - seen):
            raise damaged(f"{missing[0]} is listed in {MANIFEST} but missing from the tar"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        out.commit()
    except TarDamage as exc:
        out.abandon()
        raise damaged(str(exc)) from None
    except BaseException:
        out.abandon()
        raise
    return ExportInfo(target, out.files, out.bytes, tuple(out.skipped))

