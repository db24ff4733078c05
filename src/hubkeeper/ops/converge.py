"""Make the machine and the hub follow the roster: observe, plan, execute, journal.

`prepare()` observes and plans without changing anything (for `plan`); `execute()` performs a
plan (for `apply`). Every account is journaled before it is created and confirmed after.
"""

from __future__ import annotations

import csv
import grp
import io
import logging
import os
import pwd
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.base.files import write_atomic
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.urls import hub_api_url
from hubkeeper.host import envs
from hubkeeper.host.accounts import HostUsers, observe
from hubkeeper.host.dirs import link_in_home, make_group_folder, make_shared_dir
from hubkeeper.host.hubapi import HubAPI, HubUnreachable
from hubkeeper.host.pathfacts import observe_paths
from hubkeeper.host.preflight import environment_problems
from hubkeeper.host.shadow import PASSWORD_BATCH, ShadowTools
from hubkeeper.ops.execute import Effector, Effectors
from hubkeeper.ops.execute import execute as execute_actions
from hubkeeper.plan.accounts import (
    HubState,
    HubUser,
    UsersPlan,
    ordered,
    plan_host,
    plan_hub,
)
from hubkeeper.plan.actions import Action
from hubkeeper.plan.data import data_paths, data_problems, data_specs, plan_data
from hubkeeper.roster import Roster
from hubkeeper.state import invites
from hubkeeper.state.journal import AccountRecord, DirRecord, GroupRecord, Journal
from hubkeeper.state.removals import removed_users
from hubkeeper.state.statedir import StatePaths, read_secret

log = logging.getLogger(__name__)
Progress = Callable[[int, int, Action], None]
JOURNAL_EVERY = 25  # confirm created accounts in the journal at least this often


def reconcile(journal: Journal, host: HostUsers) -> bool:
    """Confirm records of an apply that was killed: an account or group that exists and has
    a 'creating' record was made by us. Returns whether the journal changed (in memory)."""
    changed = False
    for record in journal.accounts.values():
        account = host.accounts.get(record.account)
        if record.state == "creating" and account is not None:
            record.state, record.uid, record.gid, record.home = (
                "created", account.uid, account.gid, account.home)
            changed = True
    for group in journal.groups.values():
        if group.state == "creating" and group.name in host.groups:
            group.state, group.gid = "created", host.groups[group.name].gid
            changed = True
    return changed


def hub_state(api: HubAPI) -> HubState | None:
    """The running hub's users and groups, or None when no hub answers."""
    try:
        users = api.users()
        groups = api.groups()
    except HubUnreachable:
        return None
    return HubState(
        users={u["name"]: HubUser(u["name"], bool(u.get("admin")), frozenset(u.get("groups")
               or ()), bool((u.get("servers") or {}).get("")) or bool(u.get("pending")))
               for u in users},
        groups={g["name"]: frozenset(g.get("users") or ()) for g in groups},
    )


@dataclass
class Prepared:
    loaded: LoadedSpec
    roster: Roster
    mode: str
    paths: StatePaths
    journal: Journal
    journal_changed: bool
    api: HubAPI | None
    plan: UsersPlan


