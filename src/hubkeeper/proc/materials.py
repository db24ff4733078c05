"""One pull of course material: `python -I -m hubkeeper.proc.materials REPO BRANCH FOLDER`.

Run as the user, never as root (host/materials.py starts it). nbgitpuller's GitPuller
clones REPO into FOLDER the first time, and later merges the instructor's new commits with
its rules: the student's edits win (`merge -Xours`), files the student deleted come back,
new files and files the student never touched follow the instructor. git's output goes to
stderr; the last line of stdout is the report, JSON: {"status": cloned | updated |
unchanged | failed, "updated": [...], "kept": [...], "error": "..."}.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable
from typing import Any


def git(folder: str, *args: str) -> str:
    return subprocess.run(["git", "-C", folder, *args], check=True, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL).stdout


def changed(folder: str, *revisions: str) -> set[str]:
    """Paths that differ between the revisions (one: against the working tree)."""
    return {name for name in git(folder, "diff", "--name-only", "-z", *revisions,
                                 "--").split("\0") if name}


def refusal(folder: str, repo: str) -> str | None:
    """Why FOLDER cannot receive REPO, or None. An existing folder must be a clone of
    REPO: a student's folder of the same name is never merged into."""
    if os.path.islink(folder):
        return f"{folder} is a symbolic link; move it away to receive the material"
    if not os.path.exists(folder):
        return None
    if not os.path.isdir(os.path.join(folder, ".git")):
        return (f"{folder} exists and is not a clone of {repo}; move it away (or rename "
                "it) to receive the material")
    try:
        origin = git(folder, "config", "--get", "remote.origin.url").strip()
    except subprocess.CalledProcessError:
        origin = ""
    if origin != repo:
        return (f"{folder} is a clone of {origin or 'nothing'}, not of {repo}; move it away "
                "to receive the material")
    return None


class Output:
    """git's output, passed on to stderr; the last line that is not a command says why a
    step failed."""

    def __init__(self) -> None:
        self.last = ""

    def show(self, lines: Iterable[str]) -> None:
        for line in lines:
            sys.stderr.write(line if line.endswith("\n") else line + "\n")
            if line.strip() and not line.startswith("$ "):
                self.last = line.strip()


def pull(repo: str, branch: str | None, folder: str, output: Output) -> dict[str, Any]:
    from nbgitpuller.pull import GitPuller  # after the checks: its import takes a while

    why = refusal(folder, repo)
    if why is not None:
        return {"status": "failed", "error": why}
    # a full clone (depth 0): later merges always find their base
    puller = GitPuller(repo, folder, branch=branch, depth=0)
    name = puller.branch_name
    if not os.path.exists(folder):
        output.show(puller.pull())
        return {"status": "cloned", "updated": sorted(
            name for name in git(folder, "ls-files", "-z").split("\0") if name)}
    upstream = f"origin/{name}"
    before = git(folder, "rev-parse", upstream).strip()
    # what the student changed: their committed merges and what they edited since
    edited = changed(folder, upstream)
    output.show(puller.pull())
    after = git(folder, "rev-parse", upstream).strip()
    if before == after:
        return {"status": "unchanged"}
    arrived = changed(folder, before, after)
    return {"status": "updated", "updated": sorted(arrived - edited),
            "kept": sorted(arrived & edited)}


def git_says(repo: str) -> str:
    """git's own first complaint about reaching `repo` (nbgitpuller keeps it to itself)."""
    done = subprocess.run(["git", "ls-remote", "--symref", "--", repo, "HEAD"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    said = [line for line in done.stderr.splitlines() if line.startswith("fatal:")]
    return said[0].removeprefix("fatal: ") if said else "it has no default branch"


def failure(exc: Exception, repo: str, branch: str, output: Output) -> str:
    """One line saying why a pull failed."""
    from nbgitpuller.errors import BranchExistError, BranchResolveError

    if isinstance(exc, BranchExistError):
        return f"{repo} has no branch {branch!r}"
    if isinstance(exc, BranchResolveError):
        return f"cannot read {repo}: {git_says(repo)}"
    if isinstance(exc, subprocess.CalledProcessError):
        said = exc.stderr if isinstance(exc.stderr, str) else ""
        last = said.strip().splitlines()[-1:] or [output.last or f"exit status {exc.returncode}"]
        command = " ".join(str(part) for part in exc.cmd[:2]) if exc.cmd else "git"
        return f"{command}: {last[0]}"
    return str(exc) or type(exc).__name__


def local_path(repo: str) -> str | None:
    """The repository's path when it is on this machine, else None."""
    if repo.startswith("/"):
        return repo
    parts = urllib.parse.urlsplit(repo)
    return urllib.parse.unquote(parts.path) if parts.scheme == "file" else None


def trusting(path: str, directory: str) -> str:
    """A git configuration file, the user's own, that is their usual global configuration
    plus one exception: the instructor's repository at `path` (not the user's) may be read.
    git refuses a repository another account owns ("dubious ownership") unless
    safe.directory names it, and the local transport reads that only from the global or
    system configuration (it drops GIT_CONFIG_PARAMETERS). Returns the file's path."""
    trusted = {path.rstrip("/"), os.path.realpath(path)}
    trusted |= {os.path.join(each, ".git") for each in trusted}
    fd, name = tempfile.mkstemp(prefix="hubkeeper-materials-", suffix=".gitconfig",
                                dir=directory)
    with os.fdopen(fd, "w") as config:
        # the user's own settings first, as git would read them without this file
        config.write("[include]\n\tpath = ~/.gitconfig\n\tpath = ~/.config/git/config\n")
        config.write("[safe]\n" + "".join(f"\tdirectory = {each}\n"
                                         for each in sorted(trusted)))
    return name


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write("usage: python -m hubkeeper.proc.materials REPO BRANCH FOLDER\n")
        return 2
    _, repo, branch, folder = argv
    # nbgitpuller logs a traceback for what failure() says in one line
    logging.getLogger().addHandler(logging.NullHandler())
    os.umask(0o077)  # the material is the student's own, like the rest of their home
    output = Output()
    path = local_path(repo)
    config = trusting(path, tempfile.gettempdir()) if path else None
    if config:
        os.environ["GIT_CONFIG_GLOBAL"] = config
    try:
        report = pull(repo, branch or None, folder, output)
    except Exception as exc:  # git's failures, nbgitpuller's own (a recent lock)
        report = {"status": "failed", "error": failure(exc, repo, branch, output)}
    finally:
        if config:
            os.unlink(config)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
