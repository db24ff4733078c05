"""`hubkeeper users password NAME`: a new generated password for one roster user.

auth.kind pam (system mode): the account's Linux password, set with chpasswd (host/shadow.py)
and journaled (`password_set`). auth.kind native: the user's nativeauthenticator password in
the hub database, hashed as nativeauthenticator does, only while the hub is stopped (held by
its lock): the running hub keeps its own session on that database, and its admin page
(/hub/change-password/NAME) takes a browser's cookie, not a token, so a running hub is
refused with a clear message. Other kinds have no password hubkeeper could set.

The password is written first to a new 0600 CSV in <state>/credentials/ (like apply's), so
it is never lost; the CLI shows it once, and only on a terminal.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.base.locks import HubLock, apply_lock
from hubkeeper.context.hub import Hub
from hubkeeper.host.nativedb import set_native_password
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.lifecycle.retirement import account_problem
from hubkeeper.ops.converge import write_credentials
from hubkeeper.roster.policy import name_problem

PASSWORD_BYTES = 12  # 16 characters of token_urlsafe


@dataclass(frozen=True)
class PasswordResult:
    config: str
    user: str
    account: str | None  # the Linux account (pam), None for native
    kind: str  # pam | native: where the password was set
    file: str  # the 0600 credentials CSV holding it
    password: str = field(repr=False, default="")  # shown once on a terminal; never in JSON


def _refuse(hub: Hub, loc: tuple | None, message: str, hint: str) -> InvalidInput:
    problem = (hub.loaded.problem(loc, message) if loc is not None
               else Problem("command line", None, None, "NAME", message))
    return InvalidInput([problem], hint=hint)


def _member_account(hub: Hub, name: str) -> str:
    """The roster member's account; raises, located, for an unknown or locked user."""
    if reason := name_problem(name):
        raise InvalidInput([Problem("command line", None, None, "NAME", reason)])
    member = hub.roster.by_name().get(name)
    if member is None:
        raise _refuse(hub, None, f"{name!r} is not on the roster of {hub.path}",
                      "`hubkeeper users list` shows who is")
    if member.locked:
        index = list(hub.spec.users.locked).index(name)
        raise _refuse(hub, ("users", "locked", index),
                      f"{name!r} is locked: a locked user gets no new password",
                      f"`hubkeeper users unlock {name}` first, if they may log in again")
    return member.account


def set_password(hub: Hub, name: str, tools: ShadowTools | None = None) -> PasswordResult:
    account = _member_account(hub, name)
    kind = hub.auth_kind
    if kind == "native":
        return _native(hub, name)
    if kind != "pam" or hub.mode != "system":
        where = ("auth", "kind") if hub.spec.auth.kind else None
        raise _refuse(hub, where,
                      f"auth.kind {kind!r} ({hub.mode} mode): the hub's login is not a "
                      "password hubkeeper sets for one user",
                      "users password works with auth.kind pam (system mode: the Linux "
                      "password) and native (the sign-up password)")
    journal = hub.load_journal()
    record = journal.accounts.get(account)
    if record is None or record.state != "created":
        raise HubkeeperError(f"{name!r} has no account hubkeeper made ({account!r} is not in "
                             f"the journal {journal.path} as created)",
                             hint="`hubkeeper apply` makes it (with a password)")
    try:
        problem = account_problem(account, record.uid)
    except KeyError:
        problem = "does not exist"
    if problem:
        raise HubkeeperError(f"the account {account!r} {problem}; its password is not changed",
                             hint="`hubkeeper doctor` looks at the accounts")
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    tools = tools or ShadowTools()
    with apply_lock(hub.paths):  # apply sets passwords and writes the journal too
        written = write_credentials(hub.paths, {name: password}, {})  # first: never lost
        tools.set_passwords({account: password})
        journal = hub.load_journal()
        journal.accounts[account].password_set = True
        journal.save()
    return PasswordResult(str(hub.path), name, account, "pam", str(written), password)


def _native(hub: Hub, name: str) -> PasswordResult:
    """nativeauthenticator's password, written while no hub runs (host/nativedb.py)."""
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    lock = HubLock(hub.paths)
    hub.paths.run.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        lock.acquire()  # no `up` starts while we write its database
    except HubkeeperError:
        raise HubkeeperError(
            f"the hub {hub.name!r} is running: a native password is kept in its database, "
            "which the running hub holds", hint=f"stop it, run `hubkeeper users password "
            f"{name}` again, then start it; or, as an admin, change it on the hub's page "
            f"/hub/change-password/{name}; nothing was changed") from None
    try:
        with apply_lock(hub.paths):
            written = write_credentials(hub.paths, {name: password}, {})  # first: never lost
            if not set_native_password(hub.paths.database, name, password):
                written.unlink()
                raise HubkeeperError(
                    f"{name!r} has not signed up yet: there is no password to reset",
                    hint=f"`hubkeeper users credentials {name}` gives a new invite code for "
                    "signing up")
    finally:
        lock.release()
    return PasswordResult(str(hub.path), name, None, "native", str(written), password)
