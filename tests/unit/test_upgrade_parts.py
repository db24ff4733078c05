"""The pure parts of `upgrade`: the banner's text, the database kept and put back byte for
byte, the record's finish-or-undo rule."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.host import hubdb
from hubkeeper.hub.announcement import Announcement
from hubkeeper.lifecycle.upgrade import unfinished


def test_the_banner_is_the_file_escaped_or_nothing(tmp_path: Path) -> None:
    banner = Announcement(str(tmp_path / "announcement.txt"))
    assert banner(None) == ""
    (tmp_path / "announcement.txt").write_text("Upgrade at <b>5</b> & back soon\n")
    assert banner(None) == "Upgrade at &lt;b&gt;5&lt;/b&gt; &amp; back soon"
    (tmp_path / "announcement.txt").write_text("x" * 10_000)
    assert len(banner(None)) == 2000


def _database(path: Path, revision: str) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
    connection.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    connection.commit()
    connection.close()


def test_the_old_database_is_kept_and_put_back_byte_for_byte(tmp_path: Path) -> None:
    database, upgraded, kept = (tmp_path / "jupyterhub.sqlite", tmp_path / "up.sqlite",
                                tmp_path / "work" / "before.sqlite")
    kept.parent.mkdir()
    _database(database, "old")
    _database(upgraded, "new")
    original = database.read_bytes()
    digest = hubdb.sha256(database)
    assert hubdb.revision(database) == "old" and hubdb.revision(tmp_path / "none") is None
    hubdb.replace(database, upgraded, kept)
    hubdb.replace(database, upgraded, kept)  # again, as after a kill: nothing more to do
    assert hubdb.revision(database) == "new" and kept.read_bytes() == original
    (tmp_path / "jupyterhub.sqlite-journal").write_bytes(b"a hot journal of the new one")
    hubdb.put_back(database, kept, digest)
    assert database.read_bytes() == original
    assert not (tmp_path / "jupyterhub.sqlite-journal").exists()
    kept.write_bytes(b"damaged")
    with pytest.raises(HubkeeperError, match="no longer matches"):
        hubdb.put_back(database, kept, digest)


def test_an_upgrade_is_unfinished_until_done_or_rolled_back() -> None:
    assert unfinished({"state": "running"}) and unfinished({"state": "rolling-back"})
    assert not unfinished({"state": "done"}) and not unfinished({"state": "rolled-back"})
    assert not unfinished(None)


def test_the_canary_name_is_reserved_for_the_canary() -> None:
    """Neither a roster line nor a first login may reach the canary's journaled account."""
    from hubkeeper.host.canary import CANARY_USER
    from hubkeeper.roster.policy import name_problem, portable_name

    assert name_problem(CANARY_USER) == f"{CANARY_USER!r} is reserved for the system or a service"
    with pytest.raises(ValueError, match="reserved"):
        portable_name("Hubkeeper-Canary@example.edu")
    # its accounts, one per hub, neither
    from hubkeeper.host.canary import canary_account

    assert canary_account("physics") == "hkcanary-physics"
    assert "reserved" in (name_problem(canary_account("physics")) or "")
    long = canary_account("a" * 63)
    assert len(long) <= 32 and long != canary_account("a" * 62) and long.startswith("hkcanary-")


def test_the_database_head_is_read_from_a_jupyterhub_wheel(tmp_path) -> None:
    import zipfile

    from hubkeeper.host.hubdb import head_in_wheel

    wheel = tmp_path / "jupyterhub-9.0.0-py3-none-any.whl"
    scripts = {  # a chain a <- b <- c, with the annotations alembic writes today
        "a": 'revision = "aaaaaaaaaaaa"\ndown_revision = None\n',
        "b": "revision: str = 'bbbbbbbbbbbb'\ndown_revision: Union[str, None] = 'aaaaaaaaaaaa'\n",
        "c": "revision = 'cccccccccccc'\ndown_revision = 'bbbbbbbbbbbb'\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, body in scripts.items():
            archive.writestr(f"jupyterhub/alembic/versions/{name}.py", '"""x"""\n' + body)
        archive.writestr("jupyterhub/other.py", "revision = 'ffffffffffff'\n")
    assert head_in_wheel(wheel) == "cccccccccccc"
    with zipfile.ZipFile(wheel, "a") as archive:  # a second head: no single answer
        archive.writestr("jupyterhub/alembic/versions/d.py",
                         "revision = 'dddddddddddd'\ndown_revision = 'aaaaaaaaaaaa'\n")
    assert head_in_wheel(wheel) is None
