"""`hubkeeper env build [NAME] | list | rebuild NAME | rollback NAME | prune NAME`: the
environments of hub.yaml."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.config.backends import backend_of
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.model import default_environment
from hubkeeper.context.hub import Hub
from hubkeeper.host import envs, images
from hubkeeper.host.envkeep import Pin
from hubkeeper.host.preflight import environment_problems
from hubkeeper.state.statedir import StatePaths


@dataclass(frozen=True)
class EnvBuilt:
    name: str
    build: str  # the folder name under <state>/envs/<name>/
    built: bool  # False: `current` already was this content
    previous: str | None  # the build `current` pointed at before (kept)


@dataclass(frozen=True)
class EnvBuildResult:
    config: str
    environments: tuple[EnvBuilt, ...]


@dataclass(frozen=True)
class EnvInfo:
    name: str
    default: bool
    groups: tuple[str, ...]  # empty: everyone
    path: str  # <state>/envs/<name>
    current: str | None  # the build new servers use
    up_to_date: bool  # current was built from hub.yaml's present content
    builds: tuple[str, ...]  # every finished build (docker: image id), oldest first; old
    # ones may be in use by running servers
    locked: tuple[str, ...]  # current's `pip freeze` (docker: empty, the image has it)
    pinned: str | None = None  # when `env rollback` chose current: since when


@dataclass(frozen=True)
class EnvListResult:
    config: str
    environments: tuple[EnvInfo, ...]


def _setup(hub: Hub) -> tuple[LoadedSpec, StatePaths]:
    loaded = hub.loaded
    if not loaded.spec.environments:
        raise HubkeeperError(f"{loaded.path} declares no environments",
                             hint="add an environments: section (see docs/environments.md)")
    problems = environment_problems(loaded, hub.roster)
    if problems:
        raise InvalidInput(problems)
    return loaded, hub.paths


def build_envs(hub: Hub, name: str | None, progress: Callable[[str], None],
               force: bool = False) -> EnvBuildResult:
    """Build NAME (or every environment) whose content changed; `force`: build anew."""
    loaded, paths = _setup(hub)
    envs.make_envs_dir(paths)
    names = [name] if name else list(loaded.spec.environments)
    done = tuple(EnvBuilt(each, *envs.build_one(loaded, paths, each, force, progress))
                 for each in names)
    return EnvBuildResult(str(loaded.path), done)


def rebuild_env(hub: Hub, name: str, progress: Callable[[str], None]) -> EnvBuildResult:
    """A fresh build of NAME (newer package versions); the old build stays for running
    servers."""
    return build_envs(hub, name, progress, force=True)


def _pinned(directory: Path, current: str | None) -> str | None:
    pin = Pin.read(directory)
    return pin.at if pin is not None and current is not None and pin.build == current else None


@dataclass(frozen=True)
class EnvRollbackResult:
    config: str
    name: str
    before: str  # the build (docker: image id) current was
    now: str  # the build current is now, pinned


@dataclass(frozen=True)
class EnvPruneResult:
    config: str
    name: str
    removed: tuple[str, ...]
    in_use: tuple[str, ...]  # beyond keep but kept: running servers use them


def rollback_env(hub: Hub, name: str, to: str | None) -> EnvRollbackResult:
    """NAME's new servers start from the build before the current one (or `to`); running
    servers keep theirs. Pinned until hub.yaml changes NAME or `env rebuild NAME`."""
    loaded, paths = _setup(hub)
    before, now = envs.rollback_one(loaded, paths, name, to)
    return EnvRollbackResult(str(loaded.path), name, before, now)


def prune_env(hub: Hub, name: str, progress: Callable[[str], None]) -> EnvPruneResult:
    """Remove NAME's builds beyond its keep now (a build does it by itself)."""
    loaded, paths = _setup(hub)
    removed, busy = envs.prune_one(loaded, paths, name, progress)
    return EnvPruneResult(str(loaded.path), name, tuple(removed), tuple(busy))


def list_envs(hub: Hub) -> EnvListResult:
    loaded, paths = _setup(hub)
    default = default_environment(loaded.spec)
    rows = []
    for name, env in loaded.spec.environments.items():
        directory = paths.envs / name
        if backend_of(loaded.spec).environments == "image":
            record = images.ImageRecord.read(directory)
            rows.append(EnvInfo(
                name, name == default, tuple(env.groups), str(directory),
                f"{record.tag} ({record.id[7:19]})" if record else None,
                not images.needs_image(loaded, directory, name),
                tuple(record.history) if record else (), (),
                _pinned(directory, record.id if record else None)))
            continue
        current = envs.current_build(directory)
        locked = envs.locked_packages(directory / current) if current else ()
        fresh = bool(current) and current.split("-")[0] == envs.content_hash(
            envs.env_source(loaded, name))
        rows.append(EnvInfo(name, name == default, tuple(env.groups), str(directory), current,
                            fresh, tuple(envs.builds(directory)), locked,
                            _pinned(directory, current)))
    return EnvListResult(str(loaded.path), tuple(rows))
