"""`hubkeeper users remove NAME [--yes]`: take one user off the hub during a course.

Without --yes it shows what it would do and changes nothing. With --yes: the user's home is
archived (the same format as `hubkeeper archive`, one user) and checked; only then is the
user removed: server, hub user, hub.yaml's roster, processes, account and home (system mode)
or their folder under the state dir (personal mode). lifecycle/user_removal.py has the steps
and why they come in this order; a run killed half-way is finished by running it again.

A user from the roster CSV is refused: the CSV is the operator's file (often exported from a
registry and written again), so they delete the row themselves and run the command again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.base.locks import apply_lock, archive_lock
from hubkeeper.config.edit import edit_config
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative
from hubkeeper.context.hub import Hub
from hubkeeper.host.shadow import ShadowTools
from hubkeeper.lifecycle.manifest import Progress, silent
from hubkeeper.lifecycle.user_removal import (
    Target,
    archive_home,
    check_archive,
    find_target,
    home_refusal,
    hub_api,
    kill_account,
    lock_account,
    mark_removing,
    now,
    removal_keep,
    remove_account,
    remove_folder,
    remove_hub_user,
)
from hubkeeper.plan.unlist import unlist
from hubkeeper.roster.csvfile import read_roster_csv
from hubkeeper.roster.policy import name_problem
from hubkeeper.state import admitted
from hubkeeper.state.removals import Removal, Removals


@dataclass(frozen=True)
class UserRemoveResult:
    config: str
    user: str
    mode: str
    # plan: shown, nothing changed | refused: the archive check failed, nothing removed |
    # removed: done now
    status: str
    steps: tuple[str, ...]  # the plan, or what was done, in order
    archive: str | None  # the archive that holds the home (None: there was no home)
    manifest_sha256: str | None
    problems: tuple[str, ...] = ()  # why it was refused
    kept: tuple[str, ...] = ()  # what a last check kept, and why
    resumed: bool = False  # a killed removal was finished


def _archive_parent(hub: Hub, to: Path | None) -> Path:
    if to is not None:
        return to.absolute()
    if not hub.spec.archive.dir:
        raise HubkeeperError(
            "no folder to write the user's archive to",
            hint=f"set `archive.dir` in {hub.path} (archive: {{dir: /var/backups/hubkeeper}}) "
            "or pass --to DIR")
    return config_relative(hub.directory, hub.spec.archive.dir)


def _csv_refusal(hub: Hub, name: str) -> None:
    """A CSV row is the operator's to delete: refuse, naming its line."""
    csv = hub.spec.users.roster.csv
    if not csv:
        return
    path = config_relative(hub.directory, csv)
    rows, _ = read_roster_csv(path)
    for row in rows:
        if row.username == name:
            raise HubkeeperError(
                f"{path}:{row.line}: {name!r} is a row of the roster CSV; hubkeeper does not "
                "rewrite that file (you keep it, or export it from elsewhere)",
                hint=f"delete line {row.line} of {path}, then run `hubkeeper users remove "
                f"{name} --yes` again; nothing was changed")


def _unlisting(hub: Hub, name: str) -> list[str]:
    """What taking `name` off hub.yaml changes; checked now (the edited file and its roster
    must hold) so that the removal never stops at that step."""
    changes: list[str] = []

    def mutate(document: CommentedMap) -> None:
        changes.extend(unlist(document, name))

    def check(edited: LoadedSpec) -> None:
        Hub.of(edited, euid=hub.euid).roster  # noqa: B018 -- the roster must still hold

    edit_config(hub.path, mutate, check, dry_run=True)
    return changes


def _unlist_now(hub: Hub, name: str) -> list[str]:
    """Off hub.yaml, and off the people admitted at first login (a roster source too)."""
    changes: list[str] = []

    def mutate(document: CommentedMap) -> None:
        changes.extend(unlist(document, name))

    if _unlisting(hub, name):
        edit_config(hub.path, mutate)
    path = admitted.path_in(hub.paths.root)
    if admitted.forget(path, name):
        changes.append(f"removed from the people admitted at first login ({path})")
    return changes


def _plan(target: Target, unlisting: list[str], parent: Path | None, resumed: Removal | None
          ) -> list[str]:
    user = target.user
    steps = []
    if resumed is not None:
        steps.append(f"finish the removal begun {resumed.started}"
                     + (f", from the archive {resumed.archive}" if resumed.archive else ""))
    elif target.home is not None:
        steps.append(f"archive {target.home} into {parent}/ and verify the archive")
    else:
        steps.append("no home: nothing to archive")
    if target.account and target.account_exists:
        steps.append(f"lock the account {target.account}")
    steps.append(f"stop {user}'s server and delete the hub user")
    steps += [f"hub.yaml: {change}" for change in unlisting] or ["hub.yaml: does not list "
                                                                 f"{user}"]
    if target.provider:
        steps.append(f"forget that {target.provider} admitted {user} at their first login "
                     "(their provider may admit them again)")
    if target.mode == "system":
        if target.account_exists:
            steps.append(f"kill the processes of {target.account} (uid {target.uid})")
            steps.append(f"remove the account {target.account} (userdel)")
        if target.home is not None:
            steps.append(f"remove the home {target.home}")
        if target.account:
            steps.append(f"drop {target.account} from the journal")
    elif target.home is not None:
        steps.append(f"remove {user}'s folder {target.home}")
    return steps


