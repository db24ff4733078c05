"""`<state>/snapshot-runs.json`: how the last snapshot run went on each target (finished
when, ok or failed, and why), written by `hubkeeper snapshot` after each run under the
snapshot lock, read by the hub's metrics (hubkeeper_snapshot_last_failed). A target's folder
alone cannot say that a run failed: a failed run leaves the folder as it was.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.files import write_atomic

SCHEMA = 1


@dataclass(frozen=True)
class TargetRun:
    target: str  # its absolute path
    finished: str  # ISO 8601, UTC
    ok: bool
    error: str | None = None


def read_runs(path: Path) -> dict[str, TargetRun]:
    """The last run per target; {} when none was recorded or the record is unreadable."""
    try:
        record = json.loads(path.read_text())
        return {target: TargetRun(target, str(run["finished"]), bool(run["ok"]),
                                  run.get("error"))
                for target, run in record["targets"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def record_runs(path: Path, runs: list[TargetRun]) -> None:
    """Record `runs` over the last runs of the same targets (other targets are kept)."""
    known = read_runs(path)
    known.update((run.target, run) for run in runs)
    record = {"schema": SCHEMA, "targets": {
        target: {"finished": run.finished, "ok": run.ok, "error": run.error}
        for target, run in sorted(known.items())}}
    write_atomic(path, (json.dumps(record, indent=1) + "\n").encode(), mode=0o600)


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
