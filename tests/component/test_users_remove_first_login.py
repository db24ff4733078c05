"""`users remove` of someone an identity provider admitted at their first login (the
setting and `users admit` of tests/component/test_first_login.py)."""

from __future__ import annotations

import json
import pwd
from pathlib import Path

import pytest

from tests.component.test_first_login import ANN as FIRST
from tests.component.test_first_login import (
    STUDENTS,
    config,  # noqa: F401 -- the fixture
)
from tests.component.test_first_login import admit as first_login_admit
from tests.component.test_users_remove import exists, hk, ok

pytestmark = [pytest.mark.component, pytest.mark.root]


def test_a_first_login_account_is_removed_and_forgotten(config: Path) -> None:  # noqa: F811 -- the fixture
    """Someone an identity provider admitted (`users admit`, what the hub runs at their
    first login): archived, removed, and off the admitted people, so `apply` does not make
    the account again."""
    assert first_login_admit(config, FIRST, "github:101", STUDENTS).returncode == 0
    home = Path(pwd.getpwnam(FIRST).pw_dir)
    (home / "work.ipynb").write_text("{}")
    shown = ok(hk(config, "users", "remove", FIRST))
    assert f"forget that github admitted {FIRST} at their first login" in shown.stdout
    done = json.loads(ok(hk(config, "users", "remove", FIRST, "--yes", "--json")).stdout)
    assert done["status"] == "removed"
    assert not exists(FIRST) and not home.exists()
    admitted = config.parent / "state" / "admitted.json"
    assert FIRST not in json.loads(admitted.read_text())["users"]
    assert json.loads(ok(hk(config, "plan", "--json")).stdout)["actions"] == []
    ok(hk(config, "export", FIRST, "--from", done["archive"], "--to",
          str(config.parent / "zips")))
