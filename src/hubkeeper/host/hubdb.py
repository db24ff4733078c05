"""The hub database across JupyterHub versions: its alembic revision, the revision an install's
JupyterHub expects, `jupyterhub upgrade-db` run on a copy, the copy swapped in, and the kept
original put back.

The original is never written: `replace` hard-links it under the upgrade's folder before the
upgraded copy is renamed over its name, so the kept file is the old database byte for byte
(same inode, no writer once the hub is stopped). `put_back` copies it to a temp file beside
the database and renames that over it; SQLite's side files of the replaced database (a hot
journal would be applied to the wrong file) are removed first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import zipfile
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import fsync_dir

SIDE_FILES = ("-journal", "-wal", "-shm")
UPGRADE_TIMEOUT = 600.0  # seconds `jupyterhub upgrade-db` may take on a copy

# Run by an install's own python: the alembic head of its JupyterHub.
HEAD_SCRIPT = (
    "import os, jupyterhub\n"
    "from alembic.config import Config\n"
    "from alembic.script import ScriptDirectory\n"
    "c = Config()\n"
    "c.set_main_option('script_location', os.path.join(os.path.dirname(jupyterhub.__file__),"
    " 'alembic'))\n"
    "print(ScriptDirectory.from_config(c).get_current_head())\n"
)


def revision(database: Path) -> str | None:
    """The alembic revision recorded in `database` (None: no such table or no file)."""
    if not database.exists():
        return None
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    return str(row[0]) if row else None


def head_revision(venv: Path) -> str:
    """The database revision the JupyterHub installed in `venv` runs on."""
    done = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", HEAD_SCRIPT],
                          capture_output=True, text=True, timeout=120, cwd="/")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise HubkeeperError(f"cannot read the database revision of the JupyterHub in {venv}: "
                             f"{(done.stderr or done.stdout).strip()[-300:]}")
    return lines[-1].strip()


REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)


def head_in_wheel(wheel: Path) -> str | None:
    """The alembic head of the JupyterHub in `wheel`, read from its migration scripts
    (jupyterhub/alembic/versions/*.py: `revision` and `down_revision`) without installing
    it: the one revision no other script names as its parent. None when the wheel has no
    single head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not (name.startswith("jupyterhub/alembic/versions/") and name.endswith(".py")):
                continue
            found = dict(match.groups() for match in REVISION_LINE.finditer(
                archive.read(name).decode("utf-8", "replace")))
            if "revision" not in found:
                continue
            revisions.add(found["revision"].strip().strip("'\""))
            parents.update(re.findall(r"[0-9a-f]{6,}", found.get("down_revision", "")))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(database: Path, copy: Path) -> None:
    """`copy` (0600): the hub database copied whole with SQLite's online backup API,
    consistent even while the hub writes (snapshots, and the upgrade's copy)."""
    copy.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    except sqlite3.Error as exc:
        raise HubkeeperError(f"cannot copy the hub database {database}: {exc}") from None
    finally:
        source.close()
        target.close()
    os.chmod(copy, 0o600)


def upgraded_copy(venv: Path, database: Path, copy: Path) -> str:
    """`copy`: the database copied whole (SQLite's backup), then upgraded by the JupyterHub
    of `venv` (`jupyterhub upgrade-db`, run in the copy's folder, which also gets its
    timestamped backup). Returns the copy's revision, checked against that JupyterHub's."""
    backup(database, copy)
    # JupyterHub runs `alembic` by name: the install's own, first on PATH.
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    done = subprocess.run(
        [str(venv / "bin" / "jupyterhub"), "upgrade-db", f"--db=sqlite:///{copy}"],
        capture_output=True, text=True, timeout=UPGRADE_TIMEOUT, cwd=copy.parent,
        stdin=subprocess.DEVNULL, env=env)
    if done.returncode != 0:
        raise HubkeeperError(f"`jupyterhub upgrade-db` of {venv.name} failed on the copy "
                             f"{copy}: {(done.stderr or done.stdout).strip()[-500:]}",
                             hint="the hub's own database was not touched")
    found, wanted = revision(copy), head_revision(venv)
    if found != wanted:
        raise HubkeeperError(f"the upgraded copy {copy} is at revision {found}, the JupyterHub "
                             f"of {venv.name} expects {wanted}")
    return found


def replace(database: Path, upgraded: Path, kept: Path) -> None:
    """The upgraded copy in the database's place; the original kept as `kept` (a hard link:
    the same bytes, never copied). Run again after a kill, it does what is left."""
    if not kept.exists():
        tmp = kept.with_name(kept.name + ".tmp")
        tmp.unlink(missing_ok=True)
        os.link(database, tmp)
        os.replace(tmp, kept)
        fsync_dir(kept.parent)
    if upgraded.exists():
        _remove_side_files(database)
        os.replace(upgraded, database)
        fsync_dir(database.parent)


def put_back(database: Path, kept: Path, digest: str) -> None:
    """The kept original back in the database's place, checked against its SHA-256."""
    if sha256(kept) != digest:
        raise HubkeeperError(f"{kept} no longer matches the database it kept (SHA-256)",
                             hint="restore the database from the snapshot taken before the "
                             "upgrade (`hubkeeper restore --all`)")
    if database.exists() and sha256(database) == digest:
        _remove_side_files(database)
        return
    tmp = database.with_name(f".{database.name}.rollback")
    tmp.unlink(missing_ok=True)
    shutil.copyfile(kept, tmp)
    os.chmod(tmp, 0o600)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    _remove_side_files(database)
    os.replace(tmp, database)
    fsync_dir(database.parent)


def _remove_side_files(database: Path) -> None:
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            (database.parent / (database.name + suffix)).unlink()
