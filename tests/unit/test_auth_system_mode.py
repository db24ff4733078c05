"""System mode's identity rules as pure checks: which logins hub.yaml may ask for, and which
account a hub user maps to (the journal's, never one found by name)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from hubkeeper.base.errors import InvalidInput
from hubkeeper.config import load
from hubkeeper.context.runtime import resolve_mode
from hubkeeper.state import identity
from hubkeeper.state.journal import AccountRecord, Journal


def hub_yaml(tmp_path: Path, mode: str, auth: str) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(f"hub:\n  name: lab\n  ip: 127.0.0.1\n  mode: {mode}\n{auth}"
                    "users:\n  allowed: [ann]\n")
    return path


@pytest.mark.parametrize(("auth", "where"), [
    ("auth:\n  kind: shared-password\n", ":6:9: auth.kind: 'shared-password' gives every "),
    ("auth:\n  kind: dummy\n", ":6:9: auth.kind: 'dummy' accepts any password, so in system"),
    ("auth:\n  kind: native\n  open_signup: true\n", ":7:16: auth.open_signup: in system "),
])
def test_system_mode_refuses_logins_that_let_anyone_be_anyone(tmp_path: Path, auth: str,
                                                               where: str) -> None:
    with pytest.raises(InvalidInput) as caught:  # hub.mode: system, at load
        load(hub_yaml(tmp_path, "system", auth))
    assert where in str(caught.value.problems[0])
    # hub.mode: auto is system mode as root: refused once the mode is known
    loaded = load(hub_yaml(tmp_path, "auto", auth))
    assert resolve_mode(loaded, is_root=False) == "personal"
    with pytest.raises(InvalidInput) as caught:
        resolve_mode(loaded, is_root=True)
    (problem,) = caught.value.problems
    assert where in str(problem) and "(hub.mode 'auto' is system mode as root)" in str(problem)


@pytest.mark.parametrize("auth", ["", "auth:\n  kind: pam\n", "auth:\n  kind: native\n",
                                  "auth:\n  kind: native\n  open_signup: false\n"])
def test_system_mode_takes_the_logins_that_bind_identities(tmp_path: Path, auth: str) -> None:
    assert resolve_mode(load(hub_yaml(tmp_path, "auto", auth)), is_root=True) == "system"


def test_personal_mode_keeps_shared_password_dummy_and_open_signup(tmp_path: Path) -> None:
    for auth in ("auth:\n  kind: shared-password\n", "auth:\n  kind: dummy\n",
                 "auth:\n  kind: native\n  open_signup: true\n"):
        assert resolve_mode(load(hub_yaml(tmp_path, "personal", auth)), True) == "personal"


def test_resolve_mode_reports_every_mode_backend_and_login_problem_at_once(
        tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("hub:\n  name: lab\n  mode: auto\nbackend: slurm\nauth:\n  kind: pam\n"
                    "users:\n  allowed: [ann]\n")
    with pytest.raises(InvalidInput) as caught:  # auto as yourself: personal mode
        resolve_mode(load(path), is_root=False)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{path}:4:10: backend: 'slurm' submits servers as jobs of the users' Linux accounts, "
        "which needs system mode; run the hub as root on a machine that can submit jobs, or "
        "use backend: local",
        f"{path}:6:9: auth.kind: 'pam' logs in Linux accounts, which needs system mode; run "
        "as root with hub.mode: system (or auto), or use auth.kind: shared-password",
    ]
    path.write_text("hub:\n  name: lab\n  mode: personal\n  ip: 0.0.0.0\nauth:\n  kind: pam\n"
                    "users:\n  allowed: [ann]\n")
    with pytest.raises(InvalidInput) as caught:
        resolve_mode(load(path), is_root=True)
    assert [problem.field for problem in caught.value.problems] == ["auth.kind", "hub.ip"]
    assert [problem.line for problem in caught.value.problems] == [6, 4]
    path.write_text("hub:\n  name: lab\n  mode: system\nauth:\n  kind: pam\n"
                    "users:\n  allowed: [ann]\n")
    with pytest.raises(InvalidInput) as caught:
        resolve_mode(load(path), is_root=False)
    (problem,) = caught.value.problems
    assert str(problem).startswith(f"{path}:3:9: hub.mode: 'system' runs servers as Linux "
                                   "accounts and needs root")


# --- identity.journal_account -------------------------------------------------------------


def journal(tmp_path: Path, *records: AccountRecord) -> str:
    made = Journal(tmp_path / "journal.json", {record.account: record for record in records})
    made.save()
    return str(made.path)


def someone() -> pwd.struct_passwd:
    """An account of this machine with a user uid (any will do: only its uid is compared)."""
    for entry in pwd.getpwall():
        if identity.FIRST_USER_UID <= entry.pw_uid < 60000:
            return entry
    pytest.skip("no account with a user uid on this machine")


def test_the_journal_account_of_the_hub_user_is_used(tmp_path: Path) -> None:
    entry = someone()
    path = journal(tmp_path, AccountRecord(entry.pw_name, "ann", "created", entry.pw_uid))
    assert identity.journal_account(path, "ann") == identity.Bound(entry.pw_name, entry.pw_uid)


@pytest.mark.parametrize(("record", "why"), [
    (None, "'ann' has no account in hubkeeper's journal"),
    (AccountRecord("hk-no-such-account", "ann", "created", 4242), "does not exist"),
    (AccountRecord("root", "ann", "created", 0), "has the system uid 0"),
    (AccountRecord("root", "ann", "created", 1234), "has uid 0, the journal recorded 1234"),
    (AccountRecord("root", "ann", "creating", 0), "no account in hubkeeper's journal"),
    (AccountRecord("root", "ann", "removing", 0), "no account in hubkeeper's journal"),
])
def test_no_account_but_the_journal_s_own(tmp_path: Path, record: AccountRecord | None,
                                          why: str) -> None:
    path = journal(tmp_path, *([record] if record else []))
    with pytest.raises(identity.Unbound, match=why):
        identity.journal_account(path, "ann")


def test_the_name_alone_never_picks_an_account(tmp_path: Path) -> None:
    """A hub user named like an existing account (root here) gets nothing: only records."""
    entry = someone()
    path = journal(tmp_path, AccountRecord(entry.pw_name, "ann", "created", entry.pw_uid))
    for name in ("root", entry.pw_name):
        with pytest.raises(identity.Unbound, match="has no account in hubkeeper's journal"):
            identity.journal_account(path, name)
    with pytest.raises(identity.Unbound, match="no journal is configured"):
        identity.journal_account("", "ann")


def test_a_journal_others_can_write_binds_nobody(tmp_path: Path) -> None:
    entry = someone()
    path = journal(tmp_path, AccountRecord(entry.pw_name, "ann", "created", entry.pw_uid))
    os.chmod(path, 0o666)
    with pytest.raises(identity.Unbound, match="not writable by others"):
        identity.journal_account(path, "ann")


# --- the hub's own files that let someone in: invite codes, GitHub ids --------------------


def test_invite_codes_and_github_ids_are_trusted_only_from_the_hub_s_own_file(
        tmp_path: Path) -> None:
    from hubkeeper.state import github_ids, invites

    codes = tmp_path / invites.FILE_NAME
    invites.save(codes, {"ann": invites.digest("the-code")})
    assert codes.stat().st_mode & 0o777 == 0o600
    invites.check(str(codes), "ann", "the-code")
    with pytest.raises(invites.Refused, match="not theirs"):
        invites.check(str(codes), "ann", "the-cod")
    ids = tmp_path / github_ids.FILE_NAME
    assert github_ids.bind(str(ids), "ann", 7) is True
    assert github_ids.bind(str(ids), "ann", 7) is False
    with pytest.raises(github_ids.Mismatch, match="bound to GitHub user id 7"):
        github_ids.bind(str(ids), "ann", 8)
    for path in (codes, ids):  # writable by others: whoever wrote it could let anyone in
        os.chmod(path, 0o620)
    with pytest.raises(invites.Refused, match="not writable by others"):
        invites.check(str(codes), "ann", "the-code")
    with pytest.raises(github_ids.Mismatch, match="not writable by others"):
        github_ids.bind(str(ids), "ann", 7)
    os.chmod(ids, 0o600)
    os.rename(ids, tmp_path / "real.json")
    ids.symlink_to(tmp_path / "real.json")  # not followed
    with pytest.raises(github_ids.Mismatch, match="cannot be read"):
        github_ids.bind(str(ids), "ann", 7)