def prepare(loaded: LoadedSpec, roster: Roster, mode: str, paths: StatePaths,
            host_side: bool = True, accounts_only: bool = False) -> Prepared:
    """Observe and plan. `host_side` False: only the hub's users (`sync_hub`).
    `accounts_only`: accounts, groups and data folders, without environments or the hub's
    users (`users admit`, run by the hub for a first login)."""
    journal = Journal.load(paths.journal)
    notes: list[str] = []
    actions: list[Action] = []
    changed = False
    if mode == "system" and host_side:
        host = observe()
        changed = reconcile(journal, host)
        shared, folders = data_specs(loaded)
        facts = observe_paths(data_paths(shared, folders, roster, host))
        problems = data_problems(shared, folders, roster, journal, facts)
        if problems:
            raise InvalidInput(problems, hint="nothing was changed")
        actions += plan_host(roster, host, journal)
        data_actions, data_notes = plan_data(shared, folders, roster, host, journal, facts)
        actions += data_actions
        notes += data_notes
    elif mode != "system":
        notes.append("personal mode: hub users only, no Linux accounts")
        if loaded.spec.data.shared or loaded.spec.data.group_folders:
            notes.append("personal mode: data.shared and data.group_folders need system mode "
                         "(root) and are not set up")
    if accounts_only:
        return Prepared(loaded, roster, mode, paths, journal, changed, None,
                        UsersPlan(ordered(actions), tuple(notes)))
    if host_side and loaded.spec.environments:  # apply builds what changed, like `env build`
        problems = environment_problems(loaded, roster)
        if problems:
            raise InvalidInput(problems, hint="nothing was changed")
        actions += [Action("build-environment", name) for name in loaded.spec.environments
                    if envs.needs_build(loaded, paths, name)]
    api = None
    try:
        token = read_secret(paths, "api-token")
    except HubkeeperError:  # no state yet (the hub never ran), or not ours to read
        token = None
    hub = None
    if token:
        # The hub's own address, not the proxy's (hub_api_url); a listener that is not the
        # hub's account's is refused before the token is sent (ListenerRefused).
        api = HubAPI(hub_api_url(loaded.spec), token)
        hub = hub_state(api)
    if hub is None:
        api = None
        notes.append("the hub is not running: it takes the roster when it starts")
    else:
        on_roster = {m.name for m in roster.members}
        # `users remove` while the hub was down: the hub still has them
        removed = journal.users_off(on_roster) | (removed_users(paths.root) - on_roster)
        actions += plan_hub(roster, hub, removed)
    return Prepared(loaded, roster, mode, paths, journal, changed, api,
                    UsersPlan(ordered(actions), tuple(notes)))


def sync_hub(loaded: LoadedSpec, roster: Roster, mode: str, paths: StatePaths
             ) -> tuple[int, Path | None]:
    """Only the hub's side (users, admins, groups, native's invite codes), e.g. right after
    the hub started. Returns the changes made and the credentials file written, if any."""
    prepared = prepare(loaded, roster, mode, paths, host_side=False)
    credentials = execute(prepared, lambda done, total, action: None)
    return len(prepared.plan.actions), credentials


def _credentials_file(paths: StatePaths) -> Path:
    directory = paths.root / "credentials"
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    stamp = time.strftime('%Y%m%dT%H%M%S')
    path = directory / f"credentials-{stamp}.csv"
    count = 1
    while path.exists():  # two runs in one second: never replace a file not handed out
        count += 1
        path = directory / f"credentials-{stamp}-{count}.csv"
    return path


def _new_invites(roster: Roster, codes_file: Path) -> dict[str, str]:
    """auth.kind native: a fresh invite code for each active roster user who has none."""
    try:
        known = invites.load(codes_file)
    except (OSError, ValueError) as exc:
        raise HubkeeperError(f"the invite codes {codes_file} cannot be read: {exc}",
                             hint="it must be a 0600 file of this account; move it away and "
                             "`hubkeeper apply` issues new codes to everyone") from None
    return {member.name: invites.new_code() for member in roster.active
            if member.name not in known}


def issue_invites(loaded: LoadedSpec, roster: Roster, paths: StatePaths,
                  names: tuple[str, ...]) -> tuple[Path | None, tuple[str, ...]]:
    """auth.kind native: new invite codes for `names` (replacing theirs), or for every active
    roster user without one when `names` is empty. Returns the credentials file and who got
    a code. A name already signed up gains nothing from a new code: its sign-up is done."""
    if loaded.spec.auth.kind != "native":
        raise HubkeeperError("invite codes are for native sign-up; this hub's auth.kind is "
                             f"{loaded.spec.auth.kind or 'the default'!r}",
                             hint="with pam the credentials are Linux passwords (apply)")
    active = {member.name for member in roster.active}
    unknown = [name for name in names if name not in active]
    if unknown:
        raise HubkeeperError(f"not active on the roster: {', '.join(unknown)}",
                             hint="`hubkeeper users list` shows who is (locked users get "
                             "no code)")
    codes_file = paths.secret(invites.FILE_NAME)
    issued = ({name: invites.new_code() for name in names} if names
              else _new_invites(roster, codes_file))
    if not issued:
        return None, ()
    credentials = write_credentials(paths, {}, issued)
    _save_invites(codes_file, issued)
    return credentials, tuple(sorted(issued))


