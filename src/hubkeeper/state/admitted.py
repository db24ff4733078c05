"""The people an identity provider admitted at their first login (users.accounts:
first_login): <state>/admitted.json, hub user -> provider, subject, hub groups, admin flag.

Written only by `hubkeeper users admit` (root, under apply's lock), which then makes their
account exactly as `apply` makes a roster account; read when the roster is built, so that
every verb (plan, apply, lock, snapshot, archive, retire) sees them as members.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hubkeeper.base.userfile import load_users, save_users

FILE_NAME = "admitted.json"


@dataclass(frozen=True)
class Admitted:
    name: str
    provider: str
    subject: str
    groups: tuple[str, ...]
    admin: bool
    first: str  # when they were admitted (UTC, ISO 8601)


def path_in(state_root: Path) -> Path:
    return state_root / FILE_NAME


def load(path: Path) -> dict[str, Admitted]:
    """The admitted people; {} before the first. Raises ValueError for a damaged file."""
    if not path.exists():
        return {}
    people = {}
    for name, record in load_users(path, 64 << 20).items():
        if not isinstance(record, dict):
            raise ValueError(f"{path}: the entry of {name!r} is not an object")
        people[str(name)] = Admitted(
            name=str(name), provider=str(record["provider"]), subject=str(record["subject"]),
            groups=tuple(sorted(str(g) for g in record.get("groups", ()))),
            admin=bool(record.get("admin", False)), first=str(record.get("first", "")))
    return people


def record(path: Path, person: Admitted) -> Admitted:
    """Save `person` (a new one, or new groups or admin flag for one already admitted); the
    first admission time is kept. Returns what was saved."""
    people = load(path)
    first = people[person.name].first if person.name in people else \
        datetime.now(timezone.utc).isoformat(timespec="seconds")
    people[person.name] = Admitted(person.name, person.provider, person.subject,
                                   tuple(sorted(set(person.groups))), person.admin, first)
    _save(path, people)
    return people[person.name]


def forget(path: Path, name: str) -> bool:
    """Take `name` off the admitted people (`users remove`); False when not among them."""
    people = load(path)
    if name not in people:
        return False
    del people[name]
    _save(path, people)
    return True


def _save(path: Path, people: dict[str, Admitted]) -> None:
    save_users(path, {name: {"provider": p.provider, "subject": p.subject,
                             "groups": list(p.groups), "admin": p.admin, "first": p.first}
                      for name, p in sorted(people.items())})
