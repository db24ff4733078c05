"""The one shape of a change hubkeeper makes: an `Action`, planned by the pure planners in
`plan/` and run by `ops.execute`.

An action is its kind, its target (the account, hub user, group, path or unit acted on) and a
detail (what it changes). Whether it is destructive and how it is undone follow from its
kind (`EFFECTS`): most are undone by `retire` from the journal, which records them before
they happen; a few are undone by an inverse action. What cannot be undone (retire's removal
of accounts, homes and data) is not an action here: lifecycle/retirement.py plans it, after
a verified archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    # accounts and groups (plan/accounts.py)
    "create-group", "create-account", "create-home", "set-password", "add-to-group",
    "remove-from-group", "lock", "unlock",
    # data and environments (plan/data.py, ops/converge.py)
    "create-shared-dir", "create-group-folder", "link-in-home", "build-environment",
    # the running hub (plan/accounts.py)
    "hub-register", "hub-grant-admin", "hub-revoke-admin", "hub-create-group",
    "hub-add-to-group", "hub-remove-from-group", "hub-stop-server", "hub-unregister",
    # hub.url (plan/site.py), after everything above
    "remove-nginx-site", "remove-certbot-hook", "get-certificate", "install-certbot-hook",
    "install-nginx-site", "reload-nginx", "start-nginx",
    # the systemd unit (plan/unit.py)
    "install-systemd-unit", "enable-systemd-unit", "disable-systemd-unit",
    "remove-systemd-unit", "daemon-reload",
]

JOURNALED = "journaled: removed by retire"


@dataclass(frozen=True)
class Effect:
    destructive: bool  # it removes or replaces something that cannot be made again from hub.yaml
    undo: str  # the inverse action's kind, JOURNALED, or why there is none


def _inverse(kind: str) -> Effect:
    return Effect(False, kind)


EFFECTS: dict[str, Effect] = {
    "create-group": Effect(False, JOURNALED),
    "create-account": Effect(False, JOURNALED),
    "create-home": Effect(False, JOURNALED),
    "set-password": Effect(False, "none: a new password is set by the next reset"),
    "add-to-group": _inverse("remove-from-group"),
    "remove-from-group": _inverse("add-to-group"),
    "lock": _inverse("unlock"),
    "unlock": _inverse("lock"),
    "create-shared-dir": Effect(False, JOURNALED),
    "create-group-folder": Effect(False, JOURNALED),
    "link-in-home": Effect(False, "removed with the home by retire"),
    "build-environment": Effect(False, "removed with the state directory by retire"),
    "hub-register": _inverse("hub-unregister"),
    "hub-grant-admin": _inverse("hub-revoke-admin"),
    "hub-revoke-admin": _inverse("hub-grant-admin"),
    "hub-create-group": Effect(False, "removed with the hub's database by retire"),
    "hub-add-to-group": _inverse("hub-remove-from-group"),
    "hub-remove-from-group": _inverse("hub-add-to-group"),
    "hub-stop-server": Effect(False, "none needed: the user starts it again"),
    "hub-unregister": Effect(False, "hub-register (the user's data stays)"),
    "remove-nginx-site": Effect(False, "install-nginx-site (rendered from hub.yaml)"),
    "remove-certbot-hook": Effect(False, "install-certbot-hook (rendered from hub.yaml)"),
    "get-certificate": Effect(False, "none: the certificate stays (certbot delete)"),
    "install-certbot-hook": Effect(False, JOURNALED),
    "install-nginx-site": Effect(False, JOURNALED),
    "reload-nginx": Effect(False, "none needed"),
    "start-nginx": Effect(False, "none: nginx keeps running for other sites"),
    "install-systemd-unit": Effect(False, JOURNALED),
    "enable-systemd-unit": _inverse("disable-systemd-unit"),
    "disable-systemd-unit": _inverse("enable-systemd-unit"),
    "remove-systemd-unit": Effect(False, "install-systemd-unit (`hubkeeper service install`)"),
    "daemon-reload": Effect(False, "none needed"),
}


@dataclass(frozen=True)
class Action:
    kind: Kind
    subject: str  # the target: the account, hub user, group, path or unit acted on
    detail: str = ""  # what it changes: the group for a membership, the uid to reuse, ...

    @property
    def target(self) -> str:
        return self.subject

    @property
    def destructive(self) -> bool:
        return EFFECTS[self.kind].destructive

    @property
    def undo(self) -> str:
        """How it is undone: the inverse action's kind, JOURNALED, or why it is not."""
        return EFFECTS[self.kind].undo

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}" + (f" ({self.detail})" if self.detail else "")


def ordered(actions: list[Action], order: tuple[str, ...]) -> tuple[Action, ...]:
    """Actions sorted by their kind's place in `order`, stable within a kind."""
    rank = {kind: index for index, kind in enumerate(order)}
    return tuple(sorted(actions, key=lambda action: rank[action.kind]))
