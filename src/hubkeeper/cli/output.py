"""The one renderer: every result is shown as text or as JSON from here."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from functools import singledispatch
from typing import Any

from rich.console import Console
from rich.table import Table

from hubkeeper.config.types import format_size
from hubkeeper.lifecycle.restore import RestoreAllResult, Restored
from hubkeeper.render.jupyterhub import as_python
from hubkeeper.verbs.adopt import AdoptResult
from hubkeeper.verbs.apply import ApplyResult
from hubkeeper.verbs.archive import ArchiveResult
from hubkeeper.verbs.archive import VerifyResult as ArchiveVerify
from hubkeeper.verbs.capacity import CapacityResult
from hubkeeper.verbs.check import CheckResult
from hubkeeper.verbs.doctor import DoctorResult
from hubkeeper.verbs.env import EnvBuildResult, EnvListResult
from hubkeeper.verbs.init import InitResult
from hubkeeper.verbs.plan import PlanResult
from hubkeeper.verbs.prewarm import PrewarmResult
from hubkeeper.verbs.render import RenderResult
from hubkeeper.verbs.retire import RetireResult
from hubkeeper.verbs.service import (
    ServiceInstall,
    ServiceState,
    ServiceUninstall,
    not_running_message,
)
from hubkeeper.verbs.snapshot import SnapshotList, SnapshotResult, SnapshotVerify
from hubkeeper.verbs.status import StatusResult
from hubkeeper.verbs.tls import TlsStatusResult
from hubkeeper.verbs.up import Banner, UpResult
from hubkeeper.verbs.usage import UsageResult
from hubkeeper.verbs.users import Credentials, UsersChange, UsersList
from hubkeeper.verbs.userzip import ExportResult
from hubkeeper.verbs.z2jh import Z2jhResult


def to_json(result: Any) -> str:
    body = dataclasses.asdict(result)
    if isinstance(result, UsageResult):
        body["total_bytes"] = result.total_bytes
    if isinstance(result, CapacityResult):
        body["ok"] = result.ok
    if isinstance(result, DoctorResult):
        body["exit_code"] = result.exit_code
        body["counts"] = {status: result.count(status) for status in
                          ("ok", "warning", "problem")}
    if isinstance(result, (TlsStatusResult, PrewarmResult)):
        body["ok"] = result.ok
    return json.dumps(body, indent=2, sort_keys=True)


def emit(result: Any, as_json: bool, console: Console) -> None:
    if as_json:
        console.print_json(to_json(result)) if console.is_terminal else print(to_json(result))
    else:
        text(result, console)


@singledispatch
def text(result: Any, console: Console) -> None:
    raise TypeError(f"no text renderer for {type(result).__name__}")


@text.register
def _(result: CheckResult, console: Console) -> None:
    where = (f"{result.mode} mode, {result.backend} backend" if result.backend != "kubernetes"
             else "kubernetes backend (runs on a cluster: `hubkeeper export z2jh`)")
    console.print(
        f"{result.config}: valid. Hub '{result.hub}', {where}, {result.auth} login, "
        f"{result.users} users ({result.admins} admins).",
        highlight=False,
    )
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


@text.register
def _(result: InitResult, console: Console) -> None:
    console.print(f"wrote {result.path}\nnext: hubkeeper --config {result.path} check, then up",
                  highlight=False)


@text.register
def _(result: RenderResult, console: Console) -> None:
    console.print(f"# JupyterHub configuration for {result.config} ({result.mode} mode); "
                  "secrets redacted", highlight=False)
    console.print(as_python(result.jupyterhub).rstrip("\n"), highlight=False, markup=False)


LIST_AT_MOST = 40  # longer plans are summarised per kind; --json has every action


def _actions(actions: tuple, console: Console) -> None:
    if len(actions) <= LIST_AT_MOST:
        for action in actions:
            console.print(f"  {action}", highlight=False, markup=False)
        return
    counts: dict[str, int] = {}
    for action in actions:
        counts[action.kind] = counts.get(action.kind, 0) + 1
    for kind, count in counts.items():
        console.print(f"  {kind}: {count}", highlight=False, markup=False)
    console.print("  (--json lists every action)", highlight=False)


@text.register
def _(result: PlanResult, console: Console) -> None:
    if result.actions:
        console.print(f"{len(result.actions)} change(s) for {result.users} roster users "
                      f"({result.mode} mode):", highlight=False)
        _actions(result.actions, console)
    else:
        console.print(f"no changes: {result.users} roster users are in step "
                      f"({result.mode} mode)", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    if result.service:
        console.print("`hubkeeper service install` would (apply does not):", highlight=False,
                      markup=False)
        _actions(result.service, console)


@text.register
def _(result: ApplyResult, console: Console) -> None:
    if result.actions:
        console.print(f"applied {len(result.actions)} change(s) for {result.users} roster "
                      "users:", highlight=False)
        _actions(result.actions, console)
    else:
        console.print(f"no changes: {result.users} roster users are in step", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    if result.credentials:
        console.print(f"generated passwords (and native sign-up's invite codes) are in "
                      f"{result.credentials} (mode 0600): hand "
                      "them out, then delete the file", highlight=False, markup=False)


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
def _(result: StatusResult, console: Console) -> None:
    if not result.reachable:
        console.print(f"{result.url}: not reachable ({result.error})", highlight=False)
        return
    console.print(
        f"{result.url}: up. JupyterHub {result.jupyterhub_version}, hubkeeper "
        f"{result.hubkeeper_version}, Python {result.python_version}\n"
        f"{len(result.users)} users, {result.running} servers running",
        highlight=False,
    )
    table = Table("user", "admin", "server", "last activity")
    for user in result.users:
        table.add_row(user.name, "yes" if user.admin else "", user.server or "-",
                      user.last_activity or "-")
    console.print(table)


@text.register
def _(result: Banner, console: Console) -> None:
    where = (f"{result.public_url} (proxy on {result.url})" if result.public_url
             else result.url)
    lines = [f"hub '{result.hub}' is up at {where}  ({result.mode} mode, {result.auth} login)"]
    if result.users:
        lines.append(f"  users:  {', '.join(result.users)}")
    if result.admins:
        lines.append(f"  admins: {', '.join(result.admins)}")
    # On a terminal the passwords are shown; in a log (systemd's journal, which the adm
    # group reads) only where they are.
    users_file, admins_file = result.password_files or ("", "")
    if result.shared_password:
        lines.append("  password for users:  " + (result.shared_password if console.is_terminal
                                                  else f"in {users_file}"))
    if result.admin_password:
        lines.append("  password for admins: " + (result.admin_password if console.is_terminal
                                                  else f"in {admins_file}"))
    lines.append(f"  state: {result.state_dir}   log: {result.log_file}")
    lines.append("  Ctrl-C stops the hub, its proxy and every user server.")
    for warning in result.warnings:
        lines.append(f"  WARNING: {warning}")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: UpResult, console: Console) -> None:
    how = "killed after the deadline" if result.killed else "cleanly"
    console.print(f"hub '{result.hub}' stopped {how} in {result.stop_seconds or 0:.1f} s",
                  highlight=False)


@text.register
def _(result: UsageResult, console: Console) -> None:
    table = Table("user", "home", "size", "files", "free on its disk", "note")
    low: list[str] = []
    for home in result.homes:
        free = "-" if home.free_bytes is None else format_size(home.free_bytes)
        if home.free_bytes is not None and home.free_bytes < result.min_free:
            free += " (LOW)"
            low.append(home.name)
        table.add_row(home.name, home.home or "-", format_size(home.bytes), str(home.files),
                      free, home.note or "")
    console.print(table)
    console.print(f"{len(result.homes)} homes, {format_size(result.total_bytes)} in all "
                  f"({result.mode} mode)", highlight=False)
    if low:
        console.print(f"WARNING: less than data.min_free ({format_size(result.min_free)}) is "
                      f"free for {', '.join(low)}: their servers will not start",
                      highlight=False, markup=False)


@text.register
def _(result: EnvBuildResult, console: Console) -> None:
    for env in result.environments:
        if not env.built:
            console.print(f"{env.name}: up to date ({env.build})", highlight=False)
            continue
        console.print(f"{env.name}: built {env.build}; new servers use it", highlight=False)
        if env.previous:
            console.print(f"  the previous build {env.previous} is kept: running servers may "
                          "use it", highlight=False)


@text.register
def _(result: EnvListResult, console: Console) -> None:
    table = Table("environment", "for", "current build", "builds", "installed")
    for env in result.environments:
        who = " ".join(env.groups) or "everyone"
        current = env.current or "NOT BUILT"
        if env.current and not env.up_to_date:
            current += " (hub.yaml changed: env build)"
        table.add_row(env.name + (" (default)" if env.default else ""), who, current,
                      str(len(env.builds)), "\n".join(env.locked) or "-")
    console.print(table)


@text.register
def _(result: SnapshotResult, console: Console) -> None:
    console.print(f"snapshot {result.name}: {result.users} homes, {result.hub_users} hub "
                  "users in the database copy", highlight=False)
    for target in result.targets:
        if target.cleaned:
            console.print(f"  {target.target}: removed leftovers of a killed run: "
                          f"{', '.join(target.cleaned)}", highlight=False, markup=False)
        if not target.ok:
            console.print(f"  {target.target}: FAILED: {target.error}", highlight=False,
                          markup=False)
            continue
        console.print(f"  {target.snapshot}: {target.files} files, "
                      f"{format_size(target.bytes)}; {target.linked} unchanged (hard links), "
                      f"{target.files - target.linked} copied", highlight=False, markup=False)
        for item in target.incomplete:
            _incomplete_line(item.source, item.why, item.details, console)
        if target.removed:
            console.print(f"    retention removed {', '.join(target.removed)}",
                          highlight=False, markup=False)


def _incomplete_line(source: str, why: str, details: tuple[str, ...] | list[str],
                     console: Console, indent: str = "    ") -> None:
    """A tree a snapshot holds but not whole: a warning on its line, with rsync's words."""
    console.print(f"{indent}{source}: WARNING, incomplete: {why}", highlight=False,
                  markup=False)
    for detail in details:
        console.print(f"{indent}  {detail}", highlight=False, markup=False)


