"""Files hubkeeper writes outside its state dir (systemd units, nginx sites, certbot hooks).

Each is journaled with the SHA-256 of what was written, before it is written: a file that
exists but is not in the journal is someone else's and is never replaced; a journaled file
whose content differs was changed by hand and is neither replaced nor removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic
from hubkeeper.state.journal import FileRecord, Journal


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def current_sha256(path: str | Path) -> str | None:
    """The SHA-256 of the file at path, or None when there is none (a symlink is not read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HubkeeperError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        return sha256_of(handle.read())


@dataclass(frozen=True)
class FileState:
    path: str
    kind: str
    problem: str | None  # why hubkeeper may not replace or remove it; None: it may


def file_state(journal: Journal, path: str | Path) -> FileState:
    """Whether hubkeeper owns the file at path and it still holds what hubkeeper wrote."""
    key = str(path)
    record = journal.files.get(key)
    found = current_sha256(key)
    if record is None:
        problem = (None if found is None else
                   "exists and was not written by hubkeeper (it is not in the journal); "
                   "move it away or merge it by hand")
        return FileState(key, "", problem)
    if found is None or found == record.sha256 or record.state == "creating":
        # creating: a killed install may have left the old or the new content; both ours.
        return FileState(key, record.kind, None)
    return FileState(key, record.kind,
                     "was changed by hand since hubkeeper wrote it; hubkeeper leaves it "
                     "alone: move your changes into hub.yaml, or remove the file")


def install_file(journal: Journal, path: str | Path, content: bytes, kind: str,
                 mode: int = 0o644, detail: dict[str, str] | None = None) -> bool:
    """Write content to path (atomically, journaled first). False when it was already there.

    detail: what removing it later needs besides the path (e.g. nginx's main config), kept
    in the journal so that `retire` can undo it without hub.yaml."""
    key = str(path)
    state = file_state(journal, key)
    if state.problem:
        raise HubkeeperError(f"{key} {state.problem}")
    digest = sha256_of(content)
    record = journal.files.get(key)
    if record and record.state == "created" and current_sha256(key) == digest:
        return False
    journal.files[key] = FileRecord(key, kind, "creating", digest, dict(detail or {}))
    journal.save()
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(key), content, mode=mode)
    journal.files[key] = FileRecord(key, kind, "created", digest, dict(detail or {}))
    journal.save()
    return True


def remove_file(journal: Journal, path: str | Path) -> bool:
    """Remove a file hubkeeper wrote and its record. False when it was not there."""
    key = str(path)
    record = journal.files.get(key)
    if record is None:
        return False
    state = file_state(journal, key)
    if state.problem:
        raise HubkeeperError(f"{key} {state.problem}")
    record.state = "removing"
    journal.save()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(key)
    del journal.files[key]
    journal.save()
    return True
