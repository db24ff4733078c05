"""The state directory's format, carried forward: `<state>/VERSION` names the schema, and an
ordered list of migration steps brings an older state dir to this hubkeeper's.

    <state>/VERSION   {"schema": 2, "created_by": "hubkeeper 0.1.0",
                       "migrated_by": "hubkeeper 0.2.0"}

- Only `up` and `apply` migrate (they write the state anyway), right after hub.yaml loads,
  under the apply lock, and only while no hub runs on the state dir: a running hub of the
  older version reads the state too.
- A step changes how the state is stored, never what it says: that it runs before the
  roster and the machine are checked (a problem there stops `apply` after it) leaves
  nothing an operator would want undone.
- Each step is idempotent, and VERSION is rewritten atomically after each one, so a
  migration killed half-way resumes at the step that did not finish.
- Every other command, read-only ones first, refuses an older state dir (and says that `up`
  or `apply` migrates it) and a newer one (naming both schemas and the hubkeeper that wrote
  it): an older hubkeeper never reads, let alone writes, a format it does not know.
- A migrated state dir cannot go back: `hubkeeper rollback` to an older hubkeeper restores
  the snapshot taken before the upgrade (docs/lifecycle.md).

There is no migration yet: schema 1 is the only format hubkeeper has written. A step is
added with the change that needs it, and STATE_SCHEMA raised with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic
from hubkeeper.base.locks import HubLock, apply_lock

if TYPE_CHECKING:
    from hubkeeper.state.statedir import StatePaths

STATE_SCHEMA = 1
WRITER = f"hubkeeper {__version__}"


@dataclass(frozen=True)
class Migration:
    """One step: from schema `to - 1` to `to`. `run` must be idempotent (a kill may repeat
    it) and leave the state readable by schema `to`."""

    to: int
    summary: str  # for the operator: what changes on disk
    run: Callable[[StatePaths], None]


# In order, one per schema after 1.
MIGRATIONS: tuple[Migration, ...] = ()


@dataclass(frozen=True)
class StateVersion:
    schema: object  # an int, unless the file is damaged
    created_by: str
    migrated_by: str | None

    @property
    def writer(self) -> str:
        """The hubkeeper that last wrote the format."""
        return self.migrated_by or self.created_by


def read_version(paths: StatePaths) -> StateVersion:
    try:
        body = json.loads(paths.version_file.read_text())
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise HubkeeperError(
            f"cannot read {paths.version_file}: {exc}",
            hint="this file marks a hubkeeper state directory; restore it from a snapshot",
        ) from None
    return StateVersion(body.get("schema"), str(body.get("created_by", "an unknown hubkeeper")),
                        body.get("migrated_by"))


def write_version(paths: StatePaths, schema: int, created_by: str,
                  migrated_by: str | None = None) -> None:
    body: dict[str, object] = {"schema": schema, "created_by": created_by}
    if migrated_by:
        body["migrated_by"] = migrated_by
    write_atomic(paths.version_file, (json.dumps(body) + "\n").encode())


def newer_state(paths: StatePaths, found: StateVersion, target: int) -> HubkeeperError:
    return HubkeeperError(
        f"{paths.root} holds state of schema {found.schema}, written by {found.writer}; "
        f"this {WRITER} reads schema {target} and never reads or writes a newer one",
        hint=f"run {found.writer} or newer; to go back to this version, restore the "
        "snapshot taken before the upgrade (`hubkeeper rollback` does)")


def older_state(paths: StatePaths, found: StateVersion, target: int) -> HubkeeperError:
    return HubkeeperError(
        f"{paths.root} holds state of schema {found.schema}, written by {found.writer}; "
        f"this {WRITER} reads schema {target}",
        hint="stop the hub, then run `hubkeeper up` or `hubkeeper apply` with this hubkeeper: "
        "they migrate the state dir first (take a snapshot before, to be able to go back)")


def check_version(paths: StatePaths, target: int = STATE_SCHEMA) -> None:
    """Refuse a state dir whose VERSION names another schema than `target`."""
    found = read_version(paths)
    if found.schema == target:
        return
    if isinstance(found.schema, int) and found.schema > target:
        raise newer_state(paths, found, target)
    if isinstance(found.schema, int) and 1 <= found.schema < target:
        raise older_state(paths, found, target)
    raise HubkeeperError(f"{paths.version_file} names schema {found.schema!r}, which no "
                         "hubkeeper writes", hint="restore the state dir from a snapshot")


def check_readable(paths: StatePaths, target: int = STATE_SCHEMA) -> None:
    """For commands that read the state: refuse another schema. A state dir without a
    readable VERSION passes (not made yet, or not ours to read: the read itself says so)."""
    try:
        paths.version_file.stat()
    except OSError:
        return
    check_version(paths, target)


@dataclass(frozen=True)
class _StateDir:
    """A state dir known only by its root (the journal knows no more of it)."""

    root: Path

    @property
    def version_file(self) -> Path:
        return self.root / "VERSION"


def check_readable_beside(path: Path) -> None:
    """`check_readable` for the state dir holding the file `path` (the journal's check:
    every command that reads what hubkeeper recorded reads the journal)."""
    check_readable(_StateDir(path.parent))


def pending(paths: StatePaths, steps: Sequence[Migration] = MIGRATIONS,
            target: int = STATE_SCHEMA) -> list[Migration]:
    """The steps that bring this state dir to `target`, in order ([]: none; no change)."""
    found = read_version(paths)
    if found.schema == target:
        return []
    if not isinstance(found.schema, int) or found.schema > target or found.schema < 1:
        check_version(paths, target)  # raises: newer, or damaged
    chain = [step for step in steps if found.schema < step.to <= target]
    if [step.to for step in chain] != list(range(found.schema + 1, target + 1)):
        raise HubkeeperError(
            f"this {WRITER} has no way to migrate schema {found.schema} to {target} "
            f"(steps known: {[step.to for step in steps]})",
            hint="upgrade through the hubkeeper releases in between")
    return chain


def migrate(paths: StatePaths, steps: Sequence[Migration] = MIGRATIONS,
            target: int = STATE_SCHEMA) -> list[str]:
    """Bring an existing state dir to `target`, step by step; returns what was done.

    Under the apply lock, and refused while a hub runs on it. VERSION is rewritten after
    each step, so a kill resumes at the first step not recorded."""
    if not paths.version_file.exists() or not pending(paths, steps, target):
        return []  # no state yet (ensure_layout writes this schema), or already current
    HubLock(paths).check_free()
    done: list[str] = []
    with apply_lock(paths):
        HubLock(paths).check_free()  # a hub may have started before the lock was ours
        for step in pending(paths, steps, target):
            step.run(paths)
            found = read_version(paths)
            write_version(paths, step.to, found.created_by, WRITER)
            done.append(f"state schema {step.to - 1} -> {step.to}: {step.summary}")
    return done
