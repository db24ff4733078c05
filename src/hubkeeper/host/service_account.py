"""hubkeeper's own accounts on the machine (not roster users): the canary's and the web
service's. Each is made once, journaled intent first (state `creating`, then `created`
with its ids), under a key of its own in the journal with its `origin`, so that the
roster's sync never takes it for a user gone from the roster, and `retire` removes it with
the others."""

from __future__ import annotations

import pwd
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.state.journal import AccountRecord, Journal


def ensure_account(journal_path: Path, key: str, account: str, origin: str, comment: str,
                   useradd: Sequence[str] = ("--create-home",),
                   user: str | None = None) -> pwd.struct_passwd:
    """The account `account` recorded under `key` (for the hub user `user`, default `key`),
    made with `useradd` options if missing. A journal that already records one under `key`
    keeps its account name."""
    user = user or key
    journal = Journal.load(journal_path)
    record = journal.accounts.get(key)
    account = record.account if record is not None else account
    try:
        entry: pwd.struct_passwd | None = pwd.getpwnam(account)
    except KeyError:
        entry = None
    if record is not None and record.state == "created" and entry is not None:
        return entry
    if entry is not None and record is None:
        raise HubkeeperError(f"an account {account!r} exists that hubkeeper did not make",
                             hint=f"remove or rename it; hubkeeper makes its own {comment} "
                             "account")
    journal.accounts[key] = AccountRecord(account=account, user=user, state="creating",
                                          origin=origin)
    journal.save()
    if entry is None:
        done = subprocess.run(["useradd", *useradd, "--shell", "/usr/sbin/nologin",
                               "--comment", comment, account],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise HubkeeperError(f"useradd {account} failed: {done.stderr.strip()}")
        entry = pwd.getpwnam(account)
    journal.accounts[key] = AccountRecord(
        account=account, user=user, state="created", uid=entry.pw_uid,
        gid=entry.pw_gid, home=entry.pw_dir, origin=origin)
    journal.save()
    return entry