@text.register
def _(result: SnapshotList, console: Console) -> None:
    for listing in result.targets:
        console.print(f"{listing.target}:", highlight=False, markup=False)
        if not listing.snapshots:
            console.print("  no snapshots yet", highlight=False)
        for item in listing.snapshots:
            mark = "  <- latest" if item["name"] == listing.latest else ""
            if not item["ok"]:
                console.print(f"  {item['name']}  DAMAGED: {item['error']}{mark}",
                              highlight=False, markup=False)
                continue
            incomplete = item.get("incomplete") or {}
            note = f" ({len(incomplete)} incomplete: {', '.join(sorted(incomplete))})" \
                if incomplete else ""
            console.print(f"  {item['name']}  {item['homes']} homes, {item['files']} files, "
                          f"{format_size(item['bytes'])}{note}{mark}", highlight=False,
                          markup=False)
        for name in listing.incomplete:
            console.print(f"  {name}  incomplete (a killed run; the next snapshot removes it)",
                          highlight=False, markup=False)


@text.register
def _(result: SnapshotVerify, console: Console) -> None:
    for check in result.checked:
        if not check.problems:
            console.print(f"{check.snapshot}: every file matches its manifest",
                          highlight=False, markup=False)
        for source, note in sorted(check.incomplete.items()):
            _incomplete_line(source, note.get("why", "?"), note.get("details", []), console,
                             indent="  ")
        if not check.problems:
            continue
        console.print(f"{check.snapshot}: {len(check.problems)} problems", highlight=False,
                      markup=False)
        for problem in check.problems:
            console.print(f"  {problem}", highlight=False, markup=False)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _restored(item: Restored, console: Console) -> None:
    console.print(f"{item.source} -> {item.destination}: {_count(item.files, 'file')} "
                  "written", highlight=False, markup=False)
    if item.aside:
        console.print(f"  moved out of the way first: {_count(item.moved_aside, 'file')}, "
                      f"now in {item.aside}", highlight=False, markup=False)


