"""`hubkeeper export USER`: a student's own work as a zip, from the live home or an archive.

The zip is <DIR>/<user>-<hub>-<YYYYmmddTHHMMSS>.zip (0600); lifecycle/userzip.py writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.context.hub import Hub
from hubkeeper.lifecycle.archive import prepare_parent, unique_name, utcnow
from hubkeeper.lifecycle.manifest import Progress, silent
from hubkeeper.lifecycle.sources import hub_contents
from hubkeeper.lifecycle.userzip import (
    archived_users,
    export_archived,
    export_home,
    require_own_folder,
)
from hubkeeper.verbs.usage import tally

SHOW_USERS = 30


@dataclass(frozen=True)
class ExportResult:
    user: str
    hub: str
    zip: str
    source: str  # the home, or the archive's tar
    files: int
    bytes: int  # of the files, before compression
    skipped: tuple[str, ...]  # symlinks and special files left out, and why


def _unknown(user: str, known: list[str], where: str) -> HubkeeperError:
    shown = ", ".join(known[:SHOW_USERS]) or "none"
    more = f" and {len(known) - SHOW_USERS} more" if len(known) > SHOW_USERS else ""
    return HubkeeperError(f"{user!r} has no home {where}; nothing was written",
                          hint=f"users with a home {where}: {shown}{more}")


def export(hub: Hub | None, user: str, to: Path, from_archive: Path | None = None,
           progress: Progress = silent,
           now: Callable[[], datetime] = utcnow) -> ExportResult:
    """Zip `user`'s home (live, or from the archive in `from_archive`) into `to`."""
    if from_archive is not None:
        if not from_archive.is_dir():
            raise HubkeeperError(f"{from_archive} is not a folder",
                                 hint="--from takes an archive's folder (`hubkeeper archive` "
                                 "printed it)")
        header, users = archived_users(from_archive)
        if user not in users:
            raise _unknown(user, sorted(users), f"in the archive {from_archive}")
        name = str(header.get("hub"))
        source = str(from_archive / users[user]["tar"])
        total = sum(member.get("type") == "f" for member in users[user]["members"])
    else:
        if hub is None:
            raise HubkeeperError("export needs hub.yaml or an archive (--from)")
        contents = hub_contents(hub)
        name = contents.loaded.spec.hub.name
        homes = {home.user: home for home in contents.homes}
        if user not in homes:
            raise _unknown(user, sorted(homes), "on this hub")
        source = str(homes[user].path)
        total = tally(source).files  # for the progress bar only
    to = to.absolute()
    require_own_folder(to)  # before anything is made there (and again at the zip itself)
    prepare_parent(to)
    target = to / unique_name(to, f"{user}-{name}-{now():%Y%m%dT%H%M%S}", ".zip")

    def count(files: int) -> None:
        if files % 100 == 0 or files == total:
            progress(files, max(total, files), f"{user}: {files} files")

    progress(0, total, f"exporting {user}")
    if from_archive is not None:
        info = export_archived(from_archive, user, target, count)
    else:
        info = export_home(Path(source), target, count)
    return ExportResult(user, name, str(info.path), source, info.files, info.bytes,
                        info.skipped)
