"""`hubkeeper check` as a real process: every problem at once, and a new course before its
first `apply` (its accounts not made yet) passes with what apply will create."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX, require_root
from tests.support.hubproc import HUBKEEPER, write_config

pytestmark = [pytest.mark.component, pytest.mark.root]


def run_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUBKEEPER, "--config", str(config), "check"], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_check_reports_mode_backend_and_roster_group_problems_in_one_run(
        workdir: Path) -> None:
    require_root()  # personal mode as root on 0.0.0.0 is the mode problem
    config = write_config(workdir, mode="personal", extra=(
        "backend: docker\n"
        "environments:\n"
        "  py:\n"
        "    image: debian:12\n"
        "    groups: [nosuchgroup]\n"))
    text = config.read_text().replace("  ip: 127.0.0.1\n", "  ip: 0.0.0.0\n")
    config.write_text(text)
    lines = text.splitlines()
    ip_line = lines.index("  ip: 0.0.0.0") + 1
    backend_line = lines.index("backend: docker") + 1
    groups_line = lines.index("    groups: [nosuchgroup]") + 1
    before = sorted(path.name for path in workdir.iterdir())

    result = run_check(config)

    assert result.returncode == 2, result.stderr
    assert f"{config}:{ip_line}:7: hub.ip: personal mode as root would give every user a " \
           "root shell on 0.0.0.0" in result.stderr
    assert f"{config}:{backend_line}:10: backend: docker runs servers as the users' Linux " \
           "accounts, which needs hub.mode system" in result.stderr
    assert f"{config}:{groups_line}:14: environments.py.groups[0]: 'nosuchgroup' is not a " \
           "roster group" in result.stderr
    # Reported in the order of hub.yaml's lines; nothing made (no state directory).
    assert result.stderr.index(f":{ip_line}:") < result.stderr.index(f":{backend_line}:") \
        < result.stderr.index(f":{groups_line}:")
    assert sorted(path.name for path in workdir.iterdir()) == before


def test_check_before_the_first_apply_says_what_apply_will_create(workdir: Path,
                                                                 accounts) -> None:
    ann, bob = f"{TEST_ACCOUNT_PREFIX}c1", f"{TEST_ACCOUNT_PREFIX}c2"
    lab = f"{TEST_ACCOUNT_PREFIX}lab"
    config = write_config(workdir, mode="system", auth="pam", users=(
        f"  allowed: [{ann}, {bob}]\n  groups:\n    {lab}: [{ann}]\n"))

    result = run_check(config)

    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "system mode" in result.stdout
    assert "note: apply will create 2 accounts, 1 group" in result.stdout
    assert not (workdir / "state").exists()

    # A roster name that is an account hubkeeper did not make is still refused.
    accounts(ann)
    result = run_check(config)
    assert result.returncode == 2, result.stdout
    assert f"{ann!r} is an existing account" in result.stderr
    assert "hubkeeper did not create" in result.stderr
    assert not (workdir / "state").exists()
