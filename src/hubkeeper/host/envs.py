"""Environments on disk: one venv per build under <state>/envs/<name>/, `current` the one
new servers use.

    <state>/envs/<name>/<content-hash>[-<stamp>]/   a venv (0755), requirements.lock inside
    <state>/envs/<name>/current -> <build>          switched atomically after a good build

    <state>/envs/<name>/pinned.json                 after `env rollback`: the build chosen
                                                    and the content it was chosen against

An R environment's build also holds its R library and `ir` kernelspec (host/renv.py).

The venv holds only the environment's packages; a .pth file appends hubkeeper's own
site-packages, so JupyterLab, jupyterhub and ipykernel come from there while the
environment's packages take precedence. After a build the oldest builds beyond the
environment's `keep` are removed, never the current one nor one a process on this machine
runs from (a server or kernel started from a build keeps its resolved path in its argv).

`env rollback` points `current` at an earlier build and pins it: `apply` and `env build`
leave a pinned build alone while hub.yaml's content for the environment is the one the pin
was made against; a change there, or `env rebuild`, ends the pin.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError, InvalidInput, Problem
from hubkeeper.base.locks import env_lock
from hubkeeper.config.backends import backend_of
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative
from hubkeeper.host import images, renv
from hubkeeper.host.envkeep import Pin, pin_now, prune_order
from hubkeeper.state.statedir import STATE_DIR_MODE, StatePaths

LOCK_FILE = "requirements.lock"  # `pip freeze` of the build; written last: the build is whole
PTH_FILE = "hubkeeper-base.pth"
PIP_TIMEOUT = 1800.0  # seconds a whole pip install may take


@dataclass(frozen=True)
class EnvSource:
    """What an environment is made of, as hub.yaml says."""

    name: str
    packages: tuple[str, ...]
    requirements: Path | None
    r: renv.RSource | None = None  # environments.<name>.r: also an R kernel


def base_python() -> str:
    """The interpreter hubkeeper's venv was made from (Debian's, executable by everyone)."""
    return getattr(sys, "_base_executable", "") or sys.executable


def base_site_packages() -> str:
    return sysconfig.get_paths()["purelib"]


def content_hash(source: EnvSource) -> str:
    """Identity of a build: packages, requirements file content, Python version, base, and
    for an R environment its package lists (a key only then: Python builds keep their
    hash)."""
    body: dict[str, object] = {
        "packages": list(source.packages),
        "requirements": source.requirements.read_text() if source.requirements else None,
        "python": sys.version,
        "base": base_site_packages(),
    }
    if source.r is not None:
        body["r"] = source.r.identity()
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def env_python(build: Path) -> Path:
    return build / "bin" / "python"


def _run(argv: list[str], progress: Callable[[str], None]) -> tuple[int, list[str]]:
    """Run argv with umask 022, each output line to `progress`; (status, last lines)."""
    tail: list[str] = []
    deadline = time.monotonic() + PIP_TIMEOUT
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1",
           "HOME": os.environ.get("HOME", "/root")}
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CACHE_DIR", "PIP_NO_CACHE_DIR",
                "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY"):
        if key in os.environ:
            env[key] = os.environ[key]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True, env=env,
                          preexec_fn=lambda: os.umask(0o022)) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            progress(line)
            tail = (tail + [line])[-20:]
            if time.monotonic() > deadline:
                proc.kill()
                tail.append(f"stopped after {PIP_TIMEOUT:.0f} s")
        return proc.wait(), tail


def _open_up(root: Path) -> None:
    """Directories 0755, files readable (and executable where they were) by everyone."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o7777
        if path.is_dir():
            os.chmod(path, mode | 0o755)
        else:
            os.chmod(path, mode | 0o444 | (0o111 if mode & 0o100 else 0))


