"""`hubkeeper doctor [--fix]`: check the hub and this machine, and explain what is wrong.

Every check of hubkeeper.doctor.CHECKS runs against one observation of the machine. With
--fix, under apply's lock, the checks run again, every fix marked safe is applied (modes of
what hubkeeper made: chmod of one path, never recursive; the top of a data folder as apply
sets it), and the checks run a third time, so the result shows what changed and what
remains. Accounts are never touched and nothing is deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hubkeeper.base import exits
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import free_bytes
from hubkeeper.base.locks import apply_lock
from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Runtime
from hubkeeper.doctor import CHECKS, Check, Context, Finding
from hubkeeper.doctor.findings import error_text
from hubkeeper.host.accounts import HostUsers, observe
from hubkeeper.host.extra_config import settings_of
from hubkeeper.render.jupyterhub import render
from hubkeeper.state.journal import Journal


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
        # problems remain: FAILED; nothing wrong (warnings allowed): OK; bad input (hub.yaml,
        # roster, command line) raised InvalidInput before: BAD_INPUT, as everywhere
        return exits.FAILED if self.count("problem") else exits.OK


def gather(hub: Hub) -> Context:
    """Observe the machine once for every check (the hub's journal read anew each time)."""
    journal: Journal | None = None
    journal_error = None
    try:
        journal = hub.load_journal()
    except HubkeeperError as exc:
        journal_error = error_text(exc)
    host = observe() if hub.mode == "system" else HostUsers({}, {}, frozenset())
    return Context(hub.loaded, hub.roster, hub.mode, hub.paths, journal, journal_error, host,
                   frozenset({0, hub.euid}), free_bytes, lambda: rendered_settings(hub))


def rendered_settings(hub: Hub) -> frozenset[str]:
    """What hubkeeper's configuration of the hub sets (secrets redacted: only the names
    matter), with the page banner hub/launch.py adds to it."""
    config = render(hub.spec, Runtime.from_hub(hub, redact=True))
    return frozenset(settings_of(config) | {"JupyterHub.template_vars"})


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


def doctor(hub: Hub, fix: bool = False, checks: Sequence[Check] = CHECKS) -> DoctorResult:
    # bad input: InvalidInput (exit 2) before anything is looked at
    loaded, mode, paths = hub.resolved().loaded, hub.mode, hub.paths

    def look() -> list[Finding]:
        return run_checks(gather(hub), checks)

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
