"""The escape hatch's files: `hub.extra_config` (run in the hub, as root in system mode) and
`environments.<name>.server_config` (run in each server of the environment, as the user).

Where they are, whether they are safe to run (nobody but their owner may change them; the
servers' ones readable by every account in system mode), their syntax as Python reports it,
and the traitlets settings a file sets when run (`settings_of`, for the hub and the doctor).
The same ownership rule guards the hooks' scripts (host/preflight.py).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config

from hubkeeper.base.errors import HubkeeperError, Problem
from hubkeeper.base.whoami import effective_uid
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ExtraFile:
    """One entry of hub.extra_config or an environment's server_config."""

    loc: Loc  # where hub.yaml names it
    path: Path  # absolute
    environment: str | None = None  # None: the hub's own

    @property
    def runs(self) -> str:
        if self.environment is None:
            return "in the hub" + (" as root" if effective_uid() == 0 else "")
        return f"in every server of environment {self.environment!r}"


def extra_files(loaded: LoadedSpec) -> list[ExtraFile]:
    """Every file hub.yaml names, the hub's first, each environment's in order."""
    spec, directory = loaded.spec, loaded.directory
    files = [ExtraFile(("hub", "extra_config", index), config_relative(directory, value))
             for index, value in enumerate(spec.hub.extra_config)]
    for name, env in spec.environments.items():
        files += [ExtraFile(("environments", name, "server_config", index),
                            config_relative(directory, value), name)
                  for index, value in enumerate(env.server_config)]
    return files


def unsafe_writers(path: Path, owners: set[int]) -> str | None:
    """Why someone other than `owners` could change what `path` runs, or None."""
    for part in (path, *path.parents):
        info = part.lstat()
        if info.st_uid not in owners:
            return f"{part} belongs to uid {info.st_uid}, who could change it"
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if info.st_mode & 0o022 and not sticky_dir and not stat.S_ISLNK(info.st_mode):
            return f"{part} is writable by other users; chmod go-w {part}"
    return None


def hidden_from_others(path: Path, need: int = stat.S_IROTH | stat.S_IXOTH) -> str | None:
    """Why an account that is neither owner nor group could not use `path` as `need` says
    (read, or read and run), or None."""
    for part in path.parents:
        if not part.stat().st_mode & stat.S_IXOTH:
            return f"other accounts cannot enter {part}; chmod o+x {part}"
    if path.stat().st_mode & need != need:
        how = "read and run" if need & stat.S_IXOTH else "read"
        bits = "rx" if need & stat.S_IXOTH else "r"
        return f"other accounts cannot {how} it; chmod o+{bits} {path}"
    return None


def owners() -> set[int]:
    """Who may own what runs: root and the account running hubkeeper."""
    return {0, effective_uid()}


def unsafe(path: Path) -> str | None:
    """The path as written and the file it resolves to, both changeable only by owners()."""
    return unsafe_writers(path, owners()) or unsafe_writers(Path(os.path.realpath(path)),
                                                            owners())


def syntax_problem(path: Path, source: str) -> Problem | None:
    """A syntax error of the file at its own line and column, as Python reports it."""
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return Problem(str(path), exc.lineno, exc.offset, "", f"syntax error: {exc.msg}")
    except ValueError as exc:  # null bytes
        return Problem(str(path), None, None, "", str(exc))
    return None


def file_problems(loaded: LoadedSpec, mode: str) -> list[Problem]:
    """`check`: each file exists, is a regular file only its owner can change, compiles, and
    (servers' files, system mode) every account can read it. Missing or unsafe files are
    reported at hub.yaml's entry; a syntax error at the file's own line and column."""
    problems = []
    for entry in extra_files(loaded):
        try:
            source = entry.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(loaded.problem(entry.loc, f"no such file: {entry.path}"))
            continue
        except IsADirectoryError:
            problems.append(loaded.problem(entry.loc, f"{entry.path} is not a file"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            problems.append(loaded.problem(entry.loc, f"cannot read {entry.path}: {why}"))
            continue
        why = unsafe(entry.path)
        if why:
            problems.append(loaded.problem(entry.loc, f"{why}: the file runs {entry.runs}"))
            continue
        if entry.environment is not None and mode == "system":
            hidden = hidden_from_others(Path(os.path.realpath(entry.path)), stat.S_IROTH)
            if hidden:
                problems.append(loaded.problem(
                    entry.loc, f"server_config files are read by each user's server, but "
                    f"{hidden}"))
                continue
        syntax = syntax_problem(entry.path, source)
        if syntax is not None:
            problems.append(syntax)
    return problems


def read_safe(path: Path) -> str:
    """The source of a hub extra_config file, read just before it runs as the hub: refused
    (HubkeeperError) if it is gone or someone but its owner could have changed it since
    `check`."""
    why = unsafe(path)
    if why:
        raise HubkeeperError(f"hub.extra_config {path} is not run: {why}",
                             hint="only root or the hub's account may be able to change it")
    return path.read_text(encoding="utf-8")


def run_into(config: Config, path: Path, source: str,
             get_config: Callable[[], Config] | None = None) -> Config:
    """Run a configuration file's source with `c` (and `get_config`) bound to `config`, as
    traitlets runs a jupyterhub_config.py; returns `config`."""
    code = compile(source, str(path), "exec", dont_inherit=True)
    namespace = {"c": config, "get_config": get_config or (lambda: config),
                 "__file__": str(path), "__name__": "__hubkeeper_extra_config__"}
    exec(code, namespace)  # noqa: S102 - the operator's own configuration, as JupyterHub does
    return config


def settings_of(config: Config) -> set[str]:
    """The Class.trait names a Config sets."""
    return {f"{section}.{trait}" for section, values in config.items()
            if isinstance(values, Config) for trait in values}