@text.register
def _(result: Restored, console: Console) -> None:
    _restored(result, console)
    if not result.aside:
        console.print("  nothing was in the way", highlight=False)


@text.register
def _(result: RestoreAllResult, console: Console) -> None:
    console.print(f"restored the hub from {result.snapshot}", highlight=False, markup=False)
    console.print(f"  accounts created: {len(result.accounts_created)}; groups created: "
                  f"{len(result.groups_created)}", highlight=False)
    for item in result.restored:
        if item.files or item.aside:
            _restored(item, console)
    console.print(f"next: hubkeeper --config {result.config} up", highlight=False,
                  markup=False)


@text.register
def _(result: ArchiveResult, console: Console) -> None:
    lines = [f"archive of hub '{result.hub}' written: {result.directory}",
             f"  {result.users} users, {result.data_dirs} data folders: "
             f"{format_size(result.source_bytes)} of files in {format_size(result.bytes)} "
             "of compressed tars",
             f"  MANIFEST.json SHA-256 {result.manifest_sha256}",
             f"  check it any time: hubkeeper archive verify {result.directory}"]
    if result.missing:
        lines.append(f"  no home yet, nothing to archive: {', '.join(result.missing)}")
    lines += [f"  skipped: {item}" for item in result.skipped]
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: ArchiveVerify, console: Console) -> None:
    if result.ok:
        console.print(f"{result.directory}: OK, hub '{result.hub}': {result.tars} tars and "
                      f"the {result.members} files, folders and links in them match "
                      "MANIFEST.json", highlight=False, markup=False)
        return
    count = len(result.problems)
    console.print(f"{result.directory}: DAMAGED, {count} problem{'s' * (count != 1)}:",
                  highlight=False, markup=False)
    for problem in result.problems:
        console.print(f"  {problem}", highlight=False, markup=False)


