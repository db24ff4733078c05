"""What a user's server gets: start-up hooks, data folders, environments (venvs or images)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from hubkeeper.config.access import GroupName
from hubkeeper.config.servers import ENV_HELP, UI_HELP, EnvVars, UserInterface
from hubkeeper.config.types import (
    ENVIRONMENT_NAME_PATTERN,
    Duration,
    Section,
    Size,
)


class Hook(Section):
    """One start-up script."""

    script: str = Field(
        min_length=1,
        description="Path of an executable file (a script with a #! line, or a program), "
        "relative to hub.yaml or absolute. It must not be writable by anyone but its owner "
        "(root or the hub's account).",
    )
    timeout: Duration = Field(
        "30s", validate_default=True,
        description="How long the script may run (30s, 5m, 1h; at most 1h). At the deadline "
        "its whole process group is killed and the script counts as failed.",
    )


class HooksSection(Section):
    """Scripts run at every server start, before the server (see docs/hooks.md)."""

    as_root: list[Hook] = Field(
        default_factory=list,
        description="Run first, in order, as root (personal mode: as the hub's account), "
        "in /. Each gets HUBKEEPER_USER, HUBKEEPER_ACCOUNT, HUBKEEPER_HOME, "
        "HUBKEEPER_GROUPS, HUBKEEPER_ENVIRONMENT and HUBKEEPER_HUB.",
    )
    as_user: list[Hook] = Field(
        default_factory=list,
        description="Run next, in order, as the user (their uid, gid and groups), in their "
        "home, with the same variables. In system mode the scripts must be readable and "
        "executable by every account.",
    )
    on_failure: Literal["fail", "warn"] = Field(
        "fail",
        description="fail: a script that exits non-zero or runs past its timeout stops the "
        "start; the user sees which script failed (never its output). warn: it is logged "
        "and the server starts anyway.",
    )
    log_dir: str | None = Field(
        None,
        description="Where each user's hook output is appended (<user>.log). Relative paths "
        "are relative to this file. Default: <state_dir>/logs/hooks. The directory is kept "
        "0700: users cannot read it.",
    )


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or "/../" in value + "/" or value.rstrip("/") in ("", "/"):
        raise ValueError(f"{value!r} must be an absolute path below / (e.g. /srv/data)")
    return value.rstrip("/")


AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]
LinkName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
                                description="A file name in the home, no '/'.")]


class SharedData(Section):
    """A directory every user reads and none writes (root's, 0755)."""

    path: AbsolutePath = Field(description="Where it is, e.g. /srv/data (made by apply).")
    link: LinkName | None = Field(
        None, description="Also a link of this name in every user's home (~/data).")


class GroupFolder(Section):
    """A folder the members of one roster group share: they read and write, others see
    nothing; files stay group-owned and group-writable (setgid, default ACLs)."""

    path: AbsolutePath = Field(description="Where it is, e.g. /srv/projects/lab.")
    group: GroupName = Field(description="The roster group that shares it.")
    link: LinkName | None = Field(
        None, description="Also a link of this name in each member's home (~/project).")


class DataSection(Section):
    """Users' data on disk."""

    shared: list[SharedData] = Field(
        default_factory=list, description="Read-only data for everyone (system mode).")
    group_folders: list[GroupFolder] = Field(
        default_factory=list, description="Group-writable folders (system mode).")

    min_free: Size = Field(
        "1G", validate_default=True,
        description="A server does not start when the filesystem holding the user's home "
        "has less free space than this (500M, 1G, 2T; 0 turns the check off): a full disk "
        "loses notebooks in confusing ways, so the user is told to ask their instructor.",
    )


EnvironmentName = Annotated[
    str,
    Field(pattern=ENVIRONMENT_NAME_PATTERN,
          description="A lower-case slug; also the name of the environment's folder in "
          "each home."),
]


IMAGE_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                             r"(@sha256:[a-f0-9]{64})?$")


def image_reference(value: str) -> str:
    if len(value) > 255 or not IMAGE_REFERENCE.match(value):
        raise ValueError(f"{value!r} is not an image reference; write it as docker does, "
                         "e.g. jupyter/scipy-notebook:2024-05-27 or "
                         "registry.example.org/course/python:1.2")
    return value


def _file_name(value: str) -> str:
    if "/" in value or value in (".", "..") or not value:
        raise ValueError(f"{value!r} must be a file name inside context, e.g. "
                         "Dockerfile.course")
    return value


class ImageBuild(Section):
    """An image `hubkeeper env build` builds on the local Docker engine (backend: docker)."""

    context: str = Field(
        description="The build directory (relative to hub.yaml or absolute). Its content is "
        "the image's identity: a changed file means a new image tag.")
    dockerfile: Annotated[str, AfterValidator(_file_name)] = Field(
        "Dockerfile",
        description="The Dockerfile's name inside context.")
    args: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict, description="Build arguments (ARG in the Dockerfile).")
    trust_host_ca: bool = Field(
        False,
        description="Give the build this machine's CA bundle (/etc/ssl/certs/"
        "ca-certificates.crt): pip, curl and git in RUN steps then trust it. Needed behind a "
        "proxy that intercepts TLS; the bundle is public, and no certificate is changed on "
        "the host.")


