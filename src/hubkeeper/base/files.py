"""Atomic, permission-correct file writes: the only way hubkeeper writes state."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half.

    Temp file in the same directory, fsync, chmod before the rename, rename, fsync the dir.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or removal in the folder `path` durable (fsync of the folder)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def free_bytes(path: str) -> tuple[str, int]:
    """(the nearest existing directory at or above `path`, bytes free there for users)."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    info = os.statvfs(path)
    return path, info.f_bavail * info.f_frsize


PACKAGE = Path(__file__).resolve().parent.parent


def package_file(relative: str) -> str:
    """The path of a file shipped inside the hubkeeper package, for what is run or read by
    path rather than imported (a server script, JupyterHub's config file, templates)."""
    return str(PACKAGE / relative)
