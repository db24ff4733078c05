"""`hubkeeper users …` edits hub.yaml round-trip and applies; `adopt` restores lost accounts."""

from __future__ import annotations

import json
import pwd
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX as P
from tests.support.hubproc import hk

pytestmark = [pytest.mark.component, pytest.mark.root]

PROF, ANN, ST, WS1, WS2 = f"{P}prof", f"{P}ann", f"{P}st", f"{P}ws1", f"{P}ws2"
CONFIG = f"""\
# Physics 101 -- keep this comment
hub: {{name: phys, state_dir: state}}
auth: {{kind: pam}}
users:
  admins: [{PROF}]   # the teacher
  roster:
    ranges: ["{P}ws{{1..2}}"]   # the workshop
"""


def test_add_lock_unlock_keep_comments_and_apply(workdir: Path, clean_accounts) -> None:
    config = workdir / "hub.yaml"
    config.write_text(CONFIG)
    added = hk(config, "users", "add", ANN, "--group", ST, "--name", "Ann A")
    assert added.returncode == 0, added.stderr
    assert f"create-account {ANN}" in added.stdout
    text = config.read_text()
    assert text.startswith("# Physics 101 -- keep this comment\n")
    for line in CONFIG.splitlines():
        assert line in text, f"lost line {line!r}"  # comments and order kept
    assert ST in {g for g in subprocess.run(["id", "-nG", ANN],
                                                    capture_output=True, text=True
                                                    ).stdout.split()}

    locked = hk(config, "users", "lock", WS2)
    assert locked.returncode == 0, locked.stderr
    assert f"lock {WS2}" in locked.stdout
    assert Path("/etc/shadow").read_text().split(f"{WS2}:", 1)[1].startswith("!")
    listed = json.loads(hk(config, "users", "list", "--json").stdout)
    rows = {row["name"]: row for row in listed["users"]}
    assert rows[WS2]["locked"] is True
    assert rows[PROF]["admin"] is True
    assert rows[ANN]["uid"] == pwd.getpwnam(ANN).pw_uid
    assert all(row["managed"] for row in rows.values())

    unlocked = hk(config, "users", "unlock", WS2)
    assert unlocked.returncode == 0, unlocked.stderr
    assert not Path("/etc/shadow").read_text().split(f"{WS2}:", 1)[1].startswith("!")
    assert "locked" not in config.read_text()


def test_bad_names_change_nothing(workdir: Path, clean_accounts) -> None:
    config = workdir / "hub.yaml"
    config.write_text(CONFIG)
    for args, expected in [
        (("users", "add", "Root"), "command line: NAME: 'Root' has upper-case letters"),
        (("users", "add", "root"), "command line: NAME: 'root' is reserved"),
        (("users", "add", "ann", "-g", "a;b"), "command line: --group: 'a;b' is not"),
        (("users", "lock", "nobodyhere"), "'nobodyhere' is not on the roster"),
        (("users", "add", WS1), f"'{WS1}' is already on the roster"),
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
    account = pwd.getpwnam(WS1)
    (Path(account.pw_dir) / "thesis.txt").write_text("chapter 1")
    # /etc loses the account (as when /etc is restored from an old backup): the home stays.
    subprocess.run(["userdel", WS1], check=True)
    subprocess.run(["groupdel", WS1], capture_output=True)

    shown = hk(config, "adopt")
    assert shown.returncode == 0, shown.stderr
    assert f"would adopt (run with --yes):\n  {WS1}: uid {account.pw_uid}" in shown.stdout
    with pytest.raises(KeyError):
        pwd.getpwnam(WS1)  # only shown, not done

    done = hk(config, "adopt", "--yes")
    assert done.returncode == 0, done.stderr
    back = pwd.getpwnam(WS1)
    assert (back.pw_uid, back.pw_dir) == (account.pw_uid, account.pw_dir)
    assert Path(back.pw_dir, "thesis.txt").read_text() == "chapter 1"
    # The journal knows it as ours, so apply gives it a new password and then is at rest.
    applied = hk(config, "apply")
    assert f"set-password {WS1}" in applied.stdout, applied.stdout
    assert json.loads(hk(config, "plan", "--json").stdout)["actions"] == []
