"""retire's pure parts: comparing a live tree with an archive's member list, the checks that
refuse to remove a directory, the retirement record that stops `up` and `apply`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.lifecycle.manifest import entry_for, walk
from hubkeeper.lifecycle.retirement import (
    Tree,
    archive_verdict,
    tree_changes,
    tree_problem,
)
from hubkeeper.state.statedir import StatePaths, check_not_retired, ensure_layout


def members(root: Path) -> list[dict]:
    """The member list an archive records for `root` (as lifecycle/archive.py does)."""
    found = (entry_for(root, path, info) for path, info in walk(root))
    return [{k: v for k, v in asdict(e).items() if v is not None and k != "ino"}
            for e in found if e is not None]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    (root / "work").mkdir(parents=True)
    (root / "work" / "a.py").write_text("print(1)\n")
    (root / "notes.txt").write_text("week 1\n")
    (root / "data").symlink_to("/srv/data")
    return root


def test_an_unchanged_tree_has_no_changes(home: Path) -> None:
    assert tree_changes(home, members(home)) == []


def test_every_kind_of_change_is_named(home: Path) -> None:
    listed = members(home)
    with open(home / "notes.txt", "a") as notes:
        notes.write("week 2\n")
    os.utime(home / "work" / "a.py", ns=(1, 1))  # touched: same size, another mtime
    (home / "work" / "new.py").write_text("")
    (home / "data").unlink()
    (home / "data").symlink_to("/elsewhere")
    os.utime(home / "data", ns=(1, 1), follow_symlinks=False)
    assert tree_changes(home, listed) == [
        "data: mtime, link target changed since the archive",
        "notes.txt: size, mtime changed since the archive",
        "work/a.py: mtime changed since the archive",
        "work/new.py: new since the archive",
    ]


def test_removed_paths_count_unless_a_removal_had_begun(home: Path) -> None:
    listed = members(home)
    (home / "work" / "a.py").unlink()
    assert tree_changes(home, listed) == ["work/a.py: removed since the archive"]
    # A home a killed retire was removing: what is gone is in the archive, nothing is lost.
    assert tree_changes(home, listed, allow_missing=True) == []
    (home / "late.txt").write_text("x")
    assert tree_changes(home, listed, allow_missing=True) == ["late.txt: new since the archive"]


def test_a_file_replaced_by_a_folder_is_a_change(home: Path) -> None:
    listed = members(home)
    (home / "notes.txt").unlink()
    (home / "notes.txt").mkdir()
    assert tree_changes(home, listed) == ["notes.txt: type changed since the archive"]


def test_directories_that_must_not_be_removed(tmp_path: Path, home: Path) -> None:
    me = os.geteuid()
    assert tree_problem(home, me, {}) is None
    assert tree_problem(home, me + 1, {}) == f"belongs to uid {me}, not to uid {me + 1}"
    assert tree_problem(Path("/"), None, {}) == "is /"
    link = tmp_path / "link"
    link.symlink_to(home)
    assert "is not a directory" in tree_problem(link, me, {})
    assert "is not a directory" in tree_problem(home / "notes.txt", me, {})
    inner = home / "work"
    assert tree_problem(home, me, {inner: "the home of bob"}) == (
        f"holds the home of bob ({inner})")
    assert tree_problem(home, me, {home: "the archive"}) == f"holds the archive ({home})"
    assert tree_problem(home, me, {tmp_path: "the state directory"}) is None  # outside it
    assert "cannot be examined" in tree_problem(tmp_path / "absent", me, {})


def test_no_archive_or_a_broken_manifest_is_refused(tmp_path: Path, home: Path) -> None:
    trees = [Tree("home", "alice", home, "alice")]
    verdict = archive_verdict(None, "course", trees, lambda: [])
    assert not verdict.ok and verdict.problems == ("no archive of this hub is recorded",)
    verdict = archive_verdict(tmp_path, "course", trees, lambda: [])
    assert not verdict.ok and "MANIFEST.json" in verdict.problems[0]


def test_a_retired_state_dir_refuses_a_new_hub(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    ensure_layout(paths)
    check_not_retired(paths)
    paths.retired.write_text(json.dumps({"state": "retiring"}))
    with pytest.raises(HubkeeperError, match="began and did not finish") as raised:
        ensure_layout(paths)
    assert raised.value.hint == "finish it with `hubkeeper retire --yes`"
    paths.version_file.unlink()  # a finished retire removes VERSION too
    paths.retired.write_text(json.dumps({
        "state": "retired", "hub": "phys101", "finished": "2025-06-30T12:00:00+00:00",
        "archive": {"path": "/var/backups/hubkeeper/phys101-20250630T110000"}}))
    with pytest.raises(HubkeeperError, match="hub 'phys101' was retired on 2025-06-30") as raised:
        ensure_layout(paths)
    assert "new hub.state_dir" in raised.value.hint
    assert not paths.version_file.exists()
