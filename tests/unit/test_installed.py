"""Files hubkeeper writes outside its state dir: only its own, only unchanged ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.state.installed import file_state, install_file, remove_file
from hubkeeper.state.journal import Journal


def test_install_is_journaled_idempotent_and_removable(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json")
    target = tmp_path / "etc" / "site.conf"
    assert install_file(journal, target, b"one\n", "nginx-site", 0o644,
                        detail={"main_config": "/etc/nginx/nginx.conf"})
    assert target.read_bytes() == b"one\n" and (target.stat().st_mode & 0o777) == 0o644
    record = Journal.load(journal.path).files[str(target)]
    assert (record.kind, record.state, record.detail) == (
        "nginx-site", "created", {"main_config": "/etc/nginx/nginx.conf"})
    assert not install_file(journal, target, b"one\n", "nginx-site")  # nothing to do
    assert install_file(journal, target, b"two\n", "nginx-site")  # a new version replaces
    assert remove_file(journal, target)
    assert not target.exists() and str(target) not in Journal.load(journal.path).files
    assert not remove_file(journal, target)


def test_a_foreign_file_is_never_replaced(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json")
    target = tmp_path / "site.conf"
    target.write_text("someone else's\n")
    with pytest.raises(HubkeeperError, match="was not written by hubkeeper"):
        install_file(journal, target, b"ours\n", "nginx-site")
    assert target.read_text() == "someone else's\n" and not journal.files


def test_a_hand_edited_file_is_neither_replaced_nor_removed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json")
    target = tmp_path / "unit.service"
    install_file(journal, target, b"[Unit]\n", "systemd-unit")
    target.write_text("[Unit]\n# mine\n")
    assert "changed by hand" in (file_state(journal, target).problem or "")
    for action in (lambda: install_file(journal, target, b"[Unit]\nnew\n", "systemd-unit"),
                   lambda: remove_file(journal, target)):
        with pytest.raises(HubkeeperError, match="changed by hand"):
            action()
        assert target.read_text() == "[Unit]\n# mine\n"


def test_a_killed_install_is_finished_by_the_next(tmp_path: Path) -> None:
    """Journaled 'creating' with the old content still there: the file is ours."""
    journal = Journal(tmp_path / "journal.json")
    target = tmp_path / "hook.sh"
    install_file(journal, target, b"old\n", "certbot-hook")
    journal.files[str(target)].state = "creating"
    journal.files[str(target)].sha256 = "0" * 64  # the new content was never written
    journal.save()
    assert file_state(journal, target).problem is None
    assert install_file(journal, target, b"new\n", "certbot-hook")
    assert journal.files[str(target)].state == "created"
