"""The hub's systemd unit: its state, what `hubkeeper service install` would do, and what
removing it takes (`service uninstall`, `retire`). Pure.

The unit is installed only by the explicit `service install` verb, never by `apply`; `plan`
shows what that verb would do. Removal is planned from the journal alone, so `retire` needs
no hub.yaml to undo it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hubkeeper.plan.actions import Action
from hubkeeper.state.journal import Journal

UNIT_KIND = "systemd-unit"
RUNNING = ("active", "activating", "reloading")


@dataclass(frozen=True)
class UnitDesired:
    """The unit hub.yaml asks for (render/systemd.render_unit)."""

    name: str  # hubkeeper-<hub>.service
    path: str
    sha256: str | None  # of the rendered unit; None when it cannot be rendered here


@dataclass(frozen=True)
class UnitFile:
    """A unit file as it is now."""

    path: str
    sha256: str | None  # None: no file there
    problem: str | None  # why hubkeeper may not replace or remove it (state/installed.py)


@dataclass(frozen=True)
class UnitFacts:
    files: dict[str, UnitFile]  # the desired path and every journaled unit
    systemd: bool  # systemd is PID 1
    active: str | None = None  # `systemctl is-active` of the desired unit; None: no systemd
    enabled: str | None = None


def journaled_units(journal: Journal) -> list[str]:
    return sorted(key for key, record in journal.files.items() if record.kind == UNIT_KIND)


def unit_state(desired: UnitDesired, facts: UnitFacts, journal: Journal) -> tuple[str, str]:
    """The unit file's state (absent | installed | outdated | hand-edited | foreign |
    missing) and one sentence on it, with what to do."""
    record = journal.files.get(desired.path)
    found = facts.files.get(desired.path)
    sha = found.sha256 if found is not None else None
    if record is None and sha is None:
        return "absent", "not installed: `hubkeeper service install` writes it"
    if record is None:
        return "foreign", ("exists and was not written by hubkeeper (it is not in the "
                           "journal); hubkeeper leaves it alone")
    if sha is None:
        return "missing", ("hubkeeper wrote it but it was deleted; `hubkeeper service "
                           "install` writes it again")
    if sha != record.sha256 and record.state != "creating":
        return "hand-edited", ("was changed by hand since hubkeeper wrote it; hubkeeper "
                               "leaves it alone")
    if desired.sha256 is not None and desired.sha256 != sha:
        return "outdated", ("as hubkeeper wrote it, but hub.yaml (or hubkeeper's place) "
                            "changed since: `hubkeeper service install`")
    return "installed", "as hubkeeper writes it"


def needs_writing(desired: UnitDesired, facts: UnitFacts, journal: Journal) -> bool:
    """host/installed.install_file's own test: a file is written unless it holds, as
    journaled, what hubkeeper would write."""
    record = journal.files.get(desired.path)
    found = facts.files.get(desired.path)
    return not (record is not None and record.state == "created" and found is not None
                and desired.sha256 is not None and found.sha256 == desired.sha256)


def plan_unit(desired: UnitDesired, facts: UnitFacts, journal: Journal) -> list[Action]:
    """What `hubkeeper service install` would do: write the unit (journaled) and, where
    systemd runs, reload it and enable and start the unit. Nothing when the file at the
    unit's path is not hubkeeper's to replace (install refuses and says why)."""
    found = facts.files.get(desired.path)
    if found is not None and found.problem:
        return []
    actions: list[Action] = []
    write = needs_writing(desired, facts, journal)
    if write:
        state, _ = unit_state(desired, facts, journal)
        actions.append(Action("install-systemd-unit", desired.path,
                              "" if state == "absent" else state))
    if facts.systemd:
        if write:
            actions.append(Action("daemon-reload", desired.name))
        if write or facts.enabled != "enabled" or facts.active not in RUNNING:
            actions.append(Action("enable-systemd-unit", desired.name, "enable --now"))
    return actions


def removal_problems(facts: UnitFacts, journal: Journal) -> list[tuple[str, str]]:
    """Journaled units that were changed by hand: (path, why). Removal refuses them all."""
    return [(path, facts.files[path].problem or "") for path in journaled_units(journal)
            if path in facts.files and facts.files[path].problem]


def plan_unit_removal(facts: UnitFacts, journal: Journal) -> list[Action]:
    """Stop, disable and remove every unit the journal lists (the inverse of
    install-systemd-unit), then reload systemd. Nothing when one was changed by hand: the
    caller says why (removal_problems)."""
    if removal_problems(facts, journal):
        return []
    ours = journaled_units(journal)
    actions: list[Action] = []
    if facts.systemd:
        for path in ours:
            found = facts.files.get(path)
            # A file deleted by hand may still be loaded: try, and let a failure pass.
            actions.append(Action("disable-systemd-unit", Path(path).name,
                                  "" if found is not None and found.sha256 else "file gone"))
    actions += [Action("remove-systemd-unit", path) for path in ours]
    if facts.systemd and ours:
        actions.append(Action("daemon-reload", "systemd"))
    return actions