R_PACKAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$")  # R's rule for a name


def _r_package_name(value: str) -> str:
    if len(value) > 64 or not R_PACKAGE_NAME.match(value):
        raise ValueError(f"{value!r} is not an R package name: letters, digits and '.', "
                         "starting with a letter (e.g. jsonlite, data.table); the Debian "
                         "package is r-cran-<name in lower case>")
    return value


RPackageName = Annotated[str, AfterValidator(_r_package_name)]


def _cran_repository(value: str) -> str:
    if not re.match(r"^(https?://[^\s/]+(/\S*)?|file:///\S+)$", value):
        raise ValueError(f"{value!r} is not a CRAN repository URL; write e.g. "
                         "https://cloud.r-project.org or file:///srv/cran")
    return value.rstrip("/")


class RSection(Section):
    """An R kernel for this environment's servers (docs/environments.md, R environments)."""

    packages: list[RPackageName] = Field(
        default_factory=list,
        description="R packages installed from Debian, by their R name (jsonlite, ggplot2, "
        "data.table): `env build` installs Debian's r-cran-<name in lower case> as root when "
        "missing. They are machine-wide; the build's lock file records their versions.",
    )
    cran: list[RPackageName] = Field(
        default_factory=list,
        description="R packages installed from cran_repository into the build's own R "
        "library (with their dependencies that Debian does not already provide). Needs a "
        "machine that reaches the repository: the build fails and says so otherwise.",
    )
    cran_repository: Annotated[str, AfterValidator(_cran_repository)] = Field(
        "https://cloud.r-project.org",
        description="The CRAN (or CRAN-like) repository cran packages come from: an https "
        "URL or file:/// path.",
    )


class Environment(Section):
    """The environment servers and kernels run from: a Python venv on the local backend, an
    image on the docker backend (see docs/environments.md)."""

    packages: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="pip requirement strings, e.g. 'pandas>=2' or 'tabulate==0.9.0'. "
        "JupyterLab and the kernel come from hubkeeper's own venv; list only what the "
        "notebooks need.",
    )
    requirements: str | None = Field(
        None,
        description="A pip requirements file, relative to hub.yaml or absolute, installed "
        "after packages. Its content is part of the build's identity: editing it means a "
        "new build.",
    )
    groups: list[GroupName] = Field(
        default_factory=list,
        description="Roster groups whose members may use it. Empty: everyone.",
    )
    home_template: str | None = Field(
        None,
        description="A directory (relative to hub.yaml or absolute) copied into "
        "~/<environment>/ at every start; only files the user does not have yet are "
        "copied, so their edits are never overwritten.",
    )
    default: bool = Field(
        False,
        description="The environment a user gets when they do not choose one. Exactly one "
        "environment has it when there are several; a single environment is the default.",
    )
    ui: UserInterface | None = Field(
        None, description=UI_HELP + " Empty: servers.ui.")
    env: EnvVars = Field(
        default_factory=dict,
        description=ENV_HELP.replace("every user's server", "this environment's servers")
        + " They replace servers.env of the same name; servers.groups.<group>.env replaces "
        "them.")
    r: RSection | None = Field(
        None,
        description="Also an R kernel (backends local and slurm): R and IRkernel from "
        "Debian (r-base-core, r-cran-irkernel), registered for this environment's servers "
        "only. `r: {}` gives R with Debian's base packages.",
    )
    keep: int = Field(
        3, ge=1, le=100,
        description="How many builds (docker: images) of this environment are kept, the "
        "current one included: after a build the oldest beyond this count are removed, "
        "except any a running server or kernel still uses. `env rollback` goes back to one "
        "of them.",
    )
    image: Annotated[str, AfterValidator(image_reference)] | None = Field(
        None,
        description="backend docker: an image on the local engine (e.g. "
        "jupyter/scipy-notebook:2024-05-27) with jupyterhub-singleuser on its PATH. "
        "`env build` pulls it when missing and records its id; servers start that id "
        "until the next `env build`/`rebuild`.",
    )
    build: ImageBuild | None = Field(
        None, description="backend docker: build the image from a Dockerfile instead.")
    starter_files: AbsolutePath | None = Field(
        None,
        description="backend docker: a directory inside the image (e.g. /home/jovyan) "
        "copied into ~/<environment>/ at every start, as the user; only files the user "
        "does not have yet are copied.",
    )
    server_config: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="jupyter_server_config snippets: Python files "
        "(relative to hub.yaml or absolute) each server of this environment runs at its start, "
        "after hubkeeper's own server settings, with `c` in scope; the operator's own "
        "responsibility, checked like hub.extra_config and, in system mode, readable by all.")
