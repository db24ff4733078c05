"""Restore from a snapshot: one user's file or home, or the whole hub onto a fresh machine.

Nothing is replaced silently: rsync runs with `--backup --backup-dir`, so every file a restore
would overwrite is first moved into `before-restore-<time>/` (in the home for a home,
beside each root's folder for `--all`), keeping its path. Whatever goes into a home is
written by the home's owner (rsync's receiving side runs as that account), never by root.
Files the snapshot does not have are left alone (no --delete): a restore adds and replaces,
it never removes.

`restore --all` reads only the snapshot (hub.yaml may be gone with the machine): it
re-creates the journal's groups and accounts with their uids, gids and password hashes from
hub/accounts.json, then puts back the homes, data folders, hub files and the database. Every
conflict (a name or uid taken by someone else, a running hub) is found before the first
change.
"""

from __future__ import annotations

import datetime as dt
import grp
import json
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import HubLock
from hubkeeper.base.whoami import effective_uid
from hubkeeper.host.asuser import Identity, command_as
from hubkeeper.host.homes import make_private_dir
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.host.snapshots import LATEST, NAME, latest_name
from hubkeeper.host.writer import myself, writer_for
from hubkeeper.lifecycle.manifest import MANIFEST, read_manifest
from hubkeeper.state.statedir import StatePaths

ASIDE = "before-restore-"
RECEIVER = "receiver"  # the "host" of rsync's remote shell, which ignores it
RSYNC_DEADLINE = 6 * 3600  # seconds: a whole home of a large course on a slow disk


@dataclass(frozen=True)
class Restored:
    source: str  # in the snapshot
    destination: str
    files: int  # files written
    moved_aside: int  # files that were in the way, now in `aside`
    aside: str | None  # where they are (None: nothing was in the way)


def open_snapshot(given: str | os.PathLike[str]) -> Path:
    """A complete snapshot directory: given directly, or a target (its `latest`)."""
    path = Path(given)
    if (path / MANIFEST).is_file():
        return path
    latest = latest_name(path)
    if latest:
        return path / latest
    raise HubkeeperError(f"{path} is neither a complete snapshot nor a snapshot target",
                         hint="give a snapshot directory (<target>/<YYYYmmddTHHMMSS>) or a "
                         f"target holding a `{LATEST}` link; `hubkeeper snapshot list` shows "
                         "them")


def snapshot_header(snapshot: Path) -> dict:
    header, _ = read_manifest(snapshot)
    if header.get("kind") != "hubkeeper-snapshot" or not NAME.match(snapshot.name):
        raise HubkeeperError(f"{snapshot} is not a hubkeeper snapshot")
    return header


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")


def clean_relative(path: str) -> str:
    """A path inside a home, as the user would type it; refuses escapes."""
    parts = PurePosixPath(path.strip()).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
        raise HubkeeperError(f"{path!r} is not a path inside the home",
                             hint="give it relative to the home, e.g. notebooks/week1.ipynb")
    return "/".join(part for part in parts if part != ".")


def _receiver_shell(writer: Identity) -> str:
    """rsync's -e: a "remote shell" that drops the host and execs the receiving rsync as
    `writer` (setpriv; nothing when that is us). The sender stays root and only reads the
    snapshot; everything written is written by `writer`, so what its owner planted in the
    tree (links, swapped folders, a before-restore-<time> pointing at /etc) can only steer
    writes the owner could make. With -s (protect args) the receiver's command line holds
    only options: every path goes over rsync's protocol, none through a shell."""
    prefix = " ".join(command_as(writer, [])) if writer.uid != effective_uid() else ""
    return f"{prefix} sh -c 'shift; exec \"$@\"' hubkeeper-restore".strip()


def rsync_back(source_root: Path, relative: str, destination: Path, aside: Path,
               writer: Identity, chown: tuple[int, int] | None = None) -> tuple[int, int]:
    """Copy `source_root`/`relative` to `destination`/`relative` as `writer`, moving whatever
    it would overwrite into `aside` (same relative path). Returns (files written, files
    moved)."""
    source = f"{source_root}/./{relative}" if relative else f"{source_root}/./"
    args = ["-R", "--backup", f"--backup-dir={aside}", "--info=backup"]
    if chown:
        args.append(f"--chown={chown[0]}:{chown[1]}")
    return _rsync_as(writer, [*args, source, f"{RECEIVER}:{destination}/"], relative,
                     destination, aside)


def _rsync_as(writer: Identity, args: list[str], relative: str, destination: Path,
              aside: Path | None) -> tuple[int, int]:
    """rsync with `args` (options, source, receiver:target), its receiving side as `writer`;
    (files written, files moved aside)."""
    args = ["rsync", "-s", "-a", "-A", "--numeric-ids", "--mkpath", "--out-format=%i",
            "-e", _receiver_shell(writer), *args]
    kept = f"; files that were in the way are in {aside}" if aside else ""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=RSYNC_DEADLINE)
    except subprocess.TimeoutExpired:
        raise HubkeeperError(f"rsync did not finish restoring into {destination} within "
                             f"{RSYNC_DEADLINE // 3600} h",
                             hint=f"what was already restored stays{kept}") from None
    if done.returncode != 0:
        raise HubkeeperError(f"rsync failed restoring {relative or 'everything'} into "
                             f"{destination} as uid {writer.uid}: "
                             f"{done.stderr.strip()[-500:]}",
                             hint=f"what was already restored stays{kept}")
    lines = done.stdout.splitlines()
    # the sender's itemized lines ("<f" a file sent) and the receiver's "backed up X to Y"
    written = sum(1 for line in lines if line.startswith("<f"))
    moved = sum(1 for line in lines if line.startswith("backed up "))
    return written, moved


