"""`<state>/removals.json`: the users `hubkeeper users remove` took off this hub, each with
the verified archive that holds their home.

A removal is recorded "removing" (with its archive) before its first change and "removed"
when it is done, so that a removal killed half-way is finished by the next run, from the same
archive. In system mode the journal's account record is marked "removing" as well (and
dropped at the end), the way `retire` does. A user removed while the hub was not running is
still in the hub's database: `apply` (and `up`, which runs its hub half) unregisters the
names recorded here that are not on the roster again.

Written whole and atomically (0600), like the journal.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic

REMOVALS_SCHEMA = 1
FILE_NAME = "removals.json"


@dataclass
class Removal:
    user: str  # the hub user
    account: str | None  # system mode: the Linux account; personal mode: None
    home: str | None  # the home (system) or the user's folder under the state dir (personal)
    uid: int | None  # the account's uid when the removal began
    started: str
    state: Literal["removing", "removed"] = "removing"
    archive: str | None = None  # the verified archive holding the home (None: no home)
    manifest_sha256: str | None = None  # of that archive's MANIFEST.json
    finished: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Removals:
    path: Path
    entries: list[Removal] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> Removals:
        path = root / FILE_NAME
        try:
            body = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise HubkeeperError(f"{path} cannot be read: {exc}",
                                 hint="it lists the users `hubkeeper users remove` took off "
                                 "this hub; restore it from a snapshot") from None
        try:
            if body.get("schema") != REMOVALS_SCHEMA:
                raise ValueError(f"schema {body.get('schema')!r}, expected {REMOVALS_SCHEMA}")
            entries = [Removal(**entry) for entry in body.get("removals", [])]
        except (AttributeError, TypeError, ValueError) as exc:
            raise HubkeeperError(f"{path} cannot be read: {exc}") from None
        return cls(path, entries)

    def save(self) -> None:
        body = {"schema": REMOVALS_SCHEMA, "written_by": f"hubkeeper {__version__}",
                "removals": [dataclasses.asdict(entry) for entry in self.entries]}
        write_atomic(self.path, (json.dumps(body, indent=1) + "\n").encode(), mode=0o600)

    def unfinished(self, user: str) -> Removal | None:
        """The removal of `user` a killed run began, if any."""
        for entry in reversed(self.entries):
            if entry.user == user:
                return entry if entry.state == "removing" else None
        return None

    def users(self) -> set[str]:
        """Every hub user a removal was begun for."""
        return {entry.user for entry in self.entries}


def removed_users(root: Path) -> set[str]:
    """The hub users removed from the hub in <state> `root` ({} when none ever was)."""
    return Removals.load(root).users()
