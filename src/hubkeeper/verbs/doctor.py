"""`hubkeeper doctor [--fix]`: check the hub and this machine, and explain what is wrong.

Every check of hubkeeper.doctor.CHECKS runs against one observation of the machine. With
--fix, under apply's lock, the checks run again, every fix marked safe is applied (modes of
what hubkeeper made: chmod of one path, never recursive; the top of a data folder as apply
sets it), and the checks run a third time, so the result shows what changed and what
remains. Accounts are never touched and nothing is deleted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.locks import apply_lock
from hubkeeper.config.loader import LoadedSpec, load
from hubkeeper.doctor import CHECKS, Check, Context, Finding
from hubkeeper.doctor.findings import error_text
from hubkeeper.errors import HubkeeperError
from hubkeeper.host.files import free_bytes
from hubkeeper.host.journal import Journal
from hubkeeper.host.statedir import StatePaths, state_paths
from hubkeeper.host.users import HostUsers, observe
from hubkeeper.hub.runtime import resolve_mode
from hubkeeper.roster import Roster, build_roster

EXIT_OK = 0  # nothing wrong (warnings allowed)
EXIT_PROBLEMS = 1  # problems remain
# 2: bad input (hub.yaml, roster, command line), as everywhere in the CLI (InvalidInput)


@dataclass(frozen=True)
class CheckShown:
    name: str
    title: str


@dataclass(frozen=True)
class ShownFix:
    command: str
    before: str
    after: str
    safe: bool  # `doctor --fix` runs it; otherwise it is for the operator to run by hand


@dataclass(frozen=True)
class Reported:
    check: str
    status: str  # ok | warning | problem
    subject: str
    explanation: str
    fix: ShownFix | None


@dataclass(frozen=True)
class Change:
    check: str
    subject: str
    command: str
    before: str
    after: str
    error: str | None  # why it could not be made; None: done


@dataclass(frozen=True)
class DoctorResult:
    config: str
    hub: str
    mode: str
    fixing: bool  # --fix was given
    checks: tuple[CheckShown, ...]  # in the order shown
    findings: tuple[Reported, ...]  # after the fixes, when fixing
    changes: tuple[Change, ...]

    def count(self, status: str) -> int:
        return sum(1 for finding in self.findings if finding.status == status)

    @property
    def fixable(self) -> int:
        return sum(1 for finding in self.findings if finding.fix and finding.fix.safe)

    @property
    def exit_code(self) -> int:
        return EXIT_PROBLEMS if self.count("problem") else EXIT_OK


def gather(loaded: LoadedSpec, roster: Roster, mode: str, paths: StatePaths) -> Context:
    """Observe the machine once for every check."""
    journal: Journal | None = None
    journal_error = None
    try:
        journal = Journal.load(paths.journal)
    except HubkeeperError as exc:
        journal_error = error_text(exc)
    host = observe() if mode == "system" else HostUsers({}, {}, frozenset())
    return Context(loaded, roster, mode, paths, journal, journal_error, host,
                   frozenset({0, os.geteuid()}), free_bytes)


def run_checks(ctx: Context, checks: Sequence[Check]) -> list[Finding]:
    findings: list[Finding] = []
    for check in checks:
        try:
            findings += check.run(ctx)
        except HubkeeperError as exc:
            findings.append(Finding(check.name, "problem", check.name,
                                    f"This check could not run: {error_text(exc)}"))
        except OSError as exc:
            findings.append(Finding(check.name, "problem", exc.filename or check.name, (
                f"This check could not run: {exc.strerror} ({exc.filename}). Run `hubkeeper "
                "doctor` as the account that runs the hub (root in system mode).")))
    return findings


def _safe(finding: Finding) -> bool:
    return finding.fix is not None and finding.fix.safe and finding.fix.run is not None


def _apply_fix(finding: Finding) -> Change:
    fix = finding.fix
    assert fix is not None and fix.run is not None
    error = None
    try:
        fix.run()
    except HubkeeperError as exc:
        error = exc.message
    except OSError as exc:
        error = f"{exc.strerror or exc}"
    return Change(finding.check, finding.subject, fix.command, fix.before, fix.after, error)


def _reported(finding: Finding) -> Reported:
    fix = finding.fix
    shown = ShownFix(fix.command, fix.before, fix.after, _safe(finding)) if fix else None
    return Reported(finding.check, finding.status, finding.subject, finding.explanation, shown)


def doctor(config: Path, fix: bool = False, checks: Sequence[Check] = CHECKS) -> DoctorResult:
    loaded = load(config)  # bad input: InvalidInput (exit 2) before anything is looked at
    roster = build_roster(loaded)
    is_root = os.geteuid() == 0
    mode = resolve_mode(loaded, is_root)
    paths = state_paths(loaded, is_root)

    def look() -> list[Finding]:
        return run_checks(gather(loaded, roster, mode, paths), checks)

    findings = look()
    changes: list[Change] = []
    if fix and any(_safe(finding) for finding in findings):
        with apply_lock(paths):  # no apply (or another doctor --fix) changes things meanwhile
            changes = [_apply_fix(finding) for finding in look() if _safe(finding)]
        findings = look()
    return DoctorResult(
        config=str(loaded.path), hub=loaded.spec.hub.name, mode=mode, fixing=fix,
        checks=tuple(CheckShown(check.name, check.title) for check in checks),
        findings=tuple(_reported(finding) for finding in findings),
        changes=tuple(changes),
    )
