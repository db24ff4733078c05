"""What a hub holds, found once for snapshot, archive, restore and retire.

- homes: every roster user's home (system mode: the account's home; personal mode:
  <state>/users/<name>), and every home of an account in the journal, even one taken off
  the roster: its owner's work is still there until retirement;
- data: the shared folders and group folders the journal lists (hubkeeper made them);
- hub files: hub.yaml, the roster CSV, the journal, the state VERSION, the secrets and the
  generated-password lists (credentials/), the environments' lock files. The hub database
  is not a plain file: it is copied with SQLite's online backup (`backup_database`), so a
  running hub is captured at one consistent point.
"""

from __future__ import annotations

import grp
import os
import pwd
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative
from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Mode
from hubkeeper.host.hubdb import backup
from hubkeeper.roster import Roster
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import StatePaths


@dataclass(frozen=True)
class Home:
    user: str  # the hub user name
    account: str  # the Linux account (system mode) or the hub's own (personal mode)
    path: Path
    uid: int
    gid: int
    managed: bool  # the journal lists the account: hubkeeper created it


@dataclass(frozen=True)
class DataDir:
    path: Path
    kind: str  # "shared" | "group-folder"

    @property
    def key(self) -> str:
        """Its place in a snapshot or archive: data/<absolute path without the first '/'>."""
        return "data/" + str(self.path).lstrip("/")


@dataclass(frozen=True)
class HubFile:
    key: str  # its place in a snapshot: hub/config/..., hub/state/...
    path: Path
    secret: bool = False


@dataclass(frozen=True)
class HubContents:
    hub: Hub
    journal: Journal  # read when the contents were found (the Hub's may be older)
    homes: tuple[Home, ...]  # sorted by user
    missing: tuple[str, ...]  # roster users with no home yet (nothing to capture)
    data: tuple[DataDir, ...]
    files: tuple[HubFile, ...]

    @property
    def loaded(self) -> LoadedSpec:
        return self.hub.loaded

    @property
    def paths(self) -> StatePaths:
        return self.hub.paths

    @property
    def mode(self) -> Mode:
        return self.hub.mode

    @property
    def roster(self) -> Roster:
        return self.hub.roster

    def home(self, user: str) -> Home:
        for home in self.homes:
            if home.user == user:
                return home
        known = ", ".join(h.user for h in self.homes[:10]) or "none"
        raise HubkeeperError(f"{user!r} has no home on this hub",
                             hint=f"users with a home: {known}")


def hub_contents(hub: Hub) -> HubContents:
    """Everything a snapshot or archive of the opened hub holds."""
    loaded, mode, paths = hub.loaded, hub.mode, hub.paths
    roster = hub.roster
    journal = hub.load_journal()
    homes, missing = _homes(mode, paths, roster, journal, hub.euid)
    data = tuple(DataDir(Path(record.path), record.kind)
                 for record in sorted(journal.dirs.values(), key=lambda r: r.path)
                 if record.state == "created" and os.path.isdir(record.path))
    return HubContents(hub, journal, homes, missing, data, _hub_files(loaded, paths))


def _homes(mode: Mode, paths: StatePaths, roster: Roster, journal: Journal,
           me: int) -> tuple[tuple[Home, ...], tuple[str, ...]]:
    found: dict[str, Home] = {}
    missing: list[str] = []
    if mode == "personal":
        for member in roster.members:
            home = paths.users / member.name
            if home.is_dir():
                info = home.stat()
                found[member.name] = Home(member.name, pwd.getpwuid(me).pw_name, home,
                                          info.st_uid, info.st_gid, managed=True)
            else:
                missing.append(member.name)
        return tuple(found[name] for name in sorted(found)), tuple(missing)
    wanted = {member.account: member.name for member in roster.members}
    for record in journal.accounts.values():
        wanted.setdefault(record.account, record.user)
    for account, user in wanted.items():
        try:
            entry = pwd.getpwnam(account)
        except KeyError:
            if user in {m.name for m in roster.members}:
                missing.append(user)
            continue
        home = Path(entry.pw_dir)
        if not home.is_dir() or home == Path("/"):
            missing.append(user)
            continue
        found[user] = Home(user, account, home, entry.pw_uid, entry.pw_gid,
                           managed=journal.owns_account(account))
    return tuple(found[name] for name in sorted(found)), tuple(sorted(missing))


