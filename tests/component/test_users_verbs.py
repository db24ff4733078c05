"""`hubkeeper users …` edits hub.yaml round-trip and applies; `adopt` restores lost accounts."""

from __future__ import annotations

import json
import pwd
import subprocess
from pathlib import Path

import pytest

from tests.support.hubproc import HUBKEEPER

pytestmark = [pytest.mark.component, pytest.mark.root]

CONFIG = """\
# Physics 101 -- keep this comment
hub: {name: phys, state_dir: state}
auth: {kind: pam}
users:
  admins: [hktestprof]   # the teacher
  roster:
    ranges: ["hktestws{1..2}"]   # the workshop
"""


def hk(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HUBKEEPER, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=300)


def test_add_lock_unlock_keep_comments_and_apply(workdir: Path, clean_accounts) -> None:
    config = workdir / "hub.yaml"
    config.write_text(CONFIG)
    added = hk(config, "users", "add", "hktestann", "--group", "hktestst", "--name", "Ann A")
    assert added.returncode == 0, added.stderr
    assert "create-account hktestann" in added.stdout
    text = config.read_text()
    assert text.startswith("# Physics 101 -- keep this comment\n")
    for line in CONFIG.splitlines():
        assert line in text, f"lost line {line!r}"  # comments and order kept
    assert "hktestst" in {g for g in subprocess.run(["id", "-nG", "hktestann"],
                                                    capture_output=True, text=True
                                                    ).stdout.split()}

    locked = hk(config, "users", "lock", "hktestws2")
    assert locked.returncode == 0, locked.stderr
    assert "lock hktestws2" in locked.stdout
    assert Path("/etc/shadow").read_text().split("hktestws2:", 1)[1].startswith("!")
    listed = json.loads(hk(config, "users", "list", "--json").stdout)
    rows = {row["name"]: row for row in listed["users"]}
    assert rows["hktestws2"]["locked"] is True
    assert rows["hktestprof"]["admin"] is True
    assert rows["hktestann"]["uid"] == pwd.getpwnam("hktestann").pw_uid
    assert all(row["managed"] for row in rows.values())

    unlocked = hk(config, "users", "unlock", "hktestws2")
    assert unlocked.returncode == 0, unlocked.stderr
    assert not Path("/etc/shadow").read_text().split("hktestws2:", 1)[1].startswith("!")
    assert "locked" not in config.read_text()


def test_bad_names_change_nothing(workdir: Path, clean_accounts) -> None:
    config = workdir / "hub.yaml"
    config.write_text(CONFIG)
    for args, expected in [
        (("users", "add", "Root"), "command line: NAME: 'Root' has upper-case letters"),
        (("users", "add", "root"), "command line: NAME: 'root' is reserved"),
        (("users", "add", "ann", "-g", "a;b"), "command line: --group: 'a;b' is not"),
        (("users", "lock", "nobodyhere"), "'nobodyhere' is not on the roster"),
        (("users", "add", "hktestws1"), "'hktestws1' is already on the roster"),
    ]:
        result = hk(config, *args)
        assert result.returncode in (1, 2), result
        assert expected in result.stderr, result.stderr
        assert config.read_text() == CONFIG
    assert not (workdir / "state").exists()


def test_adopt_gives_a_lost_account_back_with_its_uid(workdir: Path, clean_accounts) -> None:
    config = workdir / "hub.yaml"
    config.write_text(CONFIG)
    assert hk(config, "apply").returncode == 0
    account = pwd.getpwnam("hktestws1")
    (Path(account.pw_dir) / "thesis.txt").write_text("chapter 1")
    # /etc loses the account (as when /etc is restored from an old backup): the home stays.
    subprocess.run(["userdel", "hktestws1"], check=True)
    subprocess.run(["groupdel", "hktestws1"], capture_output=True)

    shown = hk(config, "adopt")
    assert shown.returncode == 0, shown.stderr
    assert f"would adopt (run with --yes):\n  hktestws1: uid {account.pw_uid}" in shown.stdout
    with pytest.raises(KeyError):
        pwd.getpwnam("hktestws1")  # only shown, not done

    done = hk(config, "adopt", "--yes")
    assert done.returncode == 0, done.stderr
    back = pwd.getpwnam("hktestws1")
    assert (back.pw_uid, back.pw_dir) == (account.pw_uid, account.pw_dir)
    assert Path(back.pw_dir, "thesis.txt").read_text() == "chapter 1"
    # The journal knows it as ours, so apply gives it a new password and then is at rest.
    applied = hk(config, "apply")
    assert "set-password hktestws1" in applied.stdout, applied.stdout
    assert json.loads(hk(config, "plan", "--json").stdout)["actions"] == []
