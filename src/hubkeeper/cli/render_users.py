"""Text for the roster verbs: users list/add/lock/unlock/credentials, adopt."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hubkeeper.cli.render_base import text
from hubkeeper.verbs.admit import AdmitResult
from hubkeeper.verbs.adopt import AdoptResult
from hubkeeper.verbs.users import Credentials, UsersChange, UsersList
from hubkeeper.verbs.users_password import PasswordResult
from hubkeeper.verbs.users_remove import UserRemoveResult


@text.register
def _(result: UsersList, console: Console) -> None:
    table = Table("user", "account", "uid", "groups", "admin", "locked", "declared at")
    for row in result.users:
        table.add_row(row.name, row.account, str(row.uid) if row.uid is not None else "-",
                      " ".join(row.groups), "yes" if row.admin else "",
                      "LOCKED" if row.locked else "", row.declared_at)
    console.print(table)
    console.print(f"{len(result.users)} users on the roster of {result.config}",
                  highlight=False)


@text.register
def _(result: UsersChange, console: Console) -> None:
    console.print(f"hub.yaml: {result.change}", highlight=False)
    if result.applied is not None:
        text(result.applied, console)


@text.register
def _(result: Credentials, console: Console) -> None:
    if result.file is None:
        console.print("every active roster user has an invite code already", highlight=False)
        return
    console.print(f"new invite codes for {', '.join(result.users)} are in {result.file} "
                  "(mode 0600): hand them out, then delete the file", highlight=False,
                  markup=False)


@text.register
def _(result: AdoptResult, console: Console) -> None:
    verb = "adopted" if result.done else "would adopt (run with --yes)"
    if result.adopt:
        console.print(f"{verb}:", highlight=False)
        for orphan in result.adopt:
            console.print(f"  {orphan.account}: uid {orphan.uid}, gid {orphan.gid}, "
                          f"{orphan.home}", highlight=False)
    else:
        console.print(f"no home in {result.homes} is without its account", highlight=False)
    for orphan in result.skipped:
        console.print(f"  skipped {orphan.home}: {orphan.skipped}", highlight=False,
                      markup=False)


@text.register
def _(result: UserRemoveResult, console: Console) -> None:
    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    if result.status == "plan":
        say(f"users remove {result.user} would ({result.mode} mode):")
    elif result.status == "refused":
        say(f"REFUSED: nothing was removed; the archive {result.archive} does not hold "
            f"{result.user}'s home as it is:")
        for problem in result.problems:
            say(f"  {problem}")
        if any("changed since the archive" in problem for problem in result.problems):
            say("  (the home was written to while it was archived: their server or processes "
                f"still run; `hubkeeper users lock {result.user}` stops the server; then run "
                "again)")
        return
    else:
        say(f"removed {result.user}"
            + (" (an interrupted removal finished)" if result.resumed else "") + ":")
    for step in result.steps:
        say(f"  {step}")
    for kept in result.kept:
        say(f"  KEPT {kept}")
    if result.status == "plan":
        say(f"run `hubkeeper users remove {result.user} --yes` to do it")
    elif result.archive:
        say(f"archive: {result.archive} (`hubkeeper export {result.user} --from "
            f"{result.archive}` gives their zip)")


@text.register
def _(result: PasswordResult, console: Console) -> None:
    where = "Linux account " + result.account if result.account else "sign-up (native)"
    console.print(f"new password for {result.user} ({where}) written to {result.file} "
                  "(mode 0600)", highlight=False, markup=False)
    if console.is_terminal:  # shown once, to a person; never into a log or a pipe
        console.print(f"  password: {result.password}", highlight=False, markup=False)
        console.print("  (not shown again; hand it over, then delete the file)",
                      highlight=False, markup=False)


@text.register
def _(result: AdmitResult, console: Console) -> None:
    if result.roster:
        console.print(f"{result.user} is on the roster: `apply` makes their account")
        return
    made = ", ".join(f"{a.kind} {a.subject}" for a in result.actions) or "nothing to change"
    console.print(f"{result.user} (account {result.account}, admitted by {result.provider}"
                  f"{', admin' if result.admin else ''}): {made}")