@text.register
def _(result: ExportResult, console: Console) -> None:
    lines = [f"wrote {result.zip}",
             f"  {result.files} files, {format_size(result.bytes)}, of {result.user} on hub "
             f"'{result.hub}' from {result.source}"]
    lines += [f"  left out: {item}" for item in result.skipped]
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: PrewarmResult, console: Console) -> None:
    lines = [f"hub '{result.hub}': {len(result.users)} users; started "
             f"{len(result.started)}, already running {len(result.already)}"
             + (f", ready {len(result.ready)} after {result.seconds:.1f} s" if result.waited
                else " (not waiting for them)")]
    lines += [f"  {name}: NOT started: {why}" for name, why in result.failed]
    if result.until:
        lines.append(f"  kept from idle culling until {result.until}")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: Z2jhResult, console: Console) -> None:
    if result.values == "-":  # the values themselves, for a pipe or a redirect
        console.file.write(result.text)
        return
    lines = [f"wrote {result.values}: Zero to JupyterHub {result.chart_version} values for "
             f"hub '{result.hub}', {result.users} users, environments "
             f"{', '.join(result.environments)}"]
    if result.secrets:
        lines.append(f"wrote {result.secrets} (0600): the passwords and keys; keep it private")
    lines.append(f"  helm upgrade --install {result.hub} jupyterhub/jupyterhub --version "
                 f"{result.chart_version} --namespace {result.hub} --create-namespace "
                 f"-f {result.values}" + (f" -f {result.secrets}" if result.secrets else ""))
    console.print("\n".join(lines), highlight=False, markup=False)


_RETIRE_KINDS = {"hub": "hub", "proxy": "proxy", "account": "accounts", "home": "homes",
                 "group": "groups", "data": "data folders", "environment": "environments",
                 "state": "state directory"}


def _retire_items(items: list, console: Console) -> None:
    if len(items) > LIST_AT_MOST:
        counts: dict[str, int] = {}
        for item in items:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        for kind, count in counts.items():
            console.print(f"  {_RETIRE_KINDS.get(kind, kind)}: {count}", highlight=False)
        console.print("  (--json lists every one)", highlight=False)
        return
    for item in items:
        what = f"  {item.kind:<12} {item.name}"
        if item.detail:
            what += f"  ({item.detail})"
        if item.refused:
            what += f": {item.refused}"
        console.print(what, highlight=False, markup=False)


