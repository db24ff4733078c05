"""`hubkeeper retire`: end a hub. Shows the plan; with --yes stops the hub and removes exactly
what the journal says hubkeeper created, once a verified archive holds every home and data
folder as they are now. Leaves a retirement record in the state directory and the archive.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import HubLock, apply_lock
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.context.hub import Hub
from hubkeeper.host.running import orphan_proxy, running_hub, stop_hub
from hubkeeper.lifecycle.archive import recorded_archives
from hubkeeper.lifecycle.archive_verify import verify_archive
from hubkeeper.lifecycle.removal import Remover, stop_accounts, stop_process
from hubkeeper.lifecycle.retirement import (
    ARCHIVE_RECORD,
    RECORD_SCHEMA,
    ArchiveVerdict,
    Item,
    Plan,
    Progress,
    archive_verdict,
    file_items,
    make_plan,
    read_record,
    record_path,
    write_record,
)
from hubkeeper.ops.retire import undo_installed
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import StatePaths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetireResult:
    config: str
    hub: str
    state_dir: str
    # plan: shown, nothing changed | refused: the archive check failed, nothing removed |
    # retired: done now | already-retired: an earlier run finished it
    status: str
    items: tuple[Item, ...]  # the plan; when retired: what was removed and what was kept
    archive: ArchiveVerdict | None
    record: str | None  # RETIRED.json
    retired_at: str | None = None
    hub_stopped: int | None = None  # pid of the `hubkeeper up` stopped
    resumed: bool = False  # an earlier retire was killed; this one finished it


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _items(entries: list[dict]) -> tuple[Item, ...]:
    return tuple(Item(e["kind"], e["name"], e.get("detail", ""), e.get("refused"))
                 for e in entries)


def choose_archive(paths: StatePaths, given: Path | None, record: dict | None
                   ) -> tuple[Path | None, str | None]:
    """The archive to check (given, else the one a killed retire used, else the newest
    recorded) and the manifest SHA-256 recorded for it when it was written."""
    archives = recorded_archives(paths)
    recorded = {str(Path(a["path"]).resolve()): a.get("manifest_sha256") for a in archives}
    # `users remove` records its one-user archives too: never the newest archive of the hub
    whole = [str(Path(a["path"]).resolve()) for a in archives if not a.get("user")]
    if record and record.get("archive"):
        recorded.setdefault(record["archive"]["path"], record["archive"]["manifest_sha256"])
    if given is not None:
        directory = given.resolve()
    elif record and record.get("archive"):
        directory = Path(record["archive"]["path"])
    elif whole:
        directory = Path(whole[-1])
    else:
        return None, None
    return directory, recorded.get(str(directory))


def _keep_extra(loaded: LoadedSpec, paths: StatePaths, archive: Path | None
                ) -> dict[Path, str]:
    keep = {Path(os.path.realpath(paths.root)): "the state directory",
            Path(os.path.realpath(loaded.path)): "hub.yaml"}
    if archive is not None:
        keep[Path(os.path.realpath(archive))] = "the archive"
    return keep


def _running(loaded: LoadedSpec, paths: StatePaths) -> tuple[Item, ...]:
    items = []
    pid = running_hub(paths)
    if pid is not None:
        items.append(Item("hub", str(pid or "unknown"), f"`hubkeeper up` holding {paths.lock}; "
                          "SIGTERM stops it with its proxy and servers"))
    elif (proxy := orphan_proxy(paths, loaded.spec.proxy.api_port)) is not None:
        items.append(Item("proxy", str(proxy), "left running by a hub that was killed"))
    return tuple(items)


def retire(opened: Hub, yes: bool, archive: Path | None, progress: Progress) -> RetireResult:
    loaded, mode, paths = opened.loaded, opened.mode, opened.paths
    hub = loaded.spec.hub.name

    def result(status: str, items: tuple[Item, ...], verdict: ArchiveVerdict | None,
               **more) -> RetireResult:
        recorded = record_path(paths)
        return RetireResult(str(loaded.path), hub, str(paths.root), status, items, verdict,
                            str(recorded) if recorded.exists() else None, **more)

    record = read_record(paths)
    if record and record.get("state") == "retired":
        return result("already-retired", _items(record["removed"] + record["kept"]), None,
                      retired_at=record.get("finished"))
    if not paths.root.is_dir():
        raise HubkeeperError(f"{loaded.path}: hub {hub!r} has no state directory at "
                             f"{paths.root}", hint="nothing to retire here: is this the "
                             "hub.yaml of the hub you mean (--config)?")
    directory, expected = choose_archive(paths, archive, record)
    keep_extra = _keep_extra(loaded, paths, directory)

    def check(plan: Plan, full: bool) -> ArchiveVerdict:
        def verify() -> list[str]:
            if not full or directory is None:
                return []
            return verify_archive(directory, lambda d, t, what: progress(d, t, f"verify {what}"))
        return archive_verdict(directory, hub, list(plan.trees), verify, expected, progress)

    journal = opened.load_journal()
    plan = make_plan(journal, paths, mode, keep_extra, _running(loaded, paths))
    verdict = check(plan, full=True)
    if not yes or not verdict.ok:
        return result("plan" if verdict.ok else "refused", plan.items, verdict,
                      resumed=record is not None)

    # --yes, and the archive holds everything: stop whatever could still write, check again.
    progress(0, 0, "stopping the hub")
    stopped = stop_hub(paths)
    lock = HubLock(paths)
    paths.run.mkdir(parents=True, exist_ok=True)
    lock.acquire()  # no `up` starts while we remove (the lock file goes with the state)
    try:
        with apply_lock(paths):
            proxy = orphan_proxy(paths, loaded.spec.proxy.api_port)
            if proxy is not None:
                stop_process(proxy)
            journal = opened.load_journal()
            if mode == "system":
                progress(0, 0, "stopping the accounts' processes")
                stop_accounts(journal)
            plan = make_plan(journal, paths, mode, keep_extra)
            verdict = check(plan, full=False)
            if not verdict.ok:
                return result("refused", plan.items, verdict, hub_stopped=stopped,
                              resumed=record is not None)
            record = _begin(record, loaded, paths, verdict, stopped)
            remover = Remover(paths, journal, record, mode, keep_extra, progress)
            remove_installed(loaded, journal, remover)
            remover.run()
    finally:
        lock.release()
    record["state"], record["finished"] = "retired", _now()
    write_record(record_path(paths), record)
    if verdict.path:
        write_record(Path(verdict.path) / ARCHIVE_RECORD, record)
    return result("retired", _items(record["removed"] + record["kept"]), verdict,
                  retired_at=record["finished"], hub_stopped=stopped,
                  resumed=record.get("runs", 1) > 1)


def remove_installed(loaded: LoadedSpec, journal: Journal, remover: Remover) -> None:
    """The files hubkeeper wrote outside its state dir, first: the systemd unit (disabled, so
    the retired hub does not start at the next boot), then the nginx site and certbot hook
    (nginx reloaded), by the inverse actions of plan/retirement.py. A hand-edited one is
    kept, with the reason, and the rest goes on."""
    before = {item.name: item for item in file_items(journal)}
    undo_installed(loaded, journal)
    for path, item in before.items():
        if path not in journal.files:
            remover.note(Item("file", path, item.detail))
        else:
            remover.note(Item("file", path, item.detail, item.refused or "was not removed: "
                              "another unit of this hub was changed by hand"))
    remover.flush()


def _begin(record: dict | None, loaded: LoadedSpec, paths: StatePaths, verdict: ArchiveVerdict,
           stopped: int | None) -> dict:
    """The retirement record, written before the first removal (up and apply refuse from
    then on); a killed retire's record is continued."""
    archive = {"path": verdict.path, "manifest_sha256": verdict.manifest_sha256,
               "finished": verdict.finished}
    if record is None:
        record = {"schema": RECORD_SCHEMA, "kind": "hubkeeper-retirement",
                  "hub": loaded.spec.hub.name, "config": str(loaded.path),
                  "state_dir": str(paths.root), "state": "retiring", "started": _now(),
                  "finished": None, "archive": archive, "archives": [], "runs": 0,
                  "removed": [], "kept": [], "written_by": f"hubkeeper {__version__}"}
    if archive not in record["archives"]:
        record["archives"].append(archive)
    record["archive"] = archive
    record["runs"] = record.get("runs", 0) + 1
    if stopped is not None:
        record["removed"].append({"kind": "hub", "name": str(stopped),
                                  "detail": "`hubkeeper up` stopped with SIGTERM"})
    write_record(record_path(paths), record)
    return record
