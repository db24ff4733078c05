"""Text for the hub's data over its life: snapshot, restore, archive, export, retire."""

from __future__ import annotations

from rich.console import Console

from hubkeeper.cli.render_base import LIST_AT_MOST, text
from hubkeeper.config.types import format_size
from hubkeeper.lifecycle.restore import RestoreAllResult, Restored
from hubkeeper.verbs.archive import ArchiveResult
from hubkeeper.verbs.archive import VerifyResult as ArchiveVerify
from hubkeeper.verbs.retire import RetireResult
from hubkeeper.verbs.snapshot import SnapshotList, SnapshotResult, SnapshotVerify
from hubkeeper.verbs.userzip import ExportResult


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
