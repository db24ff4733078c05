"""What `retire` removes, and whether an archive holds all of it unchanged.

The plan is read from the journal and nothing else: the accounts, groups and data folders
hubkeeper created, the homes recorded for those accounts, the environments and the state
directory. Each item says why it would be kept when a check refuses it (a home that is a
mount point, holds another account's home, or belongs to another uid; a group that is still
some account's primary group). `archive_verdict` compares every live home and data folder
of the plan with the archive's member lists: same paths, types, sizes, mtimes and links.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic
from hubkeeper.base.tree import walk_tree
from hubkeeper.base.whoami import effective_uid
from hubkeeper.lifecycle.manifest import MANIFEST, read_manifest
from hubkeeper.state.installed import file_state
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import StatePaths

Progress = Callable[[int, int, str], None]
RECORD = "RETIRED.json"  # StatePaths.retired; the archive gets the same as RETIREMENT.json
ARCHIVE_RECORD = "RETIREMENT.json"
RECORD_SCHEMA = 1
SHOW_CHANGES = 3  # changed paths named per home in a refusal; --json has them all


@dataclass(frozen=True)
class Item:
    """One thing retire removes (or keeps, with the reason in `refused`)."""

    kind: str  # hub | proxy | file | account | home | group | data | environment | state
    name: str  # the account or group name, the path, or the process id
    detail: str = ""
    refused: str | None = None


@dataclass(frozen=True)
class Tree:
    """A home or data folder the archive must hold unchanged before it is removed."""

    kind: str  # home | data
    name: str  # the hub user, or the folder's path
    path: Path
    account: str | None = None
    partial: bool = False  # its removal began (journal: removing): missing paths are fine


@dataclass(frozen=True)
class ArchiveVerdict:
    path: str | None
    manifest_sha256: str | None
    finished: str | None  # when the archive was finished (its manifest says)
    problems: tuple[str, ...]
    changes: dict[str, list[str]]  # tree name -> every path that differs from the archive
    ok: bool = field(init=False)  # an archive, and no problem: retire may go ahead

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.path is not None and not self.problems)


def record_path(paths: StatePaths) -> Path:
    return paths.retired


def read_record(paths: StatePaths) -> dict | None:
    """The retirement record, or None when this hub was never (begun to be) retired."""
    path = record_path(paths)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HubkeeperError(f"cannot read the retirement record {path}: {exc}") from None


def write_record(path: Path, body: dict) -> None:
    write_atomic(path, (json.dumps(body, indent=1) + "\n").encode(), mode=0o600)


# -- the plan ---------------------------------------------------------------------------------

def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def tree_problem(path: Path, owner: int | None, keep: dict[Path, str]) -> str | None:
    """Why the directory `path` must not be removed whole, or None.

    keep: real paths that must survive, each with what it is ("the home of alice").
    """
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory (a symbolic link or a file is never followed)"
    real = _real(path)
    if real == Path("/"):
        return "is /"
    if os.path.ismount(real):
        return "is a mount point"
    if owner is not None and info.st_uid != owner:
        return f"belongs to uid {info.st_uid}, not to uid {owner}"
    for other, what in keep.items():
        if _inside(other, real):
            return f"holds {what} ({other})"
    return None


def foreign_mount(path: Path) -> str | None:
    """A directory under `path` on another filesystem (a mount), which rmtree would empty.
    Walked by descriptors (base/tree.py): a folder swapped for a link is not entered."""
    device = os.lstat(path).st_dev
    for found in walk_tree(path):
        if found.info.st_dev != device:
            return str(path / found.path)
    return None


def keep_paths(removed_accounts: set[str], extra: dict[Path, str]) -> dict[Path, str]:
    """Real paths retire must never remove: every other account's home, and `extra`."""
    keep = dict(extra)
    for entry in pwd.getpwall():
        if entry.pw_name in removed_accounts or not entry.pw_dir.startswith("/"):
            continue
        home = _real(entry.pw_dir)
        if home != Path("/"):
            keep.setdefault(home, f"the home of {entry.pw_name}")
    return keep


def account_problem(name: str, recorded_uid: int | None) -> str | None:
    """Why the existing account `name` is not the one the journal recorded, or None."""
    entry = pwd.getpwnam(name)
    if recorded_uid is not None and entry.pw_uid != recorded_uid:
        return (f"has uid {entry.pw_uid}, but hubkeeper created it with uid {recorded_uid}: "
                "it is another account now")
    sharing = [e.pw_name for e in pwd.getpwall()
               if e.pw_uid == entry.pw_uid and e.pw_name != name]
    if sharing:
        return f"shares uid {entry.pw_uid} with {', '.join(sharing)}"
    if entry.pw_uid == 0:
        return "has uid 0"
    return None