@text.register
def _(result: RetireResult, console: Console) -> None:
    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    removed = [item for item in result.items if not item.refused]
    kept = [item for item in result.items if item.refused]
    if result.status == "already-retired":
        say(f"hub '{result.hub}' was already retired on {result.retired_at}; nothing to do "
            f"(the record: {result.record})")
        if kept:
            say("kept then, refused by a check (never removed):")
            _retire_items(kept, console)
        return
    if result.status == "retired":
        say(f"hub '{result.hub}' retired{' (a killed retire finished)' * result.resumed}; "
            "removed:")
    else:
        say(f"hub '{result.hub}' (state {result.state_dir}): retire would remove"
            + (" what a killed retire left" if result.resumed else "") + ":")
    _retire_items(removed, console)
    if kept:
        say("kept, refused by a check (never removed):")
        _retire_items(kept, console)
    verdict = result.archive
    if verdict is not None and verdict.ok:
        say(f"archive {verdict.path}: verified (finished {verdict.finished}); it holds every "
            "home and data folder above, unchanged since")
        say(f"  MANIFEST.json SHA-256 {verdict.manifest_sha256}")
    if result.status == "retired":
        say(f"record: {result.record} and {verdict.path}/RETIREMENT.json" if verdict
            else f"record: {result.record}")
    elif result.status == "plan":
        say("run `hubkeeper retire --yes` to stop the hub and remove the above")
    elif verdict is not None:
        stopped = f" (the hub, pid {result.hub_stopped}, was stopped)" * bool(result.hub_stopped)
        say(f"REFUSED: nothing was removed{stopped}. The archive check found:")
        for problem in verdict.problems:
            say(f"  {problem}")
        say("hint: take a new archive (`hubkeeper archive`; stop the hub first so that "
            "nothing changes after it), then run retire again")


@text.register
def _(result: CapacityResult, console: Console) -> None:
    def verdict(ok: bool | None) -> str:
        return {True: "enough", False: "NOT ENOUGH", None: "cannot tell"}[ok]

    who = (f"group {result.group}: {result.roster} members" if result.group
           else f"roster: {result.roster}")
    console.print(f"{result.concurrent} servers at once ({who}); the "
                  "sizing rule of The Littlest JupyterHub:", highlight=False)
    no_memory = sum(1 for value in result.memory_per_user if value is None)
    if result.memory_needed is None:
        console.print(f"  memory: {verdict(None)}: {no_memory} of them have no memory limit "
                      "and may each use all of it; set limits.memory (and per group) in "
                      "hub.yaml", highlight=False)
    else:
        console.print(f"  memory: {verdict(result.memory_ok)}: needs "
                      f"{format_size(result.memory_needed)} (their limits + 128M for the hub), "
                      f"this machine has {format_size(result.memory_total)}", highlight=False)
    if result.cpu_needed is None:
        console.print(f"  CPUs:   {verdict(None)}: some have no CPU limit; set limits.cpu",
                      highlight=False)
    else:
        console.print(f"  CPUs:   {verdict(result.cpu_ok)}: needs {result.cpu_needed:g} "
                      f"(their limits + 20%), this machine has {result.cpus}", highlight=False)
    fits = "fit" if result.idle_memory <= result.memory_total else "do NOT fit"
    console.print(f"  started and idle (prewarmed, before anyone runs code) they {fits}: "
                  f"{format_size(result.idle_memory)} of {format_size(result.memory_total)}",
                  highlight=False)
    console.print(f"  limits are {result.enforcement}", highlight=False)
_DOCTOR_MARKS = {"ok": "ok", "warning": "WARNING", "problem": "PROBLEM"}
DOCTOR_OK_LISTED = 5  # more ok findings in one check are counted, not listed (--json lists)
WIDTH = 100


