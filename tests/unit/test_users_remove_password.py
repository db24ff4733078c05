"""`users remove` and `users password`: what they refuse before anything changes, the
hub.yaml edit that takes a name off the roster, and how the password is (not) shown."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from ruamel.yaml import YAML

from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.cli.output import emit, to_json
from hubkeeper.config.edit import edit_config
from hubkeeper.context.hub import Hub
from hubkeeper.plan.unlist import split_range, unlist
from hubkeeper.roster.build import expand_range
from hubkeeper.verbs.users_password import PasswordResult, set_password
from hubkeeper.verbs.users_remove import remove_user

ROSTER = """\
# the course -- keep this comment
hub: {name: lab, state_dir: state}
auth: {kind: pam}
users:
  admins: [uxprof, uxann]   # teachers
  allowed: [uxann]
  groups: {uxlab: [uxann, uxbob]}
  locked: [uxbob]
  roster:
    csv: class.csv
    entries:
      - {username: uxann, name: Ann}   # Ann's entry
      - {username: uxbob}
    ranges: ["uxws{01..12}"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "class.csv").write_text("username,groups\nuxcsv,uxlab\nuxcsv2,\n")
    path = tmp_path / "hub.yaml"
    path.write_text(ROSTER)
    return path


def test_split_range_keeps_every_other_name_and_its_padding() -> None:
    assert split_range("uxws{01..12}", "uxws05") == ["uxws{01..04}", "uxws{06..12}"]
    assert split_range("uxws{01..12}", "uxws01") == ["uxws{02..12}"]
    assert split_range("uxws{1..3}", "uxws3") == ["uxws{1..2}"]
    assert split_range("uxws{1..1}", "uxws1") == []
    assert split_range("uxws{1..3}", "uxws4") is None
    assert split_range("uxws{08..12}", "uxws09") == ["uxws{08..08}", "uxws{10..12}"]
    for pattern in split_range("uxws{001..120}", "uxws099") or []:
        assert "uxws099" not in expand_range(pattern)
    kept = [name for part in split_range("uxws{001..120}", "uxws099") or []
            for name in expand_range(part)]
    assert kept == [n for n in expand_range("uxws{001..120}") if n != "uxws099"]


def test_unlist_takes_the_name_from_every_place_and_keeps_comments(config: Path) -> None:
    changes: list[str] = []
    edit_config(config, lambda document: changes.extend(unlist(document, "uxann")))
    text = config.read_text()
    assert "uxann" not in text
    assert text.startswith("# the course -- keep this comment\n")
    assert "admins: [uxprof]" in text and "# teachers" in text
    assert "allowed" not in text  # emptied: the key goes
    assert "groups: {uxlab: [uxbob]}" in text
    assert "{username: uxbob}" in text
    assert changes == ["removed from users.admins", "removed from users.allowed",
                       "removed from users.groups.uxlab",
                       "its entry removed from users.roster.entries"]
    changes.clear()
    edit_config(config, lambda document: changes.extend(unlist(document, "uxws07")))
    body = YAML(typ="safe").load(config.read_text())
    assert body["users"]["roster"]["ranges"] == ["uxws{01..06}", "uxws{08..12}"]
    assert changes == ["users.roster.ranges: 'uxws{01..12}' -> 'uxws{01..06}', 'uxws{08..12}'"]
    assert unlist(YAML().load(config.read_text()), "uxnobody") == []


def test_a_csv_row_is_refused_at_its_line_and_nothing_changes(config: Path) -> None:
    hub = Hub.open(config, euid=0)
    with pytest.raises(HubkeeperError) as raised:
        remove_user(hub, "uxcsv2", yes=True)
    assert f"{config.parent / 'class.csv'}:3: 'uxcsv2' is a row of the roster CSV" in \
        raised.value.message
    assert "delete line 3" in (raised.value.hint or "")
    assert config.read_text() == ROSTER
    assert not (config.parent / "state").exists()


def test_unknown_and_bad_names_are_refused(config: Path) -> None:
    hub = Hub.open(config, euid=0)
    with pytest.raises(HubkeeperError, match="'uxnobody' is not on the roster"):
        remove_user(hub, "uxnobody", yes=True)
    with pytest.raises(InvalidInput) as raised:
        remove_user(hub, "../etc", yes=True)
    assert raised.value.problems[0].file == "command line"
    assert config.read_text() == ROSTER


