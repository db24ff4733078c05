"""Read a roster CSV: every row checked, every problem reported at its line."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import Problem
from hubkeeper.roster.policy import name_problem

COLUMNS = ("username", "groups", "name", "email", "password")
MIN_PASSWORD = 8


@dataclass(frozen=True)
class Row:
    line: int
    username: str
    groups: tuple[str, ...]
    name: str | None
    email: str | None
    password: str | None


def _control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def read_roster_csv(path: Path) -> tuple[list[Row], list[Problem]]:
    shown = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [Problem(shown, None, None, "", f"cannot read: {exc.strerror}")]
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        return [], [Problem(shown, line, None, "", "a binary file, not a CSV text file")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [Problem(shown, line, None, "", f"not UTF-8 text (byte {exc.start}); save "
                                                   "the file as UTF-8")]
    return parse_roster_csv(text, shown)


def parse_roster_csv(text: str, filename: str) -> tuple[list[Row], list[Problem]]:
    problems: list[Problem] = []

    def problem(line: int, field: str, message: str) -> None:
        problems.append(Problem(filename, line, None, field, message))

    if not text.strip():
        problem(1, "", "empty file: the first line must be a header with at least 'username' "
                f"(columns: {', '.join(COLUMNS)})")
        return [], problems
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [column.strip().lower() for column in next(reader)]
    except csv.Error as exc:
        problem(1, "", f"not a CSV header: {exc}")
        return [], problems
    for column in header:
        if column not in COLUMNS:
            problem(1, column, f"unknown column {column!r}; columns: {', '.join(COLUMNS)}")
        elif header.count(column) > 1:
            problem(1, column, f"column {column!r} appears twice")
    if "username" not in header:
        problem(1, "username", f"no 'username' column in the header {header!r}")
    if problems:
        return [], problems

    rows: list[Row] = []
    first: dict[str, int] = {}
    line = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problem(reader.line_num, "", f"not valid CSV: {exc}")
            break
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            problem(line, "", f"{len(values)} columns, but the header has {len(header)}")
            continue
        cells = dict(zip(header, (value.strip() for value in values), strict=True))
        row_problems = len(problems)
        username = cells["username"]
        reason = name_problem(username)
        if reason:
            problem(line, "username", reason)
        elif username in first:
            problem(line, "username", f"{username!r} is listed twice (first at line "
                                      f"{first[username]})")
        groups = tuple(cells.get("groups", "").replace(";", " ").split())
        for group in groups:
            reason = name_problem(group, "group name")
            if reason:
                problem(line, "groups", reason)
        name = cells.get("name") or None
        if name and (":" in name or _control(name) or len(name) > 200):
            problem(line, "name", "a name may not contain ':' or control characters, and "
                                  "has at most 200 characters")
        email = cells.get("email") or None
        if email and ("@" not in email or _control(email) or " " in email):
            problem(line, "email", f"{email!r} is not an e-mail address")
        password = cells.get("password") or None
        if password is not None and (len(password) < MIN_PASSWORD or _control(password)):
            problem(line, "password", f"at least {MIN_PASSWORD} characters, no control "
                                      "characters (or leave it empty to generate one)")
        if len(problems) == row_problems:
            first.setdefault(username, line)
            rows.append(Row(line, username, groups, name, email, password))
    return rows, problems