def tree_changes(root: Path, members: list[dict], allow_missing: bool = False) -> list[str]:
    """Every path under `root` that differs from the archive's `members` (added, removed, or
    another type, size, mtime or link target). Directory mtimes are not compared: they move
    when a file is added or removed, which is found anyway."""
    wanted: dict[str, dict] = {}
    for member in members:
        path = str(member.get("path", "")).removeprefix("./").strip("/")
        if path and path != "." and member.get("type") in ("f", "d", "l"):
            wanted[path] = member
    changes: list[str] = []
    seen: set[str] = set()
    try:  # by descriptors: a link is read as a link, a swapped folder is not entered
        walked = [(item.path, item.entry()) for item in walk_tree(root) if item.kind]
    except OSError as exc:
        return [f"cannot be read ({exc.strerror})"]
    for path, found in walked:  # sockets and fifos hold no data: not listed
        want = wanted.get(path)
        if want is None:
            changes.append(f"{path}: new since the archive")
            continue
        seen.add(path)
        differs = []
        if found.type != want.get("type"):
            differs.append("type")
        elif found.type == "f" and found.size != want.get("size"):
            differs.append("size")
        if found.type != "d" and found.mtime_ns != want.get("mtime_ns"):
            differs.append("mtime")
        if found.type == "l" and found.link != want.get("link"):
            differs.append("link target")
        if differs:
            changes.append(f"{path}: {', '.join(differs)} changed since the archive")
    if not allow_missing:
        changes += [f"{path}: removed since the archive" for path in set(wanted) - seen]
    return sorted(changes)


def manifest_sha256(directory: Path) -> str:
    return hashlib.sha256((directory / MANIFEST).read_bytes()).hexdigest()


def archive_verdict(directory: Path | None, hub: str, trees: list[Tree],
                    verify: Callable[[], list[str]], expected_sha256: str | None = None,
                    progress: Progress | None = None) -> ArchiveVerdict:
    """Does the archive of `hub` in `directory` hold every tree as it is now? `verify`
    re-reads the whole archive (archive.verify_archive); it is only called when the manifest
    is sound."""
    if directory is None:
        return ArchiveVerdict(None, None, None, ("no archive of this hub is recorded",), {})
    try:
        header, _ = read_manifest(directory)
        digest = manifest_sha256(directory)
    except HubkeeperError as exc:
        return ArchiveVerdict(str(directory), None, None, (exc.message,), {})
    finished = header.get("finished")
    problems: list[str] = []
    if header.get("kind") != "hubkeeper-archive":
        problems.append(f"{directory} is not a hubkeeper archive (kind "
                        f"{header.get('kind')!r})")
    elif header.get("hub") not in (None, hub):
        problems.append(f"{directory} is an archive of hub {header.get('hub')!r}, not of "
                        f"{hub!r}")
    if not finished:
        problems.append(f"{directory} was never finished")
    if expected_sha256 and digest != expected_sha256:
        problems.append(f"{directory / MANIFEST} is not the manifest recorded when the "
                        f"archive was made (SHA-256 {digest[:12]}…, recorded "
                        f"{expected_sha256[:12]}…)")
    if problems:
        return ArchiveVerdict(str(directory), digest, finished, tuple(problems), {})
    problems += [f"archive: {line}" for line in verify()]
    users = {str(info.get("home")): (user, info) for user, info in header.get("users",
                                                                               {}).items()}
    data = header.get("data", {})
    changes: dict[str, list[str]] = {}
    for done, tree in enumerate(trees, 1):
        if progress:
            progress(done, len(trees), f"compare {tree.path}")
        if tree.kind == "home":
            user, info = users.get(str(tree.path), (None, None))
            if info is None:
                problems.append(f"the archive does not hold {tree.name}'s home {tree.path}")
                continue
            if tree.account and info.get("account") not in (None, tree.account):
                problems.append(f"the archive holds {tree.path} as the home of account "
                                f"{info.get('account')!r}, not of {tree.account!r}")
                continue
            what = f"{tree.name}'s home {tree.path}"
        else:
            info = data.get(str(tree.path))
            if info is None:
                problems.append(f"the archive does not hold the data folder {tree.path}")
                continue
            what = f"the data folder {tree.path}"
        found = tree_changes(tree.path, info.get("members", []), allow_missing=tree.partial)
        if found:
            changes[tree.name] = found
            more = f"; and {len(found) - SHOW_CHANGES} more" if len(found) > SHOW_CHANGES else ""
            problems.append(f"{what} changed since the archive was finished ({finished}): "
                            + "; ".join(found[:SHOW_CHANGES]) + more)
    return ArchiveVerdict(str(directory), digest, finished, tuple(problems), changes)


@dataclass(frozen=True)
class Plan:
    items: tuple[Item, ...]  # in the order they are removed
    trees: tuple[Tree, ...]  # the homes and data folders the archive must hold