def _save_invites(codes_file: Path, issued: dict[str, str]) -> None:
    """Only the codes' hashes go where the hub reads them; a new code replaces the old."""
    known = invites.load(codes_file)
    invites.save(codes_file, {**known, **{user: invites.digest(code)
                                          for user, code in issued.items()}})


def write_credentials(paths: StatePaths, passwords: dict[str, str],
                      codes: dict[str, str]) -> Path:
    """The 0600 CSV for the instructor: username, password (generated Linux password) and,
    with native login, invite_code (what signing up as that name needs)."""
    credentials = _credentials_file(paths)
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["username", "password"] + (["invite_code"] if codes else [])
    writer.writerow(header)
    for user in sorted(set(passwords) | set(codes)):
        row = [user, passwords.get(user, "")] + ([codes.get(user, "")] if codes else [])
        writer.writerow(row)
    write_atomic(credentials, out.getvalue().encode(), mode=0o600)
    return credentials


def execute(prepared: Prepared, progress: Progress, tools: ShadowTools | None = None
            ) -> Path | None:
    """Perform the plan in order. Returns the credentials file written, if any."""
    tools = tools or ShadowTools()
    journal, roster = prepared.journal, prepared.roster
    members = {m.account: m for m in roster.members}
    by_user = {m.name: m for m in roster.members}
    actions = prepared.plan.actions
    total = len(actions)
    done = 0
    credentials: Path | None = None
    if prepared.journal_changed:
        journal.save()

    def step(action: Action) -> None:  # also the executor's progress
        nonlocal done
        done += 1
        progress(done, total, action)

    groups = [a for a in actions if a.kind == "create-group"]
    for action in groups:
        journal.groups[action.subject] = GroupRecord(action.subject)
    if groups:
        journal.save()
    for action in groups:
        tools.create_group(action.subject)
        journal.groups[action.subject].state = "created"
        step(action)
    if groups:
        journal.save()

    creating = [a for a in actions if a.kind == "create-account"]
    for action in creating:
        member = members[action.subject]
        old = journal.accounts.get(action.subject)
        journal.accounts[action.subject] = AccountRecord(
            account=action.subject, user=member.name, uid=old.uid if old else None,
            origin=member.provider or "roster", subject=member.subject)
    if creating:
        journal.save()  # intents first: a kill after useradd still leaves the account ours
    for index, action in enumerate(creating, 1):
        member = members[action.subject]
        record = journal.accounts[action.subject]
        tools.create_account(action.subject, full_name=member.full_name, uid=record.uid,
                             groups=sorted(roster.prefix + g for g in member.groups))
        entry = pwd.getpwnam(action.subject)
        record.state, record.uid, record.gid, record.home = (
            "created", entry.pw_uid, entry.pw_gid, entry.pw_dir)
        step(action)
        if index % JOURNAL_EVERY == 0:
            journal.save()
    if creating:
        journal.save()

    passwords = [a for a in actions if a.kind == "set-password"]
    chosen: dict[str, str] = {}
    generated: dict[str, str] = {}  # hub user -> generated password
    for action in passwords:
        given = members[action.subject].password
        chosen[action.subject] = given or secrets.token_urlsafe(9)
        if not given:
            generated[members[action.subject].name] = chosen[action.subject]
    codes_file = prepared.paths.secret(invites.FILE_NAME)
    issued = (_new_invites(roster, codes_file)
              if prepared.loaded.spec.auth.kind == "native" else {})
    if generated or issued:  # written before they count: the instructor never loses one
        credentials = write_credentials(prepared.paths, generated, issued)
    if issued:
        _save_invites(codes_file, issued)
    for start in range(0, len(passwords), PASSWORD_BATCH):
        batch = passwords[start:start + PASSWORD_BATCH]
        tools.set_passwords({a.subject: chosen[a.subject] for a in batch})
        for action in batch:
            journal.accounts[action.subject].password_set = True
            step(action)
        journal.save()

    rest = [a for a in actions
            if a.kind not in ("create-group", "create-account", "set-password")]
    execute_actions(rest, _effectors(prepared, tools, by_user), journal, step)
    return credentials


