"""Check the journal against this machine: what hubkeeper created and what is there now.

Nothing here is ever repaired by doctor: an account, group or folder that drifted, or an
account hubkeeper did not create, is reported with the command that deals with it.
"""

from __future__ import annotations

import os

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.doctor.findings import Context, Finding
from hubkeeper.plan.data import data_specs
from hubkeeper.state.installed import file_state
from hubkeeper.state.journal import Journal
from hubkeeper.state.removals import Removals

CHECK = "journal"


def journal_checks(ctx: Context) -> list[Finding]:
    journal = ctx.journal
    if journal is None:
        return [Finding(CHECK, "problem", str(ctx.paths.journal), ctx.journal_error or "")]
    findings: list[Finding] = []
    if ctx.mode == "system":
        findings += _accounts(ctx, journal)
        findings += _groups(ctx, journal)
        findings += _roster_names(ctx, journal)
    findings += _dirs(ctx, journal)
    findings += _files(journal)
    return findings


def _unfinished(kind: str, name: str, state: str, removing_user: str | None = None
                ) -> Finding | None:
    """A record a killed run left half-way, with the command that finishes it.
    `removing_user`: the hub user whose `users remove` began this account's removal."""
    if state == "creating":
        return Finding(CHECK, "problem", name, (
            f"The journal says {kind} {name} was being created when `hubkeeper apply` was "
            "stopped (killed, or the machine went down). Run `hubkeeper apply` again: it "
            "finishes the work and confirms the record."))
    if state == "removing" and removing_user is not None:
        return Finding(CHECK, "problem", name, (
            f"The journal says {kind} {name} was being removed when `hubkeeper users remove "
            f"{removing_user} --yes` was stopped. Run it again: it finishes the removal from "
            "the same archive (<state>/removals.json names it)."))
    if state == "removing":
        return Finding(CHECK, "problem", name, (
            f"The journal says {kind} {name} was being removed when `hubkeeper retire` was "
            "stopped. Run `hubkeeper retire --yes` again: it finishes the removals it "
            "began (with the same archive check)."))
    return None


def _accounts(ctx: Context, journal: Journal) -> list[Finding]:
    findings = []
    on_roster = {member.account for member in ctx.roster.members}
    try:
        removals = Removals.load(ctx.paths.root)
    except HubkeeperError:
        removals = Removals(ctx.paths.root / "removals.json")
    for name, record in sorted(journal.accounts.items()):
        removal = removals.unfinished(record.user)
        unfinished = _unfinished("the account", name, record.state,
                                 removal.user if removal else None)
        if unfinished:
            findings.append(unfinished)
            continue
        account = ctx.host.accounts.get(name)
        if account is None:
            if name in on_roster:
                again = (f"`hubkeeper apply` creates it again with the same uid "
                         f"({record.uid}), so the files in its home stay its own")
            else:
                again = ("it is no longer on the roster either, so nothing needs it; "
                         "`hubkeeper retire` drops the record with the hub")
            findings.append(Finding(CHECK, "problem", name, (
                f"hubkeeper created the account {name} (uid {record.uid}), and it is gone "
                f"from this machine (removed by hand, e.g. with userdel?): {again}.")))
        elif (record.uid, record.gid) != (account.uid, account.gid):
            findings.append(Finding(CHECK, "problem", name, (
                f"The account {name} has uid {account.uid} and gid {account.gid}, but "
                f"hubkeeper created it with uid {record.uid} and gid {record.gid}: it was "
                "removed and made again by hand, or changed with usermod. Files in its home "
                f"({record.home}) may still carry the old ids. If the old ids were right, "
                f"`usermod --uid {record.uid} {name}` (and `groupmod --gid {record.gid}` of "
                "its group) puts them back; otherwise look at the home (`ls -ln`) before "
                "anything else; `hubkeeper retire` refuses to remove such an account.")))
        else:
            findings.append(Finding(CHECK, "ok", name, (
                f"The account {name} has uid {account.uid} and gid {account.gid}, as "
                "hubkeeper created it.")))
    return findings


def _groups(ctx: Context, journal: Journal) -> list[Finding]:
    findings = []
    for name, record in sorted(journal.groups.items()):
        unfinished = _unfinished("the group", name, record.state)
        if unfinished:
            findings.append(unfinished)
            continue
        group = ctx.host.groups.get(name)
        if group is None:
            findings.append(Finding(CHECK, "problem", name, (
                f"hubkeeper created the group {name} (gid {record.gid}), and it is gone from "
                "this machine (removed by hand, e.g. with groupdel?). `hubkeeper apply` "
                "creates it again if hub.yaml still has it; files that belonged to it "
                f"still carry gid {record.gid}.")))
        elif record.gid is not None and group.gid != record.gid:
            findings.append(Finding(CHECK, "problem", name, (
                f"The group {name} has gid {group.gid}, but hubkeeper created it with gid "
                f"{record.gid}: it was removed and made again, or changed with groupmod. "
                f"Files of the old group still carry gid {record.gid}; `groupmod --gid "
                f"{record.gid} {name}` puts it back if nothing else uses that gid.")))
        else:
            findings.append(Finding(CHECK, "ok", name, (
                f"The group {name} has gid {group.gid}, as hubkeeper created it.")))
    return findings


