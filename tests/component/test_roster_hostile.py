"""Hostile rosters: each gets a precise error at its line, and the machine is left exactly as it
was (/etc/passwd, /etc/group, /etc/shadow, /etc/gshadow byte for byte, /home's listing)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.support.hubproc import HUBKEEPER

pytestmark = [pytest.mark.component, pytest.mark.root]

HEADER = "username,groups,name,email,password\n"

# (case, file content, expected text after "class.csv:")
HOSTILE: list[tuple[str, bytes, str]] = [
    ("system account", b"root,,,,\n", "2: username: 'root' is reserved"),
    ("service account", b"www-data,,,,\n", "2: username: 'www-data' is reserved"),
    ("systemd account", b"systemd-oops,,,,\n", "2: username: 'systemd-oops' is reserved"),
    ("path traversal", b"../etc,,,,\n", "2: username: '../etc' looks like a path"),
    ("slash", b"a/b,,,,\n", "2: username: 'a/b' looks like a path"),
    ("shell separator", b"ann;reboot,,,,\n", "2: username: 'ann;reboot' is not a portable "
                                              "Linux name (because of ';')"),
    ("command substitution", b"$(reboot),,,,\n", "2: username: '$(reboot)' is not a portable"),
    ("backticks", b"`id`,,,,\n", "2: username: '`id`' is not a portable"),
    ("leading dash", b"-rf,,,,\n", "2: username: '-rf' starts with '-'"),
    ("33 characters", b"a" * 33 + b",,,,\n", "2: username: '" + "a" * 33 + "' has 33 "
                                                 "characters; at most 32"),
    ("non-ASCII", "jürgen,,,,\n".encode(), "2: username: 'jürgen' has non-ASCII characters"),
    ("upper case", b"Ann,,,,\n", "2: username: 'Ann' has upper-case letters; did you mean "
                                 "'ann'?"),
    ("duplicate", b"ann,,,,\nbob,,,,\nann,,,,\n", "4: username: 'ann' is listed twice "
                                                  "(first at line 2)"),
    ("empty name", b",students,Ann,,\n", "2: username: empty user name"),
    ("leading digit", b"1ann,,,,\n", "2: username: '1ann' is not a portable Linux name"),
    ("newline in a quoted name", b'"ann\nroot",,,,\n', "3: username: 'ann\\nroot' is not"),
    ("reserved group", b"ann,sudo,,,\n", "2: groups: 'sudo' is reserved"),
    ("bad group", b"ann,grp$,,,\n", "2: groups: 'grp$' is not a portable Linux name"),
    ("short password", b"ann,,,,abc\n", "2: password: at least 8 characters"),
    ("colon in name", b"ann,,Ann:0:0,,\n", "2: name: a name may not contain ':'"),
    ("not an e-mail", b"ann,,,not-an-email,\n", "2: email: 'not-an-email' is not an e-mail"),
    ("missing columns", b"ann,students\n", "2: 2 columns, but the header has 5"),
    ("too many columns", b"ann,,,,,extra\n", "2: 6 columns, but the header has 5"),
    ("unterminated quote", b'"ann,,,,\n', "2: not valid CSV: unexpected end of data"),
]
WHOLE_FILES: list[tuple[str, bytes, str]] = [
    ("empty file", b"", "1: empty file: the first line must be a header"),
    ("only blank lines", b"\n\n  \n", "1: empty file"),
    ("binary file", b"\x7fELF\x02\x01\x01\x00\x00\x00", "1: a binary file, not a CSV"),
    ("not UTF-8", "username\nj\u00fcrgen\n".encode("latin-1"), "2: not UTF-8 text (byte 10)"),
    ("no username column", b"name,email\nAnn,a@b.c\n", "1: username: no 'username' column"),
    ("unknown column", b"username,passwd\nann,x\n", "1: passwd: unknown column 'passwd'"),
    ("duplicate column", b"username,username\nann,bob\n", "1: username: column 'username' "
                                                           "appears twice"),
]


def machine() -> dict[str, bytes | list[str]]:
    state: dict[str, bytes | list[str]] = {
        name: Path(f"/etc/{name}").read_bytes()
        for name in ("passwd", "group", "shadow", "gshadow")}
    state["/home"] = sorted(os.listdir("/home"))
    return state


@pytest.mark.parametrize(
    ("content", "expected"),
    [(HEADER.encode() + rows, expected) for _, rows, expected in HOSTILE]
    + [(content, expected) for _, content, expected in WHOLE_FILES],
    ids=[case for case, _, _ in HOSTILE + WHOLE_FILES])
def test_hostile_roster_changes_nothing(workdir: Path, content: bytes, expected: str) -> None:
    require_root()
    (workdir / "class.csv").write_bytes(content)
    config = workdir / "hub.yaml"
    config.write_text("hub: {state_dir: state}\nauth: {kind: pam}\nusers:\n"
                      "  roster: {csv: class.csv}\n")
    before = machine()
    result = subprocess.run([HUBKEEPER, "--config", str(config), "apply"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{workdir / 'class.csv'}:{expected}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert machine() == before
    assert not (workdir / "state").exists()


def test_range_too_large_in_hub_yaml(workdir: Path) -> None:
    config = workdir / "hub.yaml"
    config.write_text("users:\n  roster:\n    ranges: ['ws{1..99999}']\n")
    result = subprocess.run([HUBKEEPER, "--config", str(config), "plan"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert (f"{config}:3:14: users.roster.ranges[0]: 'ws{{1..99999}}' makes 99999 names; "
            "at most 5000") in result.stderr


def test_reserved_name_in_hub_yaml(workdir: Path) -> None:
    config = workdir / "hub.yaml"
    config.write_text("users:\n  admins: [root]\n")
    result = subprocess.run([HUBKEEPER, "--config", str(config), "check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{config}:2:12: users.admins[0]: 'root' is reserved" in result.stderr