def _effectors(prepared: Prepared, tools: ShadowTools, by_user: dict) -> Effectors:
    """How each of the remaining kinds is carried out (accounts, groups and passwords are
    batched above, their intents journaled together)."""
    journal, api = prepared.journal, prepared.api

    def create_home(action: Action) -> None:
        entry = pwd.getpwnam(action.subject)
        tools.create_home(action.subject, entry.pw_dir, entry.pw_uid, entry.pw_gid)

    def locked(flag: bool) -> Callable[[Action], None]:
        def confirm(action: Action) -> None:
            journal.accounts[action.subject].locked = flag
        return confirm

    def dir_intent(action: Action) -> None:  # recorded before it exists, as accounts are
        journal.dirs[action.subject] = DirRecord(
            action.subject, "shared" if action.kind == "create-shared-dir" else "group-folder")

    def dir_made(action: Action) -> None:
        journal.dirs[action.subject].state = "created"

    def build(action: Action) -> None:
        envs.make_envs_dir(prepared.paths)
        envs.build_one(prepared.loaded, prepared.paths, action.subject, False, log.info)

    def link(action: Action) -> None:
        name, _, target = action.detail.partition(" -> ")
        link_in_home(action.subject, name, target)

    def hub(action: Action) -> None:
        if api is not None:  # no hub runs: it takes the roster when it starts
            _hub_action(api, action, by_user)

    effectors: dict[str, Effector] = {
        "create-home": Effector(create_home),
        "add-to-group": Effector(lambda a: tools.add_to_group(a.subject, a.detail)),
        "remove-from-group": Effector(lambda a: tools.remove_from_group(a.subject, a.detail)),
        "lock": Effector(lambda a: tools.lock(a.subject), confirm=locked(True),
                         save_each=False),
        "unlock": Effector(lambda a: tools.unlock(a.subject), confirm=locked(False),
                           save_each=False),
        "create-shared-dir": Effector(lambda a: make_shared_dir(a.subject),
                                      intend=dir_intent, confirm=dir_made),
        "create-group-folder": Effector(
            lambda a: make_group_folder(a.subject, grp.getgrnam(a.detail).gr_gid),
            intend=dir_intent, confirm=dir_made),
        "build-environment": Effector(build),
        "link-in-home": Effector(link),
    }
    effectors.update({kind: Effector(hub) for kind in HUB_KINDS})
    return effectors


HUB_KINDS = ("hub-stop-server", "hub-unregister", "hub-register", "hub-grant-admin",
             "hub-revoke-admin", "hub-create-group", "hub-add-to-group",
             "hub-remove-from-group")


def _hub_action(api: HubAPI, action: Action, by_user: dict) -> None:
    name = urllib.parse.quote(action.subject)
    if action.kind == "hub-stop-server":
        api.stop_server(action.subject)
    elif action.kind == "hub-unregister":
        api.call("DELETE", f"/users/{name}")
    elif action.kind == "hub-register":
        api.call("POST", "/users", {"usernames": [action.subject],
                                    "admin": by_user[action.subject].admin})
    elif action.kind in ("hub-grant-admin", "hub-revoke-admin"):
        api.call("PATCH", f"/users/{name}", {"admin": action.kind == "hub-grant-admin"})
    elif action.kind == "hub-create-group":
        api.call("POST", f"/groups/{name}")
    elif action.kind in ("hub-add-to-group", "hub-remove-from-group"):
        method = "POST" if action.kind == "hub-add-to-group" else "DELETE"
        api.call(method, f"/groups/{urllib.parse.quote(action.detail)}/users",
                 {"users": [action.subject]})
