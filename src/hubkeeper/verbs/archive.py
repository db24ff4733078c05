"""`hubkeeper archive` writes the end-of-course archive; `archive verify DIR` re-reads it.

The layout and the checks are in lifecycle/archive.py; docs/lifecycle.md shows both verbs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import archive_lock
from hubkeeper.config.types import config_relative
from hubkeeper.context.hub import Hub
from hubkeeper.lifecycle.archive import write_archive
from hubkeeper.lifecycle.archive_verify import tar_members, verify_archive
from hubkeeper.lifecycle.manifest import Progress, read_manifest, silent
from hubkeeper.lifecycle.sources import hub_contents


@dataclass(frozen=True)
class ArchiveResult:
    hub: str
    directory: str
    manifest_sha256: str
    users: int  # homes archived
    data_dirs: int
    bytes: int  # on disk, compressed
    source_bytes: int  # of the files archived
    started: str
    finished: str
    missing: tuple[str, ...]  # roster users with no home (nothing to archive)
    skipped: tuple[str, ...]  # what was not archived, and why


@dataclass(frozen=True)
class VerifyResult:
    directory: str
    hub: str | None  # None: the manifest cannot be read
    tars: int
    members: int
    problems: tuple[str, ...]  # empty: every byte matches MANIFEST.json
    ok: bool


def archive(hub: Hub, to: Path | None, progress: Progress = silent) -> ArchiveResult:
    """Archive the opened hub into a new folder under `to` (default: archive.dir)."""
    contents = hub_contents(hub)
    loaded = contents.loaded
    if to is None:
        if not loaded.spec.archive.dir:
            raise HubkeeperError(
                "no folder to write the archive to",
                hint=f"set `archive.dir` in {loaded.path} (archive: {{dir: /var/backups/"
                "hubkeeper}}) or pass --to DIR")
        to = config_relative(loaded.path.parent, loaded.spec.archive.dir)
    with archive_lock(contents.paths):
        info = write_archive(contents, to, progress)
    return ArchiveResult(loaded.spec.hub.name, str(info.directory), info.manifest_sha256,
                         info.users, len(contents.data), info.bytes, info.source_bytes,
                         info.started, info.finished, contents.missing, info.skipped)


def verify(directory: Path, progress: Progress = silent) -> VerifyResult:
    """Re-read every tar and member of the archive in `directory`."""
    if not directory.is_dir():
        raise HubkeeperError(f"{directory} is not a folder",
                             hint="give the archive's folder, e.g. "
                             "/var/backups/hubkeeper/<hub>-<time>")
    problems = verify_archive(directory, progress)
    hub, tars, members = None, 0, 0
    try:
        header, entries = read_manifest(directory)
        hub = header.get("hub")
        tars = len(entries)
        members = sum(len(found) for found in tar_members(header).values())
    except (HubkeeperError, ValueError, TypeError, KeyError, AttributeError):
        pass  # verify_archive has said what is wrong with the manifest
    return VerifyResult(str(directory), hub, tars, members, tuple(problems),
                        not problems)
