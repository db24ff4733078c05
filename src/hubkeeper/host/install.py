"""Versioned installs of hubkeeper: one venv per version under a prefix, a `current` link.

    <prefix>/                       0755, default /opt/hubkeeper
    <prefix>/<name>/                one venv (0755/0644: every account runs its servers)
    <prefix>/<name>/.incomplete     written first, removed last: a build still (or never)
                                    finished; never activated, removed by the next build
    <prefix>/<name>/hubkeeper-install.json
                                    name, requirements, python, built, versions (complete)
    <prefix>/current -> <name>      swapped atomically (a temp link, then rename)
    <prefix>/.lock                  0600; held while an install is built, activated, removed
    /usr/local/bin/hubkeeper -> <prefix>/current/bin/hubkeeper

A venv cannot be moved once built (its scripts' shebangs hold its path), so it is built in
place behind the marker instead of in a temp folder renamed at the end.

Standard library only: `./run setup` runs this file with Debian's python3 before any venv
exists (`python3 src/hubkeeper/host/install.py venv .venv -- -e '.[test]'`), and a server
installs from the wheel itself (`PYTHONPATH=hubkeeper-X.whl python3 -m
hubkeeper.host.install install ./hubkeeper-X.whl`, docs/install.md). Of hubkeeper it imports
only the error class and the atomic writer (base/, which import the standard library only).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    # Run by path: the package's tree goes first on sys.path, and this folder (whose
    # modules would shadow others: site, tls, ...) not at all.
    from pathlib import Path as _Path

    _here = _Path(__file__).resolve()
    sys.path[:] = [entry for entry in sys.path if _Path(entry or ".").resolve() != _here.parent]
    sys.path.insert(0, str(_here.parents[2]))

import argparse
import contextlib
import datetime
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import fsync_dir, write_atomic

DEFAULT_PREFIX = Path("/opt/hubkeeper")
COMMAND_LINK = Path("/usr/local/bin/hubkeeper")
DEFAULT_PYTHON = Path("/usr/bin/python3")
CURRENT = "current"
MARKER = ".incomplete"
MANIFEST = "hubkeeper-install.json"
LOCK = ".lock"
UMASK = 0o022  # every account reads and runs the venv (servers run as the users)
# The packages whose versions `upgrade` reports; every distribution is in "packages".
REPORTED = ("hubkeeper", "jupyterhub", "jupyterlab", "jupyter-server",
            "configurable-http-proxy", "oauthenticator", "jupyterhub-nativeauthenticator",
            "jupyterhub-ldapauthenticator", "jupyterhub-ltiauthenticator",
            "jupyterhub-idle-culler", "dockerspawner", "batchspawner", "sqlalchemy",
            "alembic", "pydantic")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
# Environment of pip and of the venv's python: nothing of the caller's interpreter may leak
# in (a PYTHONPATH holding the hubkeeper wheel would make pip think it is installed).
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV",
               "PIP_USER", "PIP_TARGET", "PIP_PREFIX", "__PYVENV_LAUNCHER__")
# Read by the venv's own python: every installed distribution and its version.
VERSIONS_SCRIPT = (
    "import json, importlib.metadata as m, re, sys\n"
    "found = {}\n"
    "for d in m.distributions():\n"
    "    name = d.metadata['Name']\n"
    "    if name:\n"
    "        found.setdefault(re.sub(r'[-_.]+', '-', name).lower(), d.version)\n"
    "print(json.dumps({'python': '%d.%d.%d' % sys.version_info[:3], 'packages': found}))\n"
)
PIP_TAIL_LINES = 30


class InstallError(HubkeeperError):
    """A versioned install cannot be built, activated, listed or removed as asked."""


@dataclass(frozen=True)
class Installed:
    name: str
    path: Path
    manifest: dict

    @property
    def executable(self) -> Path:
        return self.path / "bin" / "hubkeeper"

    @property
    def version(self) -> str | None:
        """The hubkeeper version in this install (None: hubkeeper is not in it)."""
        return self.manifest.get("versions", {}).get("hubkeeper")


# ---- names and paths

def check_name(name: str) -> None:
    """An install's name is one folder under the prefix, never `current` or hidden."""
    if name == CURRENT or not NAME.fullmatch(name) or name in (".", ".."):
        raise InstallError(
            f"{name!r} cannot name an install",
            hint=f"use letters, digits and . _ + - (up to 100, not starting with one of "
            f"them), not {CURRENT!r}; the version is the usual name (0.2.0)")