def remove_user(hub: Hub, name: str, yes: bool, to: Path | None = None,
                progress: Progress = silent, tools: ShadowTools | None = None
                ) -> UserRemoveResult:
    """Show (or with `yes` carry out) the removal of hub user `name`."""
    if reason := name_problem(name):
        raise InvalidInput([Problem("command line", None, None, "NAME", reason)])
    tools = tools or ShadowTools()
    paths = hub.paths
    removals = Removals.load(paths.root)
    resumed = removals.unfinished(name)
    journal = hub.load_journal()
    target = find_target(hub, name, journal, resumed)
    _csv_refusal(hub, name)
    unlisting = _unlisting(hub, name)
    parent = (_archive_parent(hub, to) if target.home is not None and resumed is None
              else None)
    keep = removal_keep(hub, target, parent)
    if problem := home_refusal(target, keep):
        raise HubkeeperError(f"{name}'s home {target.home} {problem}; nothing was changed",
                             hint="look at it and move what must stay out of it first")

    def result(status: str, steps: list[str], removal: Removal | None, **more
               ) -> UserRemoveResult:
        return UserRemoveResult(str(hub.path), name, hub.mode, status, tuple(steps),
                                removal.archive if removal else None,
                                removal.manifest_sha256 if removal else None,
                                resumed=resumed is not None, **more)

    plan = _plan(target, unlisting, parent, resumed)
    if not yes:
        return result("plan", plan, resumed)
    if not paths.root.is_dir():
        raise HubkeeperError(f"hub {hub.name!r} has no state directory at {paths.root}",
                             hint="nothing of this hub was made here yet: remove the name "
                             "from hub.yaml by hand")
    paths.run.mkdir(mode=0o700, exist_ok=True)
    done: list[str] = []
    archived: tuple[str, str] | None = None  # (folder, manifest SHA-256)
    if resumed is None and target.home is not None:
        # Outside the apply lock: a large home takes a while, and first logins (admission)
        # need that lock meanwhile.
        assert parent is not None
        with archive_lock(paths):
            info = archive_home(hub, target, parent, progress)
        verdict = check_archive(hub, target, info.directory, info.manifest_sha256, full=True,
                                progress=progress)
        if not verdict.ok:
            refused = Removal(name, target.account, str(target.home), target.uid, now(),
                              archive=str(info.directory),
                              manifest_sha256=info.manifest_sha256)
            return result("refused", plan, refused, problems=verdict.problems)
        archived = (str(info.directory), info.manifest_sha256)
        done.append(f"archived {target.home} into {info.directory} (verified)")
    with apply_lock(paths):  # apply (and the hub's admissions) write the same journal
        removals = Removals.load(paths.root)  # as they are now, under the lock
        journal = hub.load_journal()
        removal = removals.unfinished(name)
        if removal is None and resumed is not None:
            raise HubkeeperError(f"another run finished the removal of {name!r} meanwhile")
        target = find_target(hub, name, journal, removal)
        if removal is None:
            removal = Removal(name, target.account, str(target.home) if target.home else None,
                              target.uid, now())
            if archived is not None:
                removal.archive, removal.manifest_sha256 = archived
            removals.entries.append(removal)
            removals.save()  # from here on, a run killed at any point is resumed
        else:
            done.append(f"resumed the removal begun {removal.started}")
        mark_removing(journal, target)
        lock_account(target, tools)
        done.append(remove_hub_user(hub_api(hub), name))
        done += [f"hub.yaml: {change}" for change in _unlist_now(hub, name)]
        if killed := kill_account(target):
            done.append(f"killed {killed} processes of {target.account}")
        if target.home is not None:
            done += _gate(hub, target, removal, removals, resumed is not None, progress)
        if target.mode == "system":
            kept = [f"{e['kind']} {e['name']}: {e['refused']}"
                    for e in remove_account(hub, journal, target, keep, progress, tools)]
            if target.account_exists:
                done.append(f"removed the account {target.account}")
        else:
            problem = remove_folder(target, keep)
            kept = [f"home {target.home}: {problem}"] if problem else []
        if target.home is not None and not kept:
            done.append(f"removed {target.home}")
        removal.state, removal.finished = "removed", now()
        removal.notes = done + kept
        removals.save()
    return result("removed", done, removal, kept=tuple(kept))


def _gate(hub: Hub, target: Target, removal: Removal, removals: Removals, full: bool,
          progress: Progress) -> list[str]:
    """The last check before the home goes, now that nothing of the user's runs: the archive
    still holds the home as it is (re-read whole when a killed run made it). A home written
    to since (and still whole) is archived again; otherwise nothing more is removed."""
    verdict = None
    if removal.archive is not None:
        verdict = check_archive(hub, target, Path(removal.archive), removal.manifest_sha256,
                                full=full, progress=progress)
        if verdict.ok:
            return []
    why = "; ".join(verdict.problems) if verdict else "no archive was made of it yet"
    if not target.account_exists and target.mode == "system":
        raise HubkeeperError(
            f"{target.user}'s home {target.home} does not match its archive "
            f"{removal.archive}: {why}",
            hint="its removal had begun; look at what changed, then run `hubkeeper users "
            f"remove {target.user} --yes` again")
    parent = (Path(removal.archive).parent if removal.archive
              else _archive_parent(hub, None))
    with archive_lock(hub.paths):
        info = archive_home(hub, target, parent, progress)
    again = check_archive(hub, target, info.directory, info.manifest_sha256, full=True,
                          progress=progress)
    if not again.ok:
        raise HubkeeperError(
            f"{target.user}'s home changed after it was archived, and the new archive "
            f"{info.directory} does not verify: " + "; ".join(again.problems),
            hint=f"the account and home are kept; run `hubkeeper users remove {target.user} "
            "--yes` again")
    removal.archive, removal.manifest_sha256 = str(info.directory), info.manifest_sha256
    removals.save()
    return [f"{target.user}'s home: {why[:200]}; archived (again) into {info.directory} "
            "(verified)"]