def _current_home(header: dict, user: str) -> tuple[Path, int, int]:
    record = header["homes"][user]
    if header.get("mode") == "personal":
        path = Path(record["path"])
        return path, record["uid"], record["gid"]
    try:
        entry = pwd.getpwnam(record["account"])
    except KeyError:
        raise HubkeeperError(
            f"{user}'s account {record['account']!r} does not exist on this machine",
            hint="`hubkeeper apply` re-creates it (then restore), give --to DIR to restore "
            "elsewhere, or `hubkeeper restore --all` for a whole machine") from None
    return Path(entry.pw_dir), entry.pw_uid, entry.pw_gid


def restore_user(snapshot: Path, user: str, path: str | None = None,
                 to: Path | None = None) -> Restored:
    """Put back `user`'s home (or one `path` in it) from `snapshot`, into the home or `to`."""
    header = snapshot_header(snapshot)
    if user not in header["homes"]:
        known = ", ".join(sorted(header["homes"])[:12]) or "none"
        raise HubkeeperError(f"snapshot {snapshot.name} has no home of {user!r}",
                             hint=f"homes in it: {known}")
    relative = clean_relative(path) if path else ""
    source_root = snapshot / "homes" / user
    if relative and not os.path.lexists(source_root / relative):
        near = sorted(p.name for p in (source_root / relative).parent.glob("*"))[:12] \
            if (source_root / relative).parent.is_dir() else []
        raise HubkeeperError(f"{relative!r} is not in {user}'s home in snapshot "
                             f"{snapshot.name}",
                             hint=f"there: {', '.join(near)}" if near else
                             "`hubkeeper snapshot list` shows other snapshots")
    if to is not None:
        # root writes only in root's own folders; inside a home, its owner writes
        destination, owner = Path(os.path.abspath(to)), None
        writer = writer_for(destination)
    else:
        destination, uid, gid = _current_home(header, user)
        record = header["homes"][user]
        owner = (uid, gid) if (uid, gid) != (record["uid"], record["gid"]) else None
        make_private_dir(destination, uid, gid)  # a home that is gone: back, empty, first
        writer = Identity.of_uid(uid, gid)
    aside = destination / f"{ASIDE}{_stamp()}"
    written, moved = rsync_back(source_root, relative, destination, aside, writer, owner)
    return Restored(f"{snapshot}/homes/{user}/{relative}".rstrip("/"),
                    str(destination / relative).rstrip("/"), written, moved,
                    str(aside) if moved else None)


