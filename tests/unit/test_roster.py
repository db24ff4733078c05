"""Roster parsing and merging, pure (no accounts are touched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubkeeper.base.errors import InvalidInput
from hubkeeper.config import load
from hubkeeper.roster import build_roster
from hubkeeper.roster.build import expand_range
from hubkeeper.roster.csvfile import parse_roster_csv, read_roster_csv


def test_spreadsheet_exports_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "class.csv"
    path.write_bytes(b"\xef\xbb\xbfUsername,Groups,Name\r\nann,students;tas,Ann A\r\n"
                     b"bob,  students  ,\r\n\r\n")
    rows, problems = read_roster_csv(path)
    assert problems == []
    assert [(r.line, r.username, r.groups, r.name) for r in rows] == [
        (2, "ann", ("students", "tas"), "Ann A"), (3, "bob", ("students",), None)]


def test_quoted_fields_keep_their_line_numbers() -> None:
    text = 'username,groups\nann,"students\ntas"\nBob,\n'
    rows, problems = parse_roster_csv(text, "c.csv")
    assert [(r.username, r.groups) for r in rows] == [("ann", ("students", "tas"))]
    assert [str(p) for p in problems] == [
        "c.csv:4: username: 'Bob' has upper-case letters; did you mean 'bob'?"]


@pytest.mark.parametrize(("pattern", "names"), [
    ("ws{1..3}", ["ws1", "ws2", "ws3"]),
    ("ws{08..10}", ["ws08", "ws09", "ws10"]),
    ("training_user{42..42}", ["training_user42"]),
])
def test_ranges(pattern: str, names: list[str]) -> None:
    assert expand_range(pattern) == names


@pytest.mark.parametrize(("pattern", "message"), [
    ("ws{3..1}", "counts down"),
    ("ws{1..9999}", "makes 9999 names; at most 5000"),
])
def test_bad_ranges(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand_range(pattern)


def test_every_source_merges_into_one_roster(tmp_path: Path) -> None:
    (tmp_path / "class.csv").write_text("username,groups,email\nann,students,a@x.org\n")
    (tmp_path / "hub.yaml").write_text(
        "users:\n  admins: [prof]\n  groups: {tas: [ann, zed]}\n  locked: [ws2]\n"
        "  account_prefix: jupyter-\n  roster:\n    csv: class.csv\n"
        "    entries: [{username: zed, name: Zed}]\n    ranges: ['ws{1..2}']\n")
    roster = build_roster(load(tmp_path / "hub.yaml"))
    members = roster.by_name()
    assert list(members) == ["ann", "zed", "ws1", "ws2", "prof"]
    assert members["ann"].groups == {"students", "tas"}
    assert members["ann"].email == "a@x.org"
    assert str(members["ann"].origin) == f"{tmp_path / 'class.csv'}:2"
    assert members["zed"].account == "jupyter-zed"
    assert members["prof"].admin and not members["ann"].admin
    assert members["ws2"].locked and [m.name for m in roster.active] == [
        "ann", "zed", "ws1", "prof"]
    assert roster.groups == ("students", "tas")


def test_a_person_described_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "class.csv").write_text("username\nann\n")
    (tmp_path / "hub.yaml").write_text(
        "users:\n  roster:\n    csv: class.csv\n    entries: [{username: ann}]\n")
    with pytest.raises(InvalidInput) as caught:
        build_roster(load(tmp_path / "hub.yaml"))
    assert str(caught.value.problems[0]) == (
        f"{tmp_path / 'hub.yaml'}:4:26: users.roster.entries[0].username: 'ann' is already "
        f"described at {tmp_path / 'class.csv'}:2")


def test_prefix_that_makes_an_account_too_long(tmp_path: Path) -> None:
    (tmp_path / "hub.yaml").write_text(
        "users:\n  account_prefix: jupyter-\n  allowed: [" + "a" * 30 + "]\n")
    with pytest.raises(InvalidInput) as caught:
        build_roster(load(tmp_path / "hub.yaml"))
    assert "(with account_prefix) has more than 32 characters" in str(caught.value.problems[0])