def _noun(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@text.register
def _(result: DoctorResult, console: Console) -> None:
    def say(line: str = "") -> None:
        console.print(line, highlight=False, markup=False, emoji=False)

    def para(mark: str, body: str) -> None:
        say(textwrap.fill(body, WIDTH, initial_indent=f"  {mark:<9}",
                          subsequent_indent=" " * 11, break_on_hyphens=False))

    say(f"hub '{result.hub}' ({result.mode} mode), {result.config}")
    if result.fixing:
        say()
        if not result.changes:
            say("--fix: nothing was safe to repair; nothing was changed")
        else:
            say(f"--fix made {_noun(len(result.changes), 'change')}; what remains is below:")
        for change in result.changes:
            if change.error:
                para("FAILED", f"{change.command}: {change.error}")
            else:
                para("changed", f"{change.command}: {change.before} -> {change.after}")
    for check in result.checks:
        found = [finding for finding in result.findings if finding.check == check.name]
        say()
        say(check.title)
        if not found:
            para("-", "nothing to check")
        fine = [finding for finding in found if finding.status == "ok"]
        if len(fine) > DOCTOR_OK_LISTED:
            para("ok", f"{len(fine)} checked, each as it should be (--json lists them)")
        else:
            for finding in fine:
                para("ok", finding.explanation)
        for finding in found:
            if finding.status == "ok":
                continue
            para(_DOCTOR_MARKS[finding.status], finding.explanation)  # names its fix
    problems, warnings = result.count("problem"), result.count("warning")
    say()
    if not problems and not warnings:
        say("nothing wrong")
        return
    remains = "remain" if result.fixing else "found"
    line = f"{_noun(problems, 'problem')} and {_noun(warnings, 'warning')} {remains}"
    if result.fixable and not result.fixing:
        line += (f"; `hubkeeper doctor --fix` repairs {result.fixable} of them safely and "
                 "shows each change")
    say(line + (" (exit 1)" if problems else ""))


@text.register
def _(result: ServiceInstall, console: Console) -> None:
    lines = [f"wrote {result.path} (recorded in the journal)" if result.written else
             f"{result.path} already holds what hubkeeper writes: nothing changed"]
    if not result.systemd:
        lines.append(not_running_message(result.pid1))
        if result.hub_pid is not None:
            lines.append(f"a hub of this hub.yaml already runs (pid {result.hub_pid or '?'}, "
                         "`hubkeeper up`)")
    else:
        lines += [f"ran: {command}" for command in result.commands]
        lines.append(f"{result.unit}: {result.active}, {result.enabled}; its log: "
                     f"journalctl -u {result.unit}")
        if result.restart_needed:
            lines.append(f"the running hub keeps the old unit until `systemctl restart "
                         f"{result.unit}` (that stops every user's server)")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: ServiceUninstall, console: Console) -> None:
    reload = "systemctl daemon-reload"  # runs after the files are gone
    lines = [f"ran: {command}" for command in result.commands if command != reload]
    lines += [f"removed {path} (and its journal record)" for path in result.removed]
    lines += [f"ran: {reload}"] * (reload in result.commands)
    if not result.removed:
        lines.append(f"no unit of hub '{result.hub}' was installed by hubkeeper: nothing "
                     "to remove")
    if result.left_alone:
        lines.append(f"{result.left_alone} was not written by hubkeeper: left alone")
    if not result.systemd and result.removed:
        lines.append(f"systemd is not running on this machine (PID 1 is {result.pid1}): "
                     "there was nothing to stop or disable")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: ServiceState, console: Console) -> None:
    lines = [f"{result.path}: {result.file}: {result.detail}"]
    if result.systemd:
        lines.append(f"{result.unit}: {result.active}, {result.enabled}")
    else:
        lines.append(f"systemd is not running on this machine (PID 1 is {result.pid1})")
    if result.hub_pid is not None:
        lines.append(f"a hub of this hub.yaml runs (pid {result.hub_pid or '?'})")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: TlsStatusResult, console: Console) -> None:
    cert = result.certificate

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    say(f"{cert.url}: certificate {cert.file} ({cert.source})")
    if cert.present:
        say(f"  subject   {cert.subject}")
        say(f"  names     {', '.join(cert.names) or '-'}"
            + ("" if cert.covers_host else f"   (NOT {cert.host})"))
        say(f"  issuer    {cert.issuer}")
        say(f"  valid     {cert.not_before} to {cert.not_after} ({cert.days_left} days left)")
    say("ok" if cert.ok else f"PROBLEM: {cert.problem}")