def _hub_files(loaded: LoadedSpec, paths: StatePaths) -> tuple[HubFile, ...]:
    files = [HubFile(f"hub/config/{loaded.path.name}", loaded.path)]
    spec = loaded.spec
    if spec.users.roster.csv:
        csv = config_relative(loaded.path.parent, spec.users.roster.csv)
        files.append(HubFile(f"hub/config/{csv.name}", csv))
    for name in (spec.auth.password_file, spec.auth.admin_password_file):
        if name:
            path = config_relative(loaded.path.parent, name)
            files.append(HubFile(f"hub/config/{path.name}", path, secret=True))
    for path in (paths.version_file, paths.journal):
        if path.exists():
            files.append(HubFile(f"hub/state/{path.name}", path))
    for directory in (paths.secrets, paths.root / "credentials"):
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                if path.is_file():
                    files.append(HubFile(f"hub/state/{directory.name}/{path.name}", path,
                                         secret=True))
    if paths.envs.is_dir():
        for lock in sorted(paths.envs.glob("*/*/requirements.lock")):
            files.append(HubFile(f"hub/state/{lock.relative_to(paths.root)}", lock))
    return tuple(files)


def backup_database(source: Path, target: Path) -> int:
    """Copy the hub database with SQLite's online backup API (consistent even while the hub
    writes) and check the copy. Returns the number of hub users in the copy."""
    if not source.exists():
        raise HubkeeperError(f"the hub database {source} does not exist",
                             hint="start the hub once (`hubkeeper up`) before a snapshot")
    backup(source, target)
    dst = sqlite3.connect(target)
    try:
        (verdict,) = dst.execute("PRAGMA integrity_check").fetchone()
        if verdict != "ok":
            raise HubkeeperError(f"the copy of {source} fails SQLite's integrity check: "
                                 f"{verdict}", hint="run `sqlite3 {source} .recover`")
        (users,) = dst.execute("SELECT count(*) FROM users").fetchone()
    except sqlite3.Error as exc:
        raise HubkeeperError(f"cannot copy the hub database {source}: {exc}") from None
    finally:
        dst.close()
    return int(users)


def account_records(contents: HubContents) -> dict:
    """The passwd, shadow and group entries of the accounts and groups the journal lists, so
    that `restore --all` can re-create them with the same uids, gids and passwords."""
    hashes = _password_hashes()
    accounts = {}
    for record in contents.journal.accounts.values():
        try:
            entry = pwd.getpwnam(record.account)
        except KeyError:
            continue
        password = hashes.get(record.account)
        accounts[record.account] = {
            "user": record.user, "uid": entry.pw_uid, "gid": entry.pw_gid,
            "gecos": entry.pw_gecos, "home": entry.pw_dir, "shell": entry.pw_shell,
            "password_hash": password,
        }
    groups = {}
    for record in contents.journal.groups.values():
        try:
            entry = grp.getgrnam(record.name)
        except KeyError:
            continue
        groups[record.name] = {"gid": entry.gr_gid, "members": sorted(entry.gr_mem)}
    return {"schema": 1, "accounts": accounts, "groups": groups}


def _password_hashes(shadow: Path = Path("/etc/shadow")) -> dict[str, str]:
    """account -> its password field in /etc/shadow ({} when not readable)."""
    try:
        lines = shadow.read_text().splitlines()
    except OSError:
        return {}
    fields = (line.split(":") for line in lines if line.count(":") >= 2)
    return {parts[0]: parts[1] for parts in fields}