def build(source: EnvSource, directory: Path, build_name: str,
          progress: Callable[[str], None]) -> Path:
    """Make the venv <directory>/<build_name>, install, freeze; on failure remove it and
    raise with pip's last lines. `current` is not touched here."""
    target = directory / build_name
    debian: dict[str, str] = {}
    if source.r is not None:  # first: apt's refusal costs no venv
        debian = renv.ensure_debian(source.name, source.r,
                                    lambda argv: _run(argv, progress), progress)
    if target.exists():
        shutil.rmtree(target)  # an earlier build that did not finish (no lock file)
    try:
        steps = [[base_python(), "-m", "venv", str(target)]]
        pip = [str(env_python(target)), "-m", "pip", "install", "--no-input",
               "--progress-bar", "off"]
        if source.packages:
            steps.append(pip + ["--", *source.packages])
        if source.requirements:
            steps.append(pip + ["-r", str(source.requirements)])
        for argv in steps:
            status, tail = _run(argv, progress)
            if status != 0:
                raise HubkeeperError(
                    f"building environment {source.name!r} failed ({' '.join(argv[2:4])} "
                    f"exited {status}):\n  " + "\n  ".join(tail),
                    hint="fix environments." + source.name + " in hub.yaml; the current "
                    "build is unchanged")
        site = Path(subprocess.check_output(
            [str(env_python(target)), "-c",
             "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
        (site / PTH_FILE).write_text(base_site_packages() + "\n")
        frozen = subprocess.check_output(
            [str(env_python(target)), "-m", "pip", "freeze", "--local"], text=True,
            env={"PATH": "/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        if source.r is not None:
            r_lines = renv.build_r(source.name, source.r, target, debian,
                                   lambda argv: _run(argv, progress))
            frozen += "\n".join(r_lines) + "\n"
        _open_up(target)
        lock = target / LOCK_FILE
        lock.write_text(frozen)
        os.chmod(lock, 0o644)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def locked_packages(build: Path) -> tuple[str, ...]:
    """The lock file's packages, one per entry: pip's lines and the R ones (kept there as
    comments, so the lock stays a requirements file), without the R headings."""
    lock = build / LOCK_FILE
    if not lock.is_file():
        return ()
    lines = (line.strip() for line in lock.read_text().splitlines())
    return tuple(line.removeprefix("# ") for line in lines
                 if line and not line.startswith("# R:"))


def switch_current(directory: Path, build_name: str) -> None:
    """Point <directory>/current at build_name atomically (temp symlink, rename)."""
    temporary = directory / f".current-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(build_name)
    os.replace(temporary, directory / "current")


def current_build(directory: Path) -> str | None:
    link = directory / "current"
    if not link.is_symlink():
        return None
    return os.readlink(link)


def builds(directory: Path) -> list[str]:
    """Finished builds (those with a lock file), oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir()
             if p.is_dir() and not p.is_symlink() and (p / LOCK_FILE).is_file()]
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]


def builds_in_use(directory: Path) -> set[str]:
    """The builds under `directory` that a process on this machine runs from: a server's or
    kernel's argv names its build's resolved python (hub/spawner_steps.environment_python)."""
    prefix = str(directory) + "/"
    used: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        for arg in argv[:4]:
            text = arg.decode(errors="replace")
            if text.startswith(prefix):
                used.add(text[len(prefix):].split("/", 1)[0])
    return used - {"current"}


def prune(directory: Path, keep: int) -> tuple[list[str], list[str]]:
    """Remove the finished builds beyond `keep` (see prune_order); the caller holds the
    environment's lock. Returns (removed, kept because in use)."""
    remove, busy = prune_order(builds(directory), current_build(directory), keep,
                               builds_in_use(directory))
    for name in remove:
        shutil.rmtree(directory / name)
    return remove, busy


def rollback(directory: Path, content: str, to: str | None) -> tuple[str, str]:
    """Point `current` at `to` (a finished build) or at the build made before the current
    one, and pin it; the caller holds the environment's lock. Returns (from, to)."""
    finished = builds(directory)
    current = current_build(directory)
    if current is None:
        raise HubkeeperError(f"{directory} has no current build",
                             hint="build it first: hubkeeper env build")
    if to is None:
        earlier = finished[:finished.index(current)] if current in finished else []
        if not earlier:
            raise HubkeeperError(
                f"{directory.name}: no build is older than the current one ({current})",
                hint="`hubkeeper env list` shows the builds kept; choose one with --to")
        to = earlier[-1]
    elif to not in finished:
        raise InvalidInput([Problem(
            "command line", None, None, "--to", f"{to!r} is not a finished build of "
            f"{directory.name}; valid: {', '.join(finished) or 'none'}")])
    switch_current(directory, to)
    pin_now(directory, to, content)
    return current, to


# Used by `hubkeeper env` and by `apply`.
def env_source(loaded: LoadedSpec, name: str) -> EnvSource:
    if name not in loaded.spec.environments:
        known = ", ".join(loaded.spec.environments)
        raise HubkeeperError(f"no environment {name!r} in {loaded.path}",
                             hint=f"environments there: {known}")
    env = loaded.spec.environments[name]
    requirements = (config_relative(loaded.directory, env.requirements)
                    if env.requirements else None)
    r = (renv.RSource(tuple(env.r.packages), tuple(env.r.cran), env.r.cran_repository)
         if env.r is not None else None)
    return EnvSource(name, tuple(env.packages), requirements, r)


def make_envs_dir(paths: StatePaths) -> None:
    """Servers run as users and execute the venvs' python: envs/ is 0755 and the state dir
    lets them through (0711, state/statedir.py), but not list it."""
    for directory, mode in ((paths.root, STATE_DIR_MODE), (paths.envs, 0o755)):
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, mode)


def build_one(loaded: LoadedSpec, paths: StatePaths, name: str, force: bool,
               progress: Callable[[str], None]) -> tuple[str, bool, str | None]:
    """Build NAME if its content changed (`force`: anew); returns (the build or image tag,
    whether one was made, what was current before)."""
    source = env_source(loaded, name)
    directory = paths.envs / name
    keep = loaded.spec.environments[name].keep
    if backend_of(loaded.spec).environments == "image":
        with env_lock(directory):
            client = images.engine()
            built = images.build_image(client, loaded, directory, name, force, progress)
            if built[1]:
                _report_pruned(name, *images.prune(client, loaded, directory, name, keep),
                               progress)
            return built
    with env_lock(directory):
        os.chmod(directory, 0o755)
        digest = content_hash(source)
        previous = current_build(directory)
        finished = builds(directory)
        pin = Pin.read(directory)
        if not force and pin is not None and pin.holds(previous, digest):
            assert previous is not None
            progress(f"== {name}: {previous} is pinned by `env rollback` ({pin.at}); "
                     f"`hubkeeper env rebuild {name}` builds anew")
            return previous, False, previous
        if not force and previous and previous.split("-")[0] == digest:  # nothing to do
            Pin.clear(directory)
            return previous, False, previous
        build_name = digest
        if force or build_name in finished:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
            build_name = f"{digest}-{stamp}"
            for count in range(2, 100):  # two rebuilds in one second: never over a build
                if build_name not in finished:
                    break
                build_name = f"{digest}-{stamp}{count}"
        progress(f"== {name}: building {directory / build_name}")
        build(source, directory, build_name, progress)
        switch_current(directory, build_name)
        Pin.clear(directory)
        _report_pruned(name, *prune(directory, keep), progress)
        return build_name, True, previous


def _report_pruned(name: str, removed: list[str], busy: list[str],
                   progress: Callable[[str], None]) -> None:
    if removed:
        progress(f"== {name}: removed the old builds {', '.join(removed)} (keep)")
    if busy:
        progress(f"== {name}: kept {', '.join(busy)} beyond keep: running servers use them")


def rollback_one(loaded: LoadedSpec, paths: StatePaths, name: str,
                 to: str | None) -> tuple[str, str]:
    """`env rollback NAME [--to BUILD]`: (the build or image before, the one now current)."""
    source = env_source(loaded, name)
    directory = paths.envs / name
    with env_lock(directory):
        if backend_of(loaded.spec).environments == "image":
            return images.rollback(images.engine(), loaded, directory, name, to)
        return rollback(directory, content_hash(source), to)


def prune_one(loaded: LoadedSpec, paths: StatePaths, name: str,
              progress: Callable[[str], None]) -> tuple[list[str], list[str]]:
    """`env prune NAME`: the old builds beyond keep removed now."""
    env_source(loaded, name)
    directory = paths.envs / name
    keep = loaded.spec.environments[name].keep
    with env_lock(directory):
        if backend_of(loaded.spec).environments == "image":
            removed, busy = images.prune(images.engine(), loaded, directory, name, keep)
        else:
            removed, busy = prune(directory, keep)
    _report_pruned(name, removed, busy, progress)
    return removed, busy


def needs_build(loaded: LoadedSpec, paths: StatePaths, name: str) -> bool:
    """Whether NAME's current build is missing or was made from other content."""
    if backend_of(loaded.spec).environments == "image":
        return images.needs_image(loaded, paths.envs / name, name)
    directory = paths.envs / name
    current = current_build(directory)
    digest = content_hash(env_source(loaded, name))
    pin = Pin.read(directory)
    if current is not None and pin is not None and pin.holds(current, digest):
        return False
    return current is None or current.split("-")[0] != digest