def test_the_plan_of_a_user_never_applied_changes_nothing(config: Path) -> None:
    result = remove_user(Hub.open(config, euid=0), "uxann", yes=False)
    assert result.status == "plan" and result.archive is None
    assert result.steps[0] == "no home: nothing to archive"
    assert "hub.yaml: removed from users.groups.uxlab" in result.steps
    assert not any("userdel" in step for step in result.steps)
    assert config.read_text() == ROSTER


def test_an_edit_that_would_break_hub_yaml_is_refused_before_anything(tmp_path: Path
                                                                     ) -> None:
    config = tmp_path / "hub.yaml"
    text = ("hub: {name: lab, state_dir: state}\nauth: {kind: pam}\n"
            "users:\n  roster:\n    entries: [{username: uxann}]\n")
    config.write_text(text)
    with pytest.raises(InvalidInput) as raised:  # the last user: nobody could log in
        remove_user(Hub.open(config, euid=0), "uxann", yes=True)
    (problem,) = raised.value.problems
    assert (problem.line, problem.field) == (4, "users")  # its roster, emptied by the edit
    assert "nobody could log in" in problem.message
    assert config.read_text() == text
    assert not (tmp_path / "state").exists()


def test_password_refuses_unknown_locked_and_other_logins_located(config: Path,
                                                                  tmp_path: Path) -> None:
    hub = Hub.open(config, euid=0)
    with pytest.raises(InvalidInput) as raised:
        set_password(hub, "uxnobody")
    (problem,) = raised.value.problems
    assert (problem.file, problem.field) == ("command line", "NAME")
    assert "'uxnobody' is not on the roster" in problem.message
    with pytest.raises(InvalidInput) as raised:
        set_password(hub, "uxbob")
    (problem,) = raised.value.problems
    assert (problem.file, problem.line) == (str(config), 8)
    assert "'uxbob' is locked" in problem.message
    with pytest.raises(HubkeeperError, match="has no account hubkeeper made"):
        set_password(hub, "uxann")  # never applied here
    github = tmp_path / "github.yaml"
    github.write_text(ROSTER.replace("auth: {kind: pam}", "auth:\n  kind: shared-password")
                      .replace("state_dir: state}", "state_dir: state, mode: personal}"))
    with pytest.raises(InvalidInput) as raised:
        set_password(Hub.open(github, euid=4242), "uxann")
    (problem,) = raised.value.problems
    assert problem.line == 4 and "auth.kind 'shared-password'" in problem.message


def test_the_password_is_shown_only_on_a_terminal_and_never_in_json() -> None:
    result = PasswordResult("hub.yaml", "ann", "ann", "pam", "/state/credentials/c.csv",
                            "s3cret-password")
    assert "s3cret" not in repr(result)
    assert "s3cret" not in to_json(result)
    assert json.loads(to_json(result))["file"] == "/state/credentials/c.csv"
    piped = io.StringIO()
    emit(result, False, Console(file=piped, force_terminal=False, width=200))
    assert "s3cret" not in piped.getvalue() and "c.csv" in piped.getvalue()
    terminal = io.StringIO()
    emit(result, False, Console(file=terminal, force_terminal=True, width=200))
    assert "password: s3cret-password" in terminal.getvalue()
    as_json = io.StringIO()
    emit(result, True, Console(file=as_json, force_terminal=True, width=200))
    assert "s3cret" not in as_json.getvalue()


def test_retire_never_takes_a_one_user_archive_for_the_newest_of_the_hub(tmp_path: Path
                                                                         ) -> None:
    from hubkeeper.state.statedir import StatePaths
    from hubkeeper.verbs.retire import choose_archive

    paths = StatePaths(tmp_path / "state")
    paths.root.mkdir()
    whole, one = tmp_path / "lab-20260101T000000", tmp_path / "lab-ann-20260102T000000"
    (paths.root / "archives.json").write_text(json.dumps([
        {"path": str(whole), "finished": "x", "manifest_sha256": "aa"},
        {"path": str(one), "finished": "y", "manifest_sha256": "bb", "user": "ann"}]))
    assert choose_archive(paths, None, None) == (whole, "aa")
    assert choose_archive(paths, one, None) == (one, "bb")  # when given, it is checked
