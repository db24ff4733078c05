"""The upgrade canary's Linux account (host/canary.py), as root: one per hub, journaled under
its account name like every journal account, so that the journal's readers (the spawner,
the roster's sync, retire) find it where they look."""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

import pytest

from hubkeeper.host.canary import CANARY_ORIGIN, CANARY_USER, canary_account, ensure_account
from hubkeeper.state.identity import journal_account
from hubkeeper.state.journal import AccountRecord, Journal
from tests.conftest import TEST_ACCOUNT_PREFIX as P

pytestmark = [pytest.mark.component, pytest.mark.root]


@pytest.fixture
def journal(tmp_path: Path):
    path = tmp_path / "journal.json"
    Journal.load(path).save()
    accounts = [canary_account(f"{P}can"), canary_account(f"{P}old")]
    yield path
    for account in accounts:
        subprocess.run(["userdel", "--remove", account], capture_output=True)


def test_the_canary_account_is_made_once_and_keyed_by_its_name(journal: Path) -> None:
    account = ensure_account(journal, f"{P}can")
    assert account == canary_account(f"{P}can") == f"hkcanary-{P}can"
    uid = pwd.getpwnam(account).pw_uid
    assert ensure_account(journal, f"{P}can") == account  # again: nothing new
    record = Journal.load(journal).accounts[account]  # the key retire deletes by
    assert (record.user, record.origin, record.state, record.uid) == (
        CANARY_USER, CANARY_ORIGIN, "created", uid)
    assert journal_account(str(journal), CANARY_USER).account == account  # the spawner's view


def test_a_record_keyed_by_the_hub_user_is_rekeyed_by_its_account(journal: Path) -> None:
    account = canary_account(f"{P}old")
    loaded = Journal.load(journal)
    loaded.accounts[CANARY_USER] = AccountRecord(account=account, user=CANARY_USER,
                                                 state="creating", origin=CANARY_ORIGIN)
    loaded.save()
    assert ensure_account(journal, f"{P}ignored") == account  # the journal's account kept
    assert set(Journal.load(journal).accounts) == {account}