def make_plan(journal: Journal, paths: StatePaths, mode: str, keep_extra: dict[Path, str],
              running: tuple[Item, ...] = ()) -> Plan:
    """Everything the journal says hubkeeper created that still exists, each with the reason
    it would be kept when a check refuses it. `keep_extra`: real paths never removed (the
    state directory, the archive, hub.yaml); `running`: the hub and an orphaned proxy."""
    items: list[Item] = list(running)
    items += file_items(journal)
    trees: list[Tree] = []
    refused_accounts: dict[str, str] = {}
    entries: dict[str, pwd.struct_passwd] = {}
    for name, record in sorted(journal.accounts.items()):
        try:
            entries[name] = pwd.getpwnam(name)
        except KeyError:
            continue
        problem = account_problem(name, record.uid)
        if problem:
            refused_accounts[name] = problem
    removed = set(journal.accounts) - set(refused_accounts)
    keep = keep_paths(removed, keep_extra)
    kept_homes: dict[Path, str] = {}
    for name, record in sorted(journal.accounts.items()):
        entry = entries.get(name)
        if entry is not None:
            items.append(Item("account", name, f"uid {entry.pw_uid}, hub user {record.user}",
                              refused_accounts.get(name)))
        home = record.home or (entry.pw_dir if entry else None)
        if not home or not os.path.lexists(home):
            continue
        uid = record.uid if record.uid is not None else entry.pw_uid if entry else None
        problem = (f"its account is kept: {refused_accounts[name]}"
                   if name in refused_accounts else home_problem(Path(home), uid, keep))
        items.append(Item("home", home, f"of {record.user}", problem))
        if problem:
            kept_homes[_real(home)] = f"the kept home of {name}"
        else:
            trees.append(Tree("home", record.user, Path(home), name,
                              partial=record.state == "removing"))
    if mode == "personal" and paths.users.is_dir():
        for home in sorted(paths.users.iterdir()):
            problem = home_problem(home, effective_uid(), keep)
            items.append(Item("home", str(home), f"of {home.name}", problem))
            if not problem:
                trees.append(Tree("home", home.name, home))
    items += _group_items(journal, removed)
    keep.update(kept_homes)
    for path, record in sorted(journal.dirs.items()):
        if not os.path.lexists(path):
            continue
        problem = home_problem(Path(path), 0, keep)
        items.append(Item("data", path, record.kind, problem))
        if not problem:
            trees.append(Tree("data", path, Path(path), partial=record.state == "removing"))
    if paths.envs.is_dir():
        items += [Item("environment", env.name, str(env)) for env in sorted(paths.envs.iterdir())
                  if env.is_dir() and not env.is_symlink()]
    state = state_contents(paths)
    if state:
        items.append(Item("state", str(paths.root), ", ".join(state)))
    return Plan(tuple(items), tuple(trees))


def file_items(journal: Journal) -> list[Item]:
    """The systemd units, nginx sites and certbot hooks hubkeeper wrote; a hand-edited one
    is kept."""
    return [Item("file", path, record.kind, file_state(journal, path).problem)
            for path, record in sorted(journal.files.items()) if os.path.lexists(path)]


def home_problem(path: Path, owner: int | None, keep: dict[Path, str]) -> str | None:
    """tree_problem, then a mount anywhere inside (rmtree would empty it)."""
    problem = tree_problem(path, owner, keep)
    if problem is None:
        try:
            mount = foreign_mount(path)
        except OSError as exc:
            return f"cannot be read ({exc.strerror})"
        if mount:
            problem = f"holds the mount point {mount}"
    return problem


def _group_items(journal: Journal, removed_accounts: set[str]) -> list[Item]:
    items = []
    primary = {entry.pw_gid: entry.pw_name for entry in pwd.getpwall()
               if entry.pw_name not in removed_accounts}
    for name, record in sorted(journal.groups.items()):
        try:
            entry = grp.getgrnam(name)
        except KeyError:
            continue
        problem = None
        if record.gid is not None and entry.gr_gid != record.gid:
            problem = (f"has gid {entry.gr_gid}, but hubkeeper created it with gid "
                       f"{record.gid}: it is another group now")
        elif entry.gr_gid in primary:
            problem = f"is the primary group of the account {primary[entry.gr_gid]}"
        items.append(Item("group", name, f"gid {entry.gr_gid}", problem))
    return items


def state_contents(paths: StatePaths) -> list[str]:
    """What the state directory holds besides the environments and the retirement record."""
    if not paths.root.is_dir():
        return []
    return [entry.name + ("/" if entry.is_dir() else "") for entry in sorted(paths.root.iterdir())
            if entry.name not in (RECORD, paths.envs.name)]