def beside_name(name: str, day: str) -> str:
    """`week1.ipynb` -> `week1 (restored 2026-12-06).ipynb`; a folder or a name without a
    suffix gets it at the end."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        return f"{name} (restored {day})"
    return f"{stem} (restored {day}).{suffix}"


def restore_beside(snapshot: Path, user: str, path: str) -> Restored:
    """Put `path` of `user`'s home in `snapshot` back next to the current one, under
    `beside_name` (a number added when that is taken too), written as the home's owner:
    nothing in the home is replaced."""
    header = snapshot_header(snapshot)
    if user not in header["homes"]:
        raise HubkeeperError(f"snapshot {snapshot.name} has no home of {user!r}")
    relative = clean_relative(path)
    source = snapshot / "homes" / user / relative
    if not os.path.lexists(source):
        raise HubkeeperError(f"{relative!r} is not in {user}'s home in snapshot "
                             f"{snapshot.name}")
    home, uid, gid = _current_home(header, user)
    day = f"{snapshot.name[0:4]}-{snapshot.name[4:6]}-{snapshot.name[6:8]}"
    parent, leaf = PurePosixPath(relative).parent, PurePosixPath(relative).name
    name, number = beside_name(leaf, day), 1
    while os.path.lexists(home / parent / name):  # only a name to pick: the owner writes
        number += 1
        name = beside_name(leaf, f"{day} {number}")
    target = str(parent / name) if str(parent) != "." else name
    tail = "/" if source.is_dir() and not source.is_symlink() else ""
    written, _ = _rsync_as(Identity.of_uid(uid, gid),
                           [f"{source}{tail}", f"{RECEIVER}:{home}/{target}{tail}"],
                           relative, home, None)
    return Restored(str(source), str(home / target), written, 0, None)


# --- the whole hub -------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreAllResult:
    snapshot: str
    config: str  # where hub.yaml is now
    groups_created: tuple[str, ...]
    accounts_created: tuple[str, ...]
    restored: tuple[Restored, ...]


def _conflicts(records: dict) -> list[str]:
    """Names or ids the snapshot needs that this machine gives to someone else."""
    problems = []
    for kind, entries, by_name, by_id, field in (
            ("group", records["groups"], grp.getgrnam, grp.getgrgid, "gid"),
            ("account", records["accounts"], pwd.getpwnam, pwd.getpwuid, "uid")):
        for name, entry in entries.items():
            wanted = entry[field]
            try:
                found = by_name(name)
            except KeyError:
                try:
                    other = by_id(wanted)[0]
                except KeyError:
                    continue
                problems.append(f"{kind} {name}: {field} {wanted} belongs to {other}")
                continue
            if found[2] != wanted:
                problems.append(f"{kind} {name} exists with {field} {found[2]}, the snapshot "
                                f"has {wanted}")
    return problems


def restore_all(snapshot: Path) -> RestoreAllResult:
    """The whole hub from `snapshot`: accounts (same uids), homes, data, hub files, database."""
    header = snapshot_header(snapshot)
    records = json.loads((snapshot / "hub" / "accounts.json").read_text())
    state = StatePaths(Path(header["state_dir"]))
    problems = _conflicts(records)
    if state.lock.exists():
        try:
            HubLock(state).check_free()
        except HubkeeperError as exc:
            problems.append(exc.message)
    if problems:
        raise HubkeeperError("restore --all found conflicts; nothing was changed:\n  "
                             + "\n  ".join(problems),
                             hint="remove or rename what is in the way, or restore single "
                             "users with `hubkeeper restore USER`")
    shadow = ShadowTools()
    groups_created, accounts_created = [], []
    for name, account in sorted(records["accounts"].items()):
        if _exists(pwd.getpwnam, name):
            continue
        private = not _exists(grp.getgrgid, account["gid"])
        shadow.restore_account(name, uid=account["uid"], gid=account["gid"],
                               home=account["home"], group_exists=not private)
        accounts_created.append(name)
        if private:
            groups_created.append(name)
    for name, group in sorted(records["groups"].items()):
        if not _exists(grp.getgrnam, name):
            shadow.create_group_with_gid(name, group["gid"])
            groups_created.append(name)
        for member in group["members"]:
            if _exists(pwd.getpwnam, member):
                shadow.add_to_group(member, name)

    stamp = _stamp()
    restored = []
    for user, record in sorted(header["homes"].items()):
        home = Path(record["path"])
        if os.path.lexists(home) and not stat.S_ISDIR(os.lstat(home).st_mode):
            raise HubkeeperError(f"{home} is in the way of {user}'s home (not a directory)")
        restored.append(_put_back_home(snapshot / "homes" / user, home, record, stamp))
    for path, data in sorted(header["data"].items()):
        # root's shared folders and group folders (many owners inside): root writes them,
        # before any restored account can log in (passwords are set last)
        restored.append(_put_back(snapshot / data["key"], Path(path), stamp))
    hub = snapshot / "hub"
    for key, original in sorted(header["hub_files"].items()):
        restored.append(_put_back_file(snapshot / key, Path(original), stamp))
    restored.append(_put_back_file(hub / "jupyterhub.sqlite", state.database, stamp))
    for directory in (state.run, state.logs):
        directory.mkdir(parents=True, exist_ok=True)
    hashes = {name: account["password_hash"] for name, account in records["accounts"].items()
              if account.get("password_hash") and name in accounts_created}
    shadow.set_password_hashes(hashes)  # last: nobody logs in while root writes
    return RestoreAllResult(str(snapshot), header["config"], tuple(groups_created),
                            tuple(accounts_created), tuple(restored))


def _exists(lookup, key) -> bool:  # noqa: ANN001 (pwd/grp lookups)
    try:
        lookup(key)
    except KeyError:
        return False
    return True


def _put_back_home(source: Path, home: Path, record: dict, stamp: str) -> Restored:
    """A whole home, written by its owner (made first, empty and theirs, when it is gone);
    what was in the way goes to before-restore-<time> inside it, as for one user."""
    make_private_dir(home, record["uid"], record["gid"])
    aside = home / f"{ASIDE}{stamp}"
    written, moved = rsync_back(source, "", home, aside, writer_for(home))
    return Restored(str(source), str(home), written, moved, str(aside) if moved else None)


def _put_back(source: Path, destination: Path, stamp: str) -> Restored:
    """A whole root's folder, its own attributes included (source/ into destination/)."""
    aside = destination.parent / f".{destination.name}.{ASIDE}{stamp}"
    written, moved = rsync_back(source, "", destination, aside, myself())
    return Restored(str(source), str(destination), written, moved,
                    str(aside) if moved else None)


def _put_back_file(source: Path, destination: Path, stamp: str) -> Restored:
    if not source.is_file():
        return Restored(str(source), str(destination), 0, 0, None)
    aside = destination.parent / f"{ASIDE}{stamp}"
    written, moved = rsync_back(source.parent, source.name, destination.parent, aside, myself())
    return Restored(str(source), str(destination), written, moved,
                    str(aside) if moved else None)
