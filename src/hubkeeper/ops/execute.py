"""The one executor: each action is journaled as an intent, run by its kind's effector, and
its result journaled, so that a run killed half-way leaves a journal the next run (or
`retire`) can finish from.

An `Effector` says how one kind of action is carried out: `intend` records what is about to
happen in the journal (saved before `run`), `run` changes the machine, `confirm` records the
result. Effectors whose host function journals by itself (host/installed.install_file and
remove_file do, record by record) need neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.plan.actions import Action
from hubkeeper.state.journal import Journal

Step = Callable[[Action], object]


@dataclass(frozen=True)
class Effector:
    run: Step
    intend: Callable[[Action], None] | None = None
    confirm: Callable[[Action], None] | None = None
    # False: the confirmed result may wait for the end of the run to be saved (a lock
    # flag, which the next apply reads back from /etc anyway); the intent is always saved.
    save_each: bool = True


Effectors = Mapping[str, Effector]


def execute(actions: Iterable[Action], effectors: Effectors, journal: Journal | None = None,
            progress: Callable[[Action], None] | None = None) -> tuple[Action, ...]:
    """Run `actions` in order, each through its kind's effector. Returns those done; the
    first failure stops the run (what it did is in the journal)."""
    done: list[Action] = []
    unsaved = False
    try:
        for action in actions:
            effector = effectors.get(action.kind)
            if effector is None:
                raise HubkeeperError(f"no effector for {action.kind}: {action}")
            if effector.intend is not None and journal is not None:
                effector.intend(action)
                journal.save()  # the intent is on disk before the machine changes
            effector.run(action)
            if effector.confirm is not None and journal is not None:
                effector.confirm(action)
                if effector.save_each:
                    journal.save()
                else:
                    unsaved = True
            done.append(action)
            if progress is not None:
                progress(action)
    finally:
        if unsaved and journal is not None:
            journal.save()
    return tuple(done)


