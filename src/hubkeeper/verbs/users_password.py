"""`hubkeeper users password NAME`: a new generated password for one roster user.

auth.kind pam (system mode): the account's Linux password, set with chpasswd (host/shadow.py)
and journaled (`password_set`). auth.kind native: the user's nativeauthenticator password,
changed by the running hub itself (its admin page `/hub/change-password/NAME`, called with
hubkeeper's service token), so that the hub's own code hashes it and its own database session
writes it; with the hub stopped it is refused rather than written into the database behind
the hub's back. Other kinds have no password hubkeeper could set.

The password is written first to a new 0600 CSV in <state>/credentials/ (like apply's), so
it is never lost; the CLI shows it once, and only on a terminal.
"""

from __future__ import annotations

import secrets
import urllib.parse
from dataclasses import dataclass, field

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.base.locks import apply_lock
from hubkeeper.context.hub import Hub
from hubkeeper.host.hubapi import HubUnreachable, fetch
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.lifecycle.retirement import account_problem
from hubkeeper.ops.converge import write_credentials
from hubkeeper.roster.policy import name_problem
from hubkeeper.state.statedir import read_secret

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


CHANGED = "has been changed successfully"


def _native(hub: Hub, name: str) -> PasswordResult:
    """nativeauthenticator's own admin page of the running hub sets the password."""
    try:
        token = read_secret(hub.paths, "service-token")
    except HubkeeperError:
        token = None
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    url = (hub.hub_api_url.rstrip("/") + "/hub/change-password/"
           + urllib.parse.quote(name, safe=""))
    body = urllib.parse.urlencode({"new_password": password,
                                   "new_password_confirmation": password}).encode()
    not_running = HubkeeperError(
        f"the hub {hub.name!r} is not running: a native password is changed by the hub "
        "itself (nativeauthenticator hashes it and writes it in its database)",
        hint="start it (`hubkeeper up`), then run `hubkeeper users password` again; nothing "
        "was changed")
    if token is None:
        raise not_running
    with apply_lock(hub.paths):
        written = write_credentials(hub.paths, {name: password}, {})  # first: never lost
        try:
            answer = fetch(url, what="the hub", method="POST", body=body,
                           headers={"Authorization": f"token {token}",
                                    "Content-Type": "application/x-www-form-urlencoded"})
        except HubUnreachable:
            written.unlink(missing_ok=True)
            raise not_running from None
        if answer.status == 404:
            written.unlink(missing_ok=True)
            raise HubkeeperError(f"{name!r} has not signed up yet: there is no password to "
                                 "reset", hint=f"`hubkeeper users credentials {name}` gives a "
                                 "new invite code for signing up")
        if answer.status != 200 or CHANGED not in answer.body.decode(errors="replace"):
            written.unlink(missing_ok=True)
            raise HubkeeperError(f"the hub did not change {name}'s password (HTTP "
                                 f"{answer.status})", hint="see the hub's log")
    return PasswordResult(str(hub.path), name, None, "native", str(written), password)