def install_path(prefix: Path, name: str) -> Path:
    check_name(name)
    return Path(os.path.abspath(prefix)) / name


def _is_complete(path: Path) -> bool:
    return (path / MANIFEST).is_file() and not (path / MARKER).exists()


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InstallError(f"cannot read {path / MANIFEST}: {exc}",
                           hint="build that install again under another name") from None
    if not isinstance(manifest, dict):
        raise InstallError(f"{path / MANIFEST} does not hold an install's record",
                           hint="build that install again under another name")
    return manifest


def _installed(path: Path) -> Installed:
    return Installed(path.name, path, _read_manifest(path))


def _clean_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in DROPPED_ENV}
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


@contextlib.contextmanager
def _prefix_lock(prefix: Path) -> Iterator[None]:
    """One change at a time under a prefix (0600: no other account can hold it)."""
    _make_dir(prefix)
    path = prefix / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise InstallError(
                f"another hubkeeper install is changing {prefix} (pid {holder})",
                hint="wait for it to finish, then run this again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _make_dir(path: Path) -> None:
    """A folder every account can read and traverse (0755), whatever the caller's umask."""
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != 0o755 and path.stat().st_uid == os.geteuid():
        os.chmod(path, 0o755)


# ---- a venv

def _run(command: Sequence[str], what: str) -> str:
    try:
        done = subprocess.run(list(command), env=_clean_env(), umask=UMASK,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)
    except OSError as exc:
        raise InstallError(f"{what}: cannot run {command[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-PIP_TAIL_LINES:])
        raise InstallError(f"{what} failed (exit {done.returncode}):\n{tail}",
                           hint="nothing was activated; fix the cause and run it again")
    return done.stdout


def make_venv(path: Path, requirements: Sequence[str], *, python: Path = DEFAULT_PYTHON,
              pip_args: Sequence[str] = (), upgrade_pip: bool = False) -> None:
    """Create the venv at `path` with `python` (unless it has one) and pip-install
    `requirements` into it, umask 022. Used by `build` and by `./run setup` (the clone's
    editable .venv)."""
    if not os.access(python, os.X_OK):
        raise InstallError(f"{python} is not an executable Python",
                           hint="apt-get install python3 python3-venv")
    path = Path(os.path.abspath(path))
    if not (path / "bin" / "python").exists():
        _run([str(python), "-m", "venv", str(path)], f"creating the venv {path}")
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check", "--no-warn-script-location"]
    if upgrade_pip:
        _run(pip + ["--upgrade", "pip"], f"upgrading pip in {path}")
    if requirements:
        _run(pip + list(pip_args) + list(requirements),
             f"pip install {' '.join(requirements)} into {path}")


def venv_versions(path: Path) -> dict:
    """{"python": "3.11.2", "packages": {name: version}}, read by the venv's own python."""
    out = _run([str(path / "bin" / "python"), "-I", "-c", VERSIONS_SCRIPT],
               f"reading the versions installed in {path}")
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise InstallError(f"cannot read the versions installed in {path}: {out[-500:]}"
                           ) from None


# ---- builds

def _utcnow() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _clear_incomplete(path: Path) -> None:
    """Remove what a killed build (or removal) left: a folder with the marker, or an empty
    one (killed between mkdir and the marker). Anything else is refused, never removed."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise InstallError(f"{path} is not a folder hubkeeper made; nothing was changed",
                           hint="move it away, or build under another name")
    if _is_complete(path):
        raise InstallError(f"{path} is already a complete install; nothing was changed",
                           hint=f"activate it, or remove it first (`remove --name "
                           f"{path.name}`) to build it again")
    if not (path / MARKER).exists() and any(path.iterdir()):
        raise InstallError(f"{path} is not a hubkeeper install (no {MANIFEST}, no {MARKER}); "
                           "nothing was changed",
                           hint="move it away, or build under another name")
    shutil.rmtree(path)
    fsync_dir(path.parent)


def _mark(path: Path, why: str) -> None:
    """The marker, written in place (not atomically): a kill mid-write must still leave
    a marker, even an empty one, and no temp file that would make the folder look foreign."""
    with open(path / MARKER, "w") as handle:
        handle.write(why + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(path)


def build(prefix: Path, name: str, requirements: Sequence[str], *,
          python: Path = DEFAULT_PYTHON, pip_args: Sequence[str] = ()) -> Installed:
    """Build the venv `<prefix>/<name>` with `requirements`, behind the `.incomplete` marker.

    Refuses an existing complete install of that name; removes an incomplete one first.
    Does not activate it."""
    path = install_path(prefix, name)
    if not requirements:
        raise InstallError("no requirements to install",
                           hint="name the hubkeeper wheel, or hubkeeper==VERSION")
    with _prefix_lock(path.parent):
        _clear_incomplete(path)
        path.mkdir(mode=0o755)
        os.chmod(path, 0o755)
        _mark(path, f"building since {_utcnow()} by pid {os.getpid()}")
        make_venv(path, requirements, python=python, pip_args=pip_args)
        found = venv_versions(path)
        packages = found.get("packages", {})
        manifest = {
            "name": name,
            "requirements": list(requirements),
            "python": str(python),
            "python_version": found.get("python"),
            "built": _utcnow(),
            "versions": {key: packages[key] for key in REPORTED if key in packages},
            "packages": dict(sorted(packages.items())),
        }
        write_atomic(path / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        (path / MARKER).unlink()
        fsync_dir(path)
    return Installed(name, path, manifest)


def get(prefix: Path, name: str) -> Installed:
    """The complete install `name`, or an error saying what is there instead."""
    path = install_path(prefix, name)
    if not path.is_dir() or path.is_symlink():
        known = ", ".join(i.name for i in installs(prefix)) or "none"
        raise InstallError(f"no install {name!r} in {path.parent}",
                           hint=f"complete installs there: {known}")
    if (path / MARKER).exists() or not (path / MANIFEST).is_file():
        raise InstallError(f"{path} is an incomplete install (its build was interrupted or "
                           "failed); it is never activated",
                           hint=f"build it again (`build --name {name} ...`) or remove it")
    return _installed(path)


# ---- current

def activate(prefix: Path, name: str) -> str | None:
    """Point `<prefix>/current` at the complete install `name`, atomically. Returns the name
    it pointed at before (None: there was none)."""
    prefix = Path(os.path.abspath(prefix))
    get(prefix, name)
    with _prefix_lock(prefix):
        get(prefix, name)  # a removal may have run before the lock was ours
        link = prefix / CURRENT
        previous = os.readlink(link) if link.is_symlink() else None
        if link.exists() and not link.is_symlink():
            raise InstallError(f"{link} is not a link; nothing was changed",
                               hint="move it away and activate again")
        for stale in prefix.glob(f".{CURRENT}.*"):  # an activate killed before its rename
            if stale.is_symlink():
                stale.unlink()
        temp = prefix / f".{CURRENT}.{os.getpid()}"
        os.symlink(name, temp)  # relative: the link names the install, not a path
        os.replace(temp, link)
        fsync_dir(prefix)
    return Path(previous).name if previous else None


def current(prefix: Path) -> Installed | None:
    """The install `<prefix>/current` points at (None: no link yet)."""
    link = Path(os.path.abspath(prefix)) / CURRENT
    if not link.is_symlink():
        return None
    return get(link.parent, Path(os.readlink(link)).name)


def installs(prefix: Path) -> list[Installed]:
    """The complete installs under `prefix`, oldest build first."""
    prefix = Path(os.path.abspath(prefix))
    if not prefix.is_dir():
        return []
    found = []
    for path in prefix.iterdir():
        if (path.name != CURRENT and NAME.fullmatch(path.name) and not path.is_symlink()
                and path.is_dir() and _is_complete(path)):
            with contextlib.suppress(InstallError):
                found.append(_installed(path))
    return sorted(found, key=lambda i: (str(i.manifest.get("built", "")), i.name))


def incomplete(prefix: Path) -> list[Path]:
    """Folders under `prefix` whose build (or removal) did not finish."""
    prefix = Path(os.path.abspath(prefix))
    if not prefix.is_dir():
        return []
    return sorted(path for path in prefix.iterdir()
                  if not path.is_symlink() and (path / MARKER).exists())


def remove(prefix: Path, name: str) -> None:
    """Remove the install `name` (complete or not); the current one is refused."""
    path = install_path(prefix, name)
    with _prefix_lock(path.parent):
        link = path.parent / CURRENT
        if link.is_symlink() and Path(os.readlink(link)).name == name:
            raise InstallError(f"{name!r} is the current install ({link}); nothing was changed",
                               hint="activate another install first")
        if not path.is_dir() or path.is_symlink():
            raise InstallError(f"no install {name!r} in {path.parent}")
        if not (path / MARKER).exists() and not (path / MANIFEST).is_file():
            raise InstallError(f"{path} is not a hubkeeper install; nothing was changed")
        # Marked first: a removal killed half-way leaves an incomplete install, never a
        # damaged one that looks complete.
        _mark(path, f"removing since {_utcnow()} by pid {os.getpid()}")
        shutil.rmtree(path)
        fsync_dir(path.parent)


# ---- the command on PATH

def link_command(prefix: Path, link: Path = COMMAND_LINK, *, replace: bool = False) -> None:
    """Make `link` (/usr/local/bin/hubkeeper) a symlink to `<prefix>/current/bin/hubkeeper`.

    A file there, or a link to anything but some prefix's current hubkeeper, is left alone
    unless `replace`: it may be another installation the operator relies on."""
    target = Path(os.path.abspath(prefix)) / CURRENT / "bin" / "hubkeeper"
    if not target.exists():
        raise InstallError(f"{target} does not exist",
                           hint="build and activate an install first")
    if link.is_symlink():
        existing = os.readlink(link)
        if existing == str(target):
            return
        if not replace and not existing.endswith(f"/{CURRENT}/bin/hubkeeper"):
            raise InstallError(f"{link} already links to {existing}; nothing was changed",
                               hint="remove it, or link with --replace")
    elif link.exists() and not replace:
        raise InstallError(f"{link} exists and is not hubkeeper's link; nothing was changed",
                           hint="remove it (another hubkeeper installed with pip?), or link "
                           "with --replace")
    link.parent.mkdir(parents=True, exist_ok=True)
    temp = link.parent / f".{link.name}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    os.symlink(target, temp)
    os.replace(temp, link)
    fsync_dir(link.parent)


def install_of(executable: Path) -> tuple[Path, Installed] | None:
    """(prefix, install) when `executable`'s venv is a versioned install, else None (a
    clone's .venv, a pip install elsewhere)."""
    venv = Path(os.path.abspath(executable)).parent.parent
    if not (venv / MANIFEST).is_file() or (venv / MARKER).exists():
        return None
    try:
        return venv.parent, _installed(venv)
    except InstallError:
        return None


# ---- the command line (for ./run and a server's first install; hubkeeper itself calls the
# functions above)

def _wheel_version(requirements: Sequence[str]) -> str | None:
    for requirement in requirements:
        match = re.fullmatch(r"hubkeeper-([^-]+)-.*\.whl", Path(requirement).name)
        if match:
            return match.group(1)
    return None


def _describe(installed: Installed, current_name: str | None) -> str:
    versions = installed.manifest.get("versions", {})
    shown = ", ".join(f"{key} {versions[key]}" for key in ("hubkeeper", "jupyterhub",
                                                             "jupyterlab") if key in versions)
    mark = "*" if installed.name == current_name else " "
    return f"{mark} {installed.name}  built {installed.manifest.get('built', '?')}  {shown}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m hubkeeper.host.install",
        description="Versioned installs of hubkeeper: <prefix>/<name>/ venvs, "
        "<prefix>/current, /usr/local/bin/hubkeeper (docs/install.md).")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_prefix(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--prefix", type=Path, default=DEFAULT_PREFIX,
                         help=f"where installs live (default {DEFAULT_PREFIX})")
        return sub

    def with_build(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--name", help="the install's folder (default: the version of "
                         "the hubkeeper wheel named)")
        sub.add_argument("--python", type=Path, default=DEFAULT_PYTHON,
                         help=f"the Python the venv is made from (default {DEFAULT_PYTHON})")
        sub.add_argument("--pip-arg", action="append", default=[], dest="pip_args",
                         metavar="ARG", help="an argument for pip install (repeatable), "
                         "e.g. --pip-arg=--no-index --pip-arg=--find-links=DIR")
        sub.add_argument("requirements", nargs="+", metavar="REQUIREMENT",
                         help="what pip installs: a wheel file, hubkeeper==X.Y.Z, ...")

    with_build(with_prefix(commands.add_parser(
        "build", help="build <prefix>/<name> (not activated)")))
    install = with_prefix(commands.add_parser(
        "install", help="build, activate and link in one step"))
    with_build(install)
    install.add_argument("--link", type=Path, default=COMMAND_LINK,
                         help=f"the command's link (default {COMMAND_LINK})")
    with_prefix(commands.add_parser("activate", help="point <prefix>/current at an install")
                ).add_argument("--name", required=True)
    with_prefix(commands.add_parser("list", help="the complete installs, * marks current"))
    with_prefix(commands.add_parser("remove", help="remove an install (never the current)")
                ).add_argument("--name", required=True)
    link = with_prefix(commands.add_parser(
        "link", help=f"link {COMMAND_LINK} to <prefix>/current/bin/hubkeeper"))
    link.add_argument("--link", type=Path, default=COMMAND_LINK)
    link.add_argument("--replace", action="store_true",
                      help="replace a file or foreign link there")
    venv = commands.add_parser("venv", help="make a venv (if missing) and pip-install into "
                               "it: the developer's .venv of ./run setup")
    venv.add_argument("path", type=Path)
    venv.add_argument("--python", type=Path, default=DEFAULT_PYTHON)
    venv.add_argument("--upgrade-pip", action="store_true")
    venv.epilog = "what follows `--` goes to pip install, e.g. `venv .venv -- -e '.[test]'`"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tail: list[str] = []
    if "--" in argv:  # pip's own arguments (`venv`), which argparse must not read
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1:]
    args = _parser().parse_args(argv)
    out = sys.stdout.write
    try:
        if args.command in ("build", "install"):
            name = args.name or _wheel_version(args.requirements)
            if not name:
                raise InstallError("--name is needed (no hubkeeper wheel names a version)")
            built = build(args.prefix, name, args.requirements, python=args.python,
                          pip_args=args.pip_args)
            out(f"built {built.path} ({built.version or 'no hubkeeper'})\n")
            if args.command == "install":
                previous = activate(args.prefix, name)
                out(f"{args.prefix / CURRENT} -> {name}"
                    + (f" (was {previous})\n" if previous else "\n"))
                link_command(args.prefix, args.link)
                out(f"{args.link} -> {args.prefix / CURRENT / 'bin' / 'hubkeeper'}\n")
        elif args.command == "activate":
            previous = activate(args.prefix, args.name)
            out(f"{args.prefix / CURRENT} -> {args.name}"
                + (f" (was {previous})\n" if previous else "\n"))
        elif args.command == "list":
            now = current(args.prefix)
            for installed in installs(args.prefix):
                out(_describe(installed, now.name if now else None) + "\n")
            for path in incomplete(args.prefix):
                out(f"! {path.name}  incomplete (removed by the next build of that name)\n")
        elif args.command == "remove":
            remove(args.prefix, args.name)
            out(f"removed {args.prefix / args.name}\n")
        elif args.command == "link":
            link_command(args.prefix, args.link, replace=args.replace)
            out(f"{args.link} -> {args.prefix / CURRENT / 'bin' / 'hubkeeper'}\n")
        elif args.command == "venv":
            make_venv(args.path, tail, python=args.python, upgrade_pip=args.upgrade_pip)
    except HubkeeperError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"hint: {exc.hint}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
