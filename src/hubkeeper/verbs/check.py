"""`hubkeeper check`: validate hub.yaml, and its fit to this machine, without changing it.

Every problem is reported at once: hub.yaml's own rules, its roster, the mode, backend and
login against who runs hubkeeper, and the facts of this machine."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import InvalidInput, Problem
from hubkeeper.config.loader import SCHEMA_HINT, LoadedSpec, load_for_check
from hubkeeper.config.rules.mode import Mode, auth_kind, effective_mode, mode_problems
from hubkeeper.config.rules.roster import group_folder_problems, roster_problems
from hubkeeper.host.accounts import observe
from hubkeeper.host.preflight import cluster_problems, machine_problems, to_make
from hubkeeper.plan.accounts import host_problems
from hubkeeper.roster import Roster, build_roster
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import state_paths


@dataclass(frozen=True)
class CheckResult:
    config: str
    hub: str
    mode: str
    backend: str
    auth: str
    users: int
    admins: int
    notes: tuple[str, ...] = ()  # e.g. what the first `apply` will create


def check(config: Path) -> CheckResult:
    """hub.yaml's own rules, its roster, its mode for this account, then the machine's facts:
    every problem found is raised at once (InvalidInput, exit 2)."""
    loaded, problems = load_for_check(config)
    hint = SCHEMA_HINT if problems else None
    own_rules_hold = not problems
    roster: Roster | None = None
    try:
        roster = build_roster(loaded)
    except InvalidInput as exc:  # reported with the rest; the rules of its groups wait
        problems += exc.problems
    spec = loaded.spec
    if spec.backend == "kubernetes":
        # Nothing of it runs here: hub.yaml and the roster are all there is to check.
        if roster is not None:
            problems += cluster_problems(loaded, roster)
        _refuse(loaded, problems, hint)
        assert roster is not None
        return _result(loaded, roster, "cluster", spec.auth.kind or "")
    is_root = os.geteuid() == 0
    problems += mode_problems(loaded, is_root)
    mode = effective_mode(spec, is_root)
    if roster is not None:
        problems += roster_problems(loaded, roster.groups)
        problems += group_folder_problems(loaded, roster.groups)
    if not own_rules_hold:
        # The machine's facts build on hub.yaml's own rules (hub.url has a certificate, a
        # hook has a script): asked of a hub.yaml that breaks them, they could only mislead.
        _refuse(loaded, problems, hint)
    paths = state_paths(loaded, is_root)
    problems += machine_problems(loaded, mode, paths, starting=False)
    notes: tuple[str, ...] = ()
    if mode == "system" and roster is not None:
        # Before the first apply the roster's accounts do not exist yet: that is apply's
        # work, not a problem. A name taken by an account or group we did not make is.
        host = observe()
        problems += host_problems(roster, host, Journal.load(paths.journal))
        making = to_make(roster, host)
        if making.accounts or making.groups:
            notes = (str(making),)
    _refuse(loaded, problems, hint)
    assert roster is not None  # else its problems were raised
    return _result(loaded, roster, mode, auth_kind(spec, mode), notes)


def _refuse(loaded: LoadedSpec, problems: list[Problem], hint: str | None) -> None:
    """All problems at once, each once, hub.yaml's in the order of its lines."""
    if not problems:
        return
    shown = str(loaded.path)
    unique = sorted(dict.fromkeys(problems),
                    key=lambda p: (p.file != shown, p.file, p.line or 0, p.column or 0))
    raise InvalidInput(unique, hint=hint)


def _result(loaded: LoadedSpec, roster: Roster, mode: Mode | str, auth: str,
            notes: tuple[str, ...] = ()) -> CheckResult:
    return CheckResult(
        config=str(loaded.path),
        hub=loaded.spec.hub.name,
        mode=mode,
        backend=loaded.spec.backend,
        auth=auth,
        users=len(roster.members),
        admins=sum(1 for member in roster.members if member.admin),
        notes=notes,
    )