def _roster_names(ctx: Context, journal: Journal) -> list[Finding]:
    """Roster names whose account or group exists but is not hubkeeper's: reported only."""
    findings = []
    # A hub whose journal has no account uses the machine's own accounts (`up` without
    # `apply`, as in seed 002): theirs is a warning; on a hub that applies, a problem.
    status = "problem" if journal.accounts else "warning"
    for member in ctx.roster.members:
        if member.account in journal.accounts:
            continue
        account = ctx.host.accounts.get(member.account)
        if account is None:
            findings.append(Finding(CHECK, "warning", member.account, (
                f"{member.name} is on the roster and has no account {member.account} yet: "
                "`hubkeeper apply` creates it.")))
            continue
        findings.append(Finding(CHECK, status, member.account, (
            f"The account {member.account} (uid {account.uid}) exists on this machine but "
            f"hubkeeper did not create it (it is not in the journal), though the roster "
            f"names {member.name}. hubkeeper never manages an account it did not create, so "
            "`hubkeeper apply` stops on this name and doctor leaves it alone. If the journal "
            "was lost, put it back from a snapshot (its hub/state/journal.json); otherwise "
            "give the roster user another name, or remove the account if nobody needs it.")))
    accounts = {member.account for member in ctx.roster.members}
    for group in ctx.roster.groups:
        linux = ctx.roster.prefix + group
        existing = ctx.host.groups.get(linux)
        if existing is None or linux in journal.groups or linux in accounts:
            continue
        findings.append(Finding(CHECK, "problem", linux, (
            f"The group {linux} (gid {existing.gid}) exists on this machine but hubkeeper "
            "did not create it (it is not in the journal), though the roster has a group of "
            "that name. hubkeeper does not manage it, and `hubkeeper apply` stops on it: "
            "rename the roster group.")))
    return findings


def _dirs(ctx: Context, journal: Journal) -> list[Finding]:
    """Journal folders that hub.yaml no longer lists (the data check covers the others)."""
    shared, folders = data_specs(ctx.loaded)
    listed = {item.path for item in shared} | {folder.path for folder in folders}
    findings = []
    for path, record in sorted(journal.dirs.items()):
        if record.state == "creating" and os.path.isdir(path):
            # apply made it and was stopped before confirming; apply's re-run does not
            # rewrite the record (the folder exists), and retire treats it as ours anyway.
            findings.append(Finding(CHECK, "warning", path, (
                f"The journal still says the folder {path} was being created: `hubkeeper "
                "apply` was stopped right after making it. The folder is there and is "
                "hubkeeper's; nothing needs doing.")))
            continue
        unfinished = _unfinished("the folder", path, record.state)
        if unfinished:
            findings.append(unfinished)
        elif path in listed:
            continue
        elif not os.path.isdir(path):
            findings.append(Finding(CHECK, "warning", path, (
                f"hubkeeper created the folder {path}, which hub.yaml no longer lists, and "
                "it is gone. Nothing needs it; `hubkeeper retire` drops the record.")))
        else:
            findings.append(Finding(CHECK, "ok", path, (
                f"{path} was made by hubkeeper and is no longer in hub.yaml; it is kept with "
                "its files (hubkeeper deletes data only in `hubkeeper retire`, after an "
                "archive).")))
    return findings


def _files(journal: Journal) -> list[Finding]:
    findings = []
    for path, record in sorted(journal.files.items()):
        unfinished = _unfinished(f"the file ({record.kind})", path, record.state)
        if unfinished:
            findings.append(unfinished)
            continue
        if not os.path.lexists(path):
            findings.append(Finding(CHECK, "warning", path, (
                f"hubkeeper wrote {path} ({record.kind}) and it is gone: `hubkeeper apply` "
                "writes it again.")))
            continue
        try:
            problem = file_state(journal, path).problem
        except HubkeeperError as exc:
            problem = exc.message
        if problem:
            findings.append(Finding(CHECK, "warning", path, (
                f"{path} ({record.kind}) {problem}.")))
        else:
            findings.append(Finding(CHECK, "ok", path, (
                f"{path} ({record.kind}) holds what hubkeeper wrote.")))
    return findings
