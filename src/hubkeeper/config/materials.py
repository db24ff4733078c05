"""Course material that updates (`materials:`): git repositories pulled into each user's
folder at every server start and by `hubkeeper materials publish`, with nbgitpuller's merge
rules (docs/materials.md)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from hubkeeper.config.environments import EnvironmentName
from hubkeeper.config.types import Duration, Section

# What git may fetch from without running a program of the URL's choosing: no ext::, no
# fd::, no remote helpers named by the URL.
REPO_FORMS = "https://host/path, ssh://[user@]host/path, git@host:path, file:///path or an " \
    "absolute path on this machine (/srv/course.git)"
_SCP_LIKE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[^\s:][^\s]*$")
# git check-ref-format's rules that matter here: no leading '-', no '..', no '@{', no
# control characters, spaces or ~^:?*[\ and no trailing '.lock' or '/'.
_FOLDER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)(?!.*//)[A-Za-z0-9._/+-]{1,200}(?<![./])"
                     r"(?<!\.lock)$")


def repository(value: str) -> str:
    """A repository git may fetch, in one of REPO_FORMS."""
    if not value or any(c.isspace() or ord(c) < 32 for c in value) or len(value) > 1000:
        raise ValueError(f"{value!r} is not a git repository address; write one of "
                         f"{REPO_FORMS}")
    if value.startswith("/"):
        if "/../" in value + "/":
            raise ValueError(f"{value!r}: an absolute path without '..', e.g. "
                             "/srv/course.git")
        return value
    if _SCP_LIKE.match(value):
        return value
    parts = urllib.parse.urlsplit(value)
    if parts.scheme in ("https", "ssh") and parts.hostname and parts.path not in ("", "/"):
        return value
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return value
    raise ValueError(f"{value!r} is not a git repository address hubkeeper pulls from; "
                     f"write one of {REPO_FORMS}")


def folder_name(value: str) -> str:
    if not _FOLDER.match(value):
        raise ValueError(f"{value!r} is not a folder name; write one name such as course or "
                         "week-3 (letters, digits and _ . -, not starting with '.', no '/')")
    return value


def branch_name(value: str) -> str:
    if not _BRANCH.match(value):
        raise ValueError(f"{value!r} is not a branch name; write one as git does, e.g. main "
                         "or week-3 (letters, digits and . _ / + -, no '..')")
    return value


class Material(Section):
    """One git repository pulled into every user's folder (see docs/materials.md)."""

    repo: Annotated[str, AfterValidator(repository)] = Field(
        description="The instructor's repository: https://host/path, ssh://host/path, "
        "git@host:path, file:///path or an absolute path on this machine. Users' accounts "
        "must be able to read it (the pull runs as each user).")
    branch: Annotated[str, AfterValidator(branch_name)] | None = Field(
        None, description="The branch to follow. Default: the repository's default branch.")
    target: Annotated[str, AfterValidator(folder_name)] = Field(
        description="The folder it is pulled into: ~/<environment>/<target> when the hub "
        "has environments, ~/<target> when it has none. A name, no '/' or '..'.")
    environments: list[EnvironmentName] = Field(
        default_factory=list,
        description="Pull it only for starts of these environments. Empty: every "
        "environment (or the home when there are none).")
    timeout: Duration = Field(
        "1m", validate_default=True,
        description="How long one pull may take (30s, 2m; at most 1h); at the deadline it "
        "is stopped and counts as failed.")
    on_failure: Literal["warn", "fail"] = Field(
        "warn",
        description="warn: a failed pull is logged (the user's hook log and the hub's "
        "log) and the server starts with the material as it was. fail: the start is "
        "refused.")
