"""Take one name off hub.yaml's roster: the round-trip edit `users remove` makes (pure).

The name goes from `users.admins`, `users.allowed`, `users.locked`, every `users.groups`
list and `users.roster.entries`; a range that makes it is split around it
('ws{1..5}' without ws3 -> 'ws{1..2}', 'ws{4..5}'). A row of the roster CSV is not ours to
edit (the file is often exported from a registry and written again): `csv_row` finds it so
that the verb refuses and names its line.
"""

from __future__ import annotations

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from hubkeeper.roster.build import RANGE_RE, expand_range


def split_range(pattern: str, name: str) -> list[str] | None:
    """The ranges that make what `pattern` makes but `name`; None when it does not make it."""
    try:
        names = expand_range(pattern)
    except ValueError:
        return None
    if name not in names:
        return None
    match = RANGE_RE.match(pattern)
    assert match is not None  # expand_range accepted it
    stem, start = match["stem"], match["start"]
    width = len(start) if start.startswith("0") else 0
    first, last = int(start), int(match["end"])
    number = first + names.index(name)
    parts = [(first, number - 1), (number + 1, last)]
    return [f"{stem}{{{low:0{width}d}..{high:0{width}d}}}" for low, high in parts
            if low <= high]


def unlist(document: CommentedMap, name: str) -> list[str]:
    """Remove `name` from every place in document's `users:` section; what changed, one line
    each (empty: hub.yaml does not name it)."""
    changes: list[str] = []
    users = document.get("users")
    if not isinstance(users, CommentedMap):
        return changes

    def drop(node: CommentedMap, key: str, where: str, keep_empty: bool = False) -> None:
        names = node.get(key)
        if not isinstance(names, CommentedSeq) or name not in names:
            return
        while name in names:
            names.remove(name)
        changes.append(f"removed from {where}")
        if not names and not keep_empty:
            del node[key]

    for key in ("admins", "allowed", "locked"):
        drop(users, key, f"users.{key}")
    groups = users.get("groups")
    if isinstance(groups, CommentedMap):
        for group in list(groups):  # an emptied group stays declared
            drop(groups, group, f"users.groups.{group}", keep_empty=True)
    roster = users.get("roster")
    if not isinstance(roster, CommentedMap):
        return changes
    entries = roster.get("entries")
    if isinstance(entries, CommentedSeq):
        for index in reversed(range(len(entries))):
            entry = entries[index]
            if isinstance(entry, CommentedMap) and entry.get("username") == name:
                del entries[index]
                changes.append("its entry removed from users.roster.entries")
        if not entries:
            del roster["entries"]
    ranges = roster.get("ranges")
    if isinstance(ranges, CommentedSeq):
        for index in reversed(range(len(ranges))):
            parts = split_range(str(ranges[index]), name)
            if parts is None:
                continue
            old = ranges[index]
            del ranges[index]
            for offset, part in enumerate(parts):
                ranges.insert(index + offset, part)
            changes.append(f"users.roster.ranges: {old!r} -> "
                           f"{', '.join(repr(p) for p in parts) or 'nothing'}")
        if not ranges:
            del roster["ranges"]
    return changes
