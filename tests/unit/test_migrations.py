"""State format migrations (state/migrations.py). hubkeeper has written one state format so
far, so the product has no step yet: these tests register their own steps (the machinery
takes them as arguments) and check the product's refusals with its real schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import HubLock
from hubkeeper.state.migrations import (
    MIGRATIONS,
    STATE_SCHEMA,
    Migration,
    check_readable,
    migrate,
    pending,
    read_version,
)
from hubkeeper.state.statedir import StatePaths, ensure_layout
from tests.support.hubproc import hk, write_config

ME = f"hubkeeper {__version__}"


def counted(name: str):
    """A step that appends `name` to <state>/steps.log once per run (idempotent: a second
    run finds its file and changes nothing else)."""
    def run(paths: StatePaths) -> None:
        with open(paths.root / "steps.log", "a") as log:
            log.write(name + "\n")
        (paths.root / f"{name}.done").write_text("")
    return run


STEPS = (Migration(2, "two", counted("two")), Migration(3, "three", counted("three")))


def state_of(tmp_path: Path, schema: int, created_by: str = "hubkeeper 0.0.9") -> StatePaths:
    paths = StatePaths(tmp_path / "state")
    ensure_layout(paths)
    paths.version_file.write_text(json.dumps({"schema": schema, "created_by": created_by}))
    return paths


def test_the_product_has_a_step_for_every_schema_it_migrates() -> None:
    assert [step.to for step in MIGRATIONS] == list(range(2, STATE_SCHEMA + 1))


def test_older_state_is_migrated_step_by_step_in_order(tmp_path: Path) -> None:
    paths = state_of(tmp_path, 1)
    assert [step.to for step in pending(paths, STEPS, 3)] == [2, 3]
    done = migrate(paths, STEPS, 3)
    assert done == ["state schema 1 -> 2: two", "state schema 2 -> 3: three"]
    assert (paths.root / "steps.log").read_text() == "two\nthree\n"
    assert json.loads(paths.version_file.read_text()) == {
        "schema": 3, "created_by": "hubkeeper 0.0.9", "migrated_by": ME}
    assert migrate(paths, STEPS, 3) == []  # twice: nothing more
    assert (paths.root / "steps.log").read_text() == "two\nthree\n"


def test_a_migration_killed_mid_step_resumes_at_that_step(tmp_path: Path) -> None:
    paths = state_of(tmp_path, 1)
    script = f"""
import sys, time
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from tests.unit.test_migrations import STEPS, counted
from hubkeeper.state.migrations import Migration, migrate
from hubkeeper.state.statedir import StatePaths

def stuck(paths):
    counted("three")(paths)
    print("in step three", flush=True)
    time.sleep(120)

migrate(StatePaths(Path({str(paths.root)!r})), (STEPS[0], Migration(3, "three", stuck)), 3)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "in step three\n"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert read_version(paths).schema == 2  # step two recorded, step three not
    assert migrate(paths, STEPS, 3) == ["state schema 2 -> 3: three"]
    assert (paths.root / "steps.log").read_text() == "two\nthree\nthree\n"
    assert read_version(paths).schema == 3


def test_newer_state_is_refused_naming_both_schemas_and_its_writer(tmp_path: Path) -> None:
    paths = state_of(tmp_path, STATE_SCHEMA + 1, "hubkeeper 9.0.0")
    before = paths.version_file.read_bytes()
    message = (f"holds state of schema {STATE_SCHEMA + 1}, written by hubkeeper 9.0.0; "
               f"this {ME} reads schema {STATE_SCHEMA} and never reads or writes a newer one")
    for attempt in (lambda: migrate(paths), lambda: check_readable(paths),
                    lambda: ensure_layout(paths)):
        with pytest.raises(HubkeeperError, match=message) as refused:
            attempt()
        assert "run hubkeeper 9.0.0 or newer" in refused.value.hint
    assert paths.version_file.read_bytes() == before


def test_older_state_is_refused_by_readers_with_the_way_forward(tmp_path: Path) -> None:
    paths = state_of(tmp_path, 1)
    with pytest.raises(HubkeeperError, match="reads schema 3") as refused:
        check_readable(paths, 3)
    assert "`hubkeeper up` or `hubkeeper apply`" in refused.value.hint
    assert read_version(paths).schema == 1


def test_read_only_commands_refuse_newer_state_and_change_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert hk(config, "plan").returncode == 0  # no state yet: nothing to refuse
    paths = state_of(tmp_path, STATE_SCHEMA + 1, "hubkeeper 9.0.0")
    before = paths.version_file.read_bytes()
    (paths.root / "journal.json").write_text('{"schema": 1}')
    for command in (["users", "list"], ["apply"], ["up"]):
        refused = hk(config, *command)
        assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
        assert "written by hubkeeper 9.0.0" in refused.stderr, refused.stderr
    assert paths.version_file.read_bytes() == before


def test_no_migration_while_a_hub_runs_on_the_state(tmp_path: Path) -> None:
    paths = state_of(tmp_path, 1)
    lock = HubLock(paths)
    lock.acquire()
    try:
        with pytest.raises(HubkeeperError, match="another hub already runs"):
            migrate(paths, STEPS, 3)
    finally:
        lock.release()
    assert read_version(paths).schema == 1
    assert not (paths.root / "steps.log").exists()


def test_a_gap_in_the_steps_is_an_error_before_any_step(tmp_path: Path) -> None:
    paths = state_of(tmp_path, 1)
    with pytest.raises(HubkeeperError, match="no way to migrate schema 1 to 3"):
        migrate(paths, STEPS[1:], 3)
    assert not (paths.root / "steps.log").exists()
