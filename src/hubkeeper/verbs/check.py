"""`hubkeeper check`: validate hub.yaml, and its fit to this machine, without changing it.

Every problem is reported at once: hub.yaml's own rules, its roster, the mode, backend and
login against who runs hubkeeper, and the facts of this machine."""

from __future__ import annotations

from dataclasses import dataclass

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.config.backends import backend_of
from hubkeeper.config.loader import SCHEMA_HINT, LoadedSpec
from hubkeeper.config.rules.mode import Mode, auth_kind, effective_mode, mode_problems
from hubkeeper.config.rules.roster import group_folder_problems, roster_problems
from hubkeeper.context.hub import Hub
from hubkeeper.host.accounts import observe
from hubkeeper.host.preflight import cluster_problems, machine_problems, to_make
from hubkeeper.plan.accounts import host_problems
from hubkeeper.roster import Roster
from hubkeeper.state.statedir import (
    LDAP_BIND_HOW,
    LDAP_BIND_SECRET,
    LDAP_BIND_WHAT,
    OIDC_CLIENT_HOW,
    OIDC_SECRETS,
    read_operator_secret,
)


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


def check(hub: Hub) -> CheckResult:
    """hub.yaml's own rules, its roster, its mode for this account, then the machine's facts:
    every problem found is raised at once (InvalidInput, exit 2). The hub is opened with
    `checking=True`, so that hub.yaml's cross-field problems come here instead of raising."""
    loaded, problems = hub.loaded, list(hub.problems)
    hint = SCHEMA_HINT if problems else None
    own_rules_hold = not problems
    roster: Roster | None = None
    try:
        roster = hub.roster
    except InvalidInput as exc:  # reported with the rest; the rules of its groups wait
        problems += exc.problems
    spec = loaded.spec
    if not backend_of(spec).runs_here:
        # Nothing of it runs here: hub.yaml and the roster are all there is to check.
        if roster is not None:
            problems += cluster_problems(loaded, roster)
        _refuse(loaded, problems, hint)
        assert roster is not None
        return _result(loaded, roster, "cluster", spec.auth.kind or "")
    is_root = hub.is_root
    problems += mode_problems(loaded, is_root)
    mode = effective_mode(spec, is_root)
    if roster is not None:
        problems += roster_problems(loaded, roster.groups)
        problems += group_folder_problems(loaded, roster.groups)
    if not own_rules_hold:
        # The machine's facts build on hub.yaml's own rules (hub.url has a certificate, a
        # hook has a script): asked of a hub.yaml that breaks them, they could only mislead.
        _refuse(loaded, problems, hint)
    problems += machine_problems(loaded, mode, hub.paths, starting=False)
    problems += _operator_secret_problems(hub, auth_kind(spec, mode))
    notes: tuple[str, ...] = ()
    if mode == "system" and roster is not None:
        # Before the first apply the roster's accounts do not exist yet: that is apply's
        # work, not a problem. A name taken by an account or group we did not make is.
        host = observe()
        problems += host_problems(roster, host, hub.journal)
        making = to_make(roster, host)
        if making.accounts or making.groups:
            notes = (str(making),)
    _refuse(loaded, problems, hint)
    assert roster is not None  # else its problems were raised
    return _result(loaded, roster, mode, auth_kind(spec, mode), notes)


def _operator_secret_problems(hub: Hub, kind: str) -> list[Problem]:
    """The secrets the operator saves into the state dir for a provider (hubkeeper cannot
    make them): missing, empty or readable by others, each found at the field needing it."""
    wanted: list[tuple[tuple[str, ...], str, str, str]] = []
    if kind == "ldap" and hub.spec.auth.ldap.lookup_dn_search_user is not None:
        wanted.append((("auth", "ldap", "lookup_dn_search_user"), LDAP_BIND_SECRET,
                       LDAP_BIND_WHAT, LDAP_BIND_HOW))
    if kind == "oidc":
        wanted += [(("auth", "oidc"), name, what, OIDC_CLIENT_HOW) for name, what in OIDC_SECRETS]
    problems = []
    for loc, name, what, how in wanted:
        try:
            read_operator_secret(hub.paths, name, what, how)
        except HubkeeperError as exc:
            problems.append(hub.loaded.problem(
                loc, f"{exc.message} ({exc.hint})" if exc.hint else exc.message))
    return problems


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
