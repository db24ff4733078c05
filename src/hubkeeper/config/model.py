"""The one typed model of hub.yaml. Every field has a type, bounds, a default and a help text.

Loading (with file:line positions) lives in `loader.py`; the value types in `types.py`; this
module is pure data.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from hubkeeper.config.types import (
    ENVIRONMENT_NAME_PATTERN,
    GITHUB_ORG_OR_TEAM_PATTERN,
    GITHUB_TEAM_PATTERN,
    HUB_NAME_PATTERN,
    SCHEMA_VERSION,
    SERVICE_NAME_PATTERN,
    SLURM_PARTITION_PATTERN,
    UNIT_NAME_PATTERN,
    USERNAME_PATTERN,
    Duration,
    Period,
    Port,
    Section,
    Size,
    Username,
    check_callback_url,
    check_ip_address,
    check_local_url,
    check_public_url,
    check_url_prefix,
)


class HubSection(Section):
    name: str = Field(
        "hub",
        pattern=HUB_NAME_PATTERN,
        description="Short name of this hub (lower-case letters, digits, '-'); shown in "
        "messages and used to name files.",
    )
    ip: Annotated[str, AfterValidator(check_ip_address)] = Field(
        "127.0.0.1",
        description="Address the public proxy listens on. 127.0.0.1 keeps the hub on this "
        "machine; 0.0.0.0 opens it to the network.",
    )
    port: Port = Field(8000, description="Port of the public proxy: the URL users open.")
    base_url: Annotated[str, AfterValidator(check_url_prefix)] = Field(
        "/", description="URL prefix of the hub, e.g. '/course/' behind a shared web server."
    )
    api_port: Port = Field(
        8081, description="Port of the hub's internal API on 127.0.0.1 (servers call home here)."
    )
    state_dir: str | None = Field(
        None,
        description="Where the hub database, secrets, journal and logs live. Relative paths "
        "are relative to this file. Default: /var/lib/hubkeeper/<name> as root, "
        "./.hubkeeper next to this file otherwise.",
    )
    url: Annotated[str, AfterValidator(check_public_url)] | None = Field(
        None,
        description="The public https:// address users open, e.g. https://hub.example.edu. "
        "When set, `apply` writes an nginx site for it (HTTP to HTTPS, TLS from the tls "
        "section, websockets, uploads) in front of the proxy on hub.ip:hub.port, which "
        "should then stay on 127.0.0.1. Its path must be hub.base_url.",
    )
    mode: Literal["auto", "system", "personal"] = Field(
        "auto",
        description="system: hub users are Linux accounts and servers run as them (needs "
        "root). personal: every server runs as the account that runs the hub, each user in "
        "a directory under the state dir; users are NOT isolated from each other. auto: "
        "system as root, personal otherwise.",
    )


class ProxySection(Section):
    kind: Literal["python", "node"] = Field(
        "python",
        description="configurable-http-proxy implementation: 'python' (the PyPI port, "
        "installed with hubkeeper) or 'node' (the reference npm package). See "
        "docs/benchmarks.md for the measurements behind the default.",
    )
    api_port: Port = Field(8001, description="Port of the proxy's REST API on 127.0.0.1.")
    command: str | None = Field(
        None,
        description="Absolute path of the proxy executable, if not found automatically.",
    )
    idle_timeout: Period = Field(
        "5m", validate_default=True,
        description="End a request to a user's server when nothing has moved for this long "
        "(no byte from the server, none taken by the browser), so that a server that stalls "
        "frees its connections. An open WebSocket (kernels, terminals) has no idle timeout, "
        "only its handshake; the hub's and the services' routes have none. 0 is off. With "
        "kind node: its --proxy-timeout (the target's socket idle; not WebSockets).",
    )
    max_per_route: int = Field(
        128, ge=0, le=100000,
        description="kind python: requests and WebSockets in flight to one user's server; "
        "beyond it, 503 at once, so that one server cannot take the connections everyone "
        "else needs. The hub's and the services' routes have no cap. A browser with "
        "JupyterLab open holds about 6 requests and one WebSocket per kernel. 0 is off.",
    )


GitHubOrgOrTeam = Annotated[str, Field(pattern=GITHUB_ORG_OR_TEAM_PATTERN)]
GitHubTeam = Annotated[str, Field(pattern=GITHUB_TEAM_PATTERN)]
GroupName = Annotated[
    str,
    Field(pattern=USERNAME_PATTERN,
          description="A group name: the same rules as a Linux user name."),
]


class GitHubSection(Section):
    callback_url: Annotated[str, AfterValidator(check_callback_url)] | None = Field(
        None,
        description="Required. The 'Authorization callback URL' of the GitHub OAuth app: "
        "this hub's public address followed by hub/oauth_callback, e.g. "
        "https://hub.example.org/hub/oauth_callback. The app's client ID and secret are "
        "read from <state_dir>/secrets/github-client-id and github-client-secret, never "
        "from this file.",
    )
    organizations: list[GitHubOrgOrTeam] = Field(
        default_factory=list,
        description="Members of these GitHub organisations ('org') or teams ('org:team', "
        "as in github.com/orgs/ORG/teams/TEAM) may log in, besides the roster. Empty: only "
        "the roster's users (their GitHub logins) may.",
    )
    teams_to_groups: dict[GitHubTeam, GroupName] = Field(
        default_factory=dict,
        description="GitHub team 'org:team' -> hub group. At each login a user's hub groups "
        "become the groups of their teams, plus their roster groups. A group named here "
        "must not also be a roster group.",
    )


class AuthSection(Section):
    kind: Literal["shared-password", "pam", "dummy", "native", "github"] | None = Field(
        None,
        description="Default: pam in system mode, shared-password in personal mode. "
        "shared-password: one password for every allowed user (demos, "
        "workshops; personal mode only, since everyone who knows it can log in as anyone); "
        "it is generated into the state dir, never written here. pam: Linux "
        "passwords (system mode, root). dummy: any password is accepted; only allowed in "
        "personal mode when hub.ip is a loopback address (tests). native: people sign up at "
        "<hub>/hub/signup and choose a password; a roster name (users and admins) signs up "
        "only with the invite code `hubkeeper apply` issues for it (credentials file), "
        "anyone else waits for an admin's approval at <hub>/hub/authorize. "
        "github: log in with GitHub (see auth.github); each login is bound to the GitHub "
        "user id of its first login.",
    )
    password_file: str | None = Field(
        None,
        description="shared-password only: a file holding the password (at least 8 "
        "characters). Default: generated once into <state_dir>/secrets/shared-password.",
    )
    admin_password_file: str | None = Field(
        None,
        description="shared-password only: a file holding the admins' password (at least 32 "
        "characters, different from the users' one). Default: generated once into "
        "<state_dir>/secrets/admin-password.",
    )
    open_signup: bool = Field(
        False,
        description="native only: whoever signs up may log in at once, without an admin's "
        "approval. Personal mode only (in system mode a hub user is a Linux account). Off "
        "by default.",
    )
    minimum_password_length: int = Field(
        8, ge=1, le=1024,
        description="native only: the shortest password accepted at sign-up and when a "
        "password is changed.",
    )
    check_common_password: bool = Field(
        True,
        description="native only: refuse the 10,000 most common passwords at sign-up and "
        "when a password is changed.",
    )
    ask_email_on_signup: bool = Field(
        False,
        description="native only: ask for an e-mail address on the sign-up form; admins "
        "see it when they approve.",
    )
    github: GitHubSection = Field(
        default_factory=GitHubSection,
        description="github only, and required there: the GitHub OAuth app and who may "
        "log in.",
    )


NATIVE_FIELDS = ("open_signup", "minimum_password_length", "check_common_password",
                 "ask_email_on_signup")


RANGE_PATTERN = r"^[a-z_][a-z0-9_-]*\{[0-9]+\.\.[0-9]+\}$"


class RosterEntry(Section):
    """One person, written inline in hub.yaml (the same columns as the CSV, no password)."""

    username: Username = Field(description="The hub user name (and Linux account name).")
    groups: list[GroupName] = Field(default_factory=list, description="Hub groups.")
    name: str | None = Field(None, max_length=200, description="Full name, for people.")
    email: str | None = Field(None, max_length=254, description="E-mail address.")


class RosterSection(Section):
    csv: str | None = Field(
        None,
        description="A CSV file (relative to hub.yaml) with a header row; columns "
        "username (required), groups (separated by ';' or spaces), name, email, password "
        "(at least 8 characters; generated when empty). Keep it private if it has passwords.",
    )
    entries: list[RosterEntry] = Field(
        default_factory=list, description="People written inline, like rows of the CSV."
    )
    ranges: list[Annotated[str, Field(pattern=RANGE_PATTERN)]] = Field(
        default_factory=list,
        description="Numbered accounts for workshops: 'training_user{1..42}' gives "
        "training_user1 to training_user42; '{01..42}' keeps the zero padding.",
    )


class UsersSection(Section):
    admins: list[Username] = Field(
        default_factory=list, description="Hub administrators; they may also log in."
    )
    allowed: list[Username] = Field(
        default_factory=list, description="Users who may log in and start a server."
    )
    groups: dict[GroupName, list[Username]] = Field(
        default_factory=dict,
        description="Hub groups (also Linux groups in system mode): name -> members. Later "
        "sections hang environments, limits and shared folders on them.",
    )
    roster: RosterSection = Field(
        default_factory=RosterSection, description="The class list: CSV, inline, ranges."
    )
    locked: list[Username] = Field(
        default_factory=list,
        description="Users who stay on the roster but may not log in: their account is "
        "locked and their server stopped; their files stay.",
    )
    account_prefix: str = Field(
        "",
        pattern=r"^([a-z_][a-z0-9_-]{0,15})?$",
        description="Prefix of the Linux account names (e.g. 'jupyter-'); the hub user "
        "name stays without it. Off by default.",
    )
    allow_all: bool = Field(
        False,
        description="Let anyone the authenticator accepts log in (e.g. every GitHub member "
        "of auth.github.organizations). In system mode a login still needs an account "
        "hubkeeper made (or adopted) for that user. Off by default: list users instead.",
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


def _image_reference(value: str) -> str:
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
    image: Annotated[str, AfterValidator(_image_reference)] | None = Field(
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


class Retention(Section):
    """Which snapshots `hubkeeper snapshot` keeps. The newest complete one is always kept."""

    last: int = Field(7, ge=1, le=10000, description="The newest N snapshots.")
    daily: int = Field(
        14, ge=0, le=10000,
        description="The newest snapshot of each of the last N days that have one.")
    weekly: int = Field(
        8, ge=0, le=10000,
        description="The newest snapshot of each of the last N ISO weeks that have one.")


class SnapshotsSection(Section):
    """Dated, hard-linked snapshots of the hub (see docs/lifecycle.md)."""

    targets: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Directories that receive snapshots, each complete on its own (put one "
        "on another disk). Relative to hub.yaml or absolute. Empty: `hubkeeper snapshot` "
        "needs --target.",
    )
    keep: Retention = Field(default_factory=Retention, description="Retention.")


class ArchiveSection(Section):
    """The end-of-course archive (see docs/lifecycle.md)."""

    dir: str | None = Field(
        None,
        description="Where `hubkeeper archive` writes <hub>-<time>/ folders. Relative to "
        "hub.yaml or absolute. Empty: `hubkeeper archive` needs --to.",
    )


class TlsSection(Section):
    """Where the certificate for hub.url comes from: Let's Encrypt or files you give."""

    letsencrypt_email: str | None = Field(
        None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Get and renew the certificate from Let's Encrypt with certbot (webroot "
        "challenge over port 80); Let's Encrypt writes to this address before a "
        "certificate expires. Needs hub.url's name to point at this machine.",
    )
    staging: bool = Field(
        False,
        description="letsencrypt only: use Let's Encrypt's staging server (certificates "
        "browsers do not trust; for trying the set-up without hitting rate limits).",
    )
    webroot: str = Field(
        "/var/lib/hubkeeper-acme",
        description="letsencrypt only: the directory nginx serves "
        "/.well-known/acme-challenge/ from.",
    )
    certificate: str | None = Field(
        None,
        description="A PEM certificate chain (leaf first), absolute path; with key, instead "
        "of Let's Encrypt (e.g. from your institution).",
    )
    key: str | None = Field(
        None, description="The certificate's PEM private key, absolute path, readable only "
        "by root.")


class NginxSection(Section):
    """The nginx site `apply` writes when hub.url is set."""

    conf_dir: str = Field(
        "/etc/nginx/conf.d",
        description="Directory nginx includes *.conf from; the site is "
        "hubkeeper-<hub.name>.conf there.",
    )
    main_config: str = Field(
        "/etc/nginx/nginx.conf",
        description="nginx's main configuration: checked with `nginx -t -c` before any "
        "reload, and used to reload (`nginx -s reload -c`).",
    )
    http_port: Port = Field(80, description="Port of the HTTP server that redirects to "
                            "HTTPS and answers Let's Encrypt's challenges.")
    max_upload: Size = Field(
        "1G", validate_default=True,
        description="The largest request body (client_max_body_size), e.g. an upload; 0 "
        "means no limit.",
    )
    hsts: bool = Field(
        True,
        description="Send Strict-Transport-Security (one year): browsers then refuse plain "
        "http for this name.",
    )


class ServiceSection(Section):
    """The systemd unit `hubkeeper service install` writes."""

    unit_dir: str = Field("/etc/systemd/system",
                          description="Where the unit hubkeeper-<hub.name>.service goes.")
    on_failure: str | None = Field(
        None, pattern=UNIT_NAME_PATTERN,
        description="A unit systemd starts when the hub fails for good (OnFailure=), "
        "e.g. notify-admin@%n.service that mails you.",
    )


class CullingSection(Section):
    """Stop idle servers with jupyterhub-idle-culler, run by the hub as a service."""

    enabled: bool = Field(True, description="Cull idle servers. On by default.")
    idle: Period = Field(
        "1h", validate_default=True,
        description="Stop a server after this long without activity (a kernel running or a "
        "browser tab connected counts as activity).",
    )
    every: Period = Field(
        "10m", validate_default=True, description="How often the culler looks.")
    max_age: Period = Field(
        0,
        description="Stop every server older than this, active or not (8h, 1d); 0: no "
        "limit.",
    )
    users: Literal[False] = Field(
        False,
        description="Always false: hubkeeper's culler stops servers and never deletes hub "
        "users (deleting a user loses its server's state; the roster decides who exists).",
    )


class StartsSection(Section):
    """Admission control: how many servers start at once, the others waiting in line (see
    docs/operations.md, "Class starts")."""

    at_once: Literal["auto"] | Annotated[int, Field(ge=0, le=1000)] = Field(
        "auto",
        description="Server starts at the same time; the others wait in line and see their "
        "place. auto: one per CPU of this machine (fewer when memory is short): a start is "
        "about 3 CPU-seconds, so more at once only makes each one slower. 0: no limit "
        "(JupyterHub's own behaviour: under a login storm starts time out).")
    queue_timeout: Duration = Field(
        "15m", validate_default=True,
        description="How long a start may wait in line (30s, 5m, 1h) before the user is "
        "told to try again. A start's own timeouts count from when it leaves the line.")


CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"
ClockTime = Annotated[str, Field(pattern=CLOCK_TIME,
                                 description="A local time of day, HH:MM (24 h).")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class ClassWindow(Section):
    """A class: its group's servers are started before it and kept from idle culling
    until it ends (see docs/operations.md, "Class starts")."""

    group: GroupName = Field(description="The roster group that has the class.")
    days: list[Weekday] = Field(
        default_factory=list, description="Days of the week (mon ... sun). Empty: every day.")
    start: ClockTime = Field(
        description="When the hub starts the group's servers (local time), e.g. 09:55 for a "
        "class at 10:00: a few minutes before, so that everyone's server is ready.")
    end: ClockTime = Field(
        description="When the class ends: until then idle culling leaves the started "
        "servers alone; after it, culling.idle applies as always.")


class Limit(Section):
    memory: Size | None = Field(
        None, description="Most memory a user's server and its kernels may use (2G); above "
        "it the largest of their processes is killed, usually the kernel that asked. The "
        "JupyterLab server itself needs about 150M: below 512M it may be the largest, and "
        "the whole server stops.")
    cpu: float | None = Field(
        None, gt=0, le=1024,
        description="Most CPUs a user's server may use at once (0.5, 1, 2).")


# A JupyterLab server with three kernels and a terminal runs 46 tasks (measured on 2 CPUs by
# tests/attacks/test_exhaustion.py); a kernel that imports numpy adds one BLAS thread per
# CPU, so four such kernels on a 64-CPU machine make about 300. 1024 leaves room for pip,
# make -j and a small multiprocessing pool, and stops a fork bomb long before the machine's
# pid_max (32768 by default) runs out for everyone else.
DEFAULT_PIDS = 1024
PIDS_HELP = ("Most processes and threads a user's server, its kernels and terminals may "
             "run at once (cgroup pids.max, docker pids_limit, systemd TasksMax): a fork "
             "bomb in one notebook stops there instead of taking every server down. A "
             "JupyterLab server with three kernels and a terminal uses about 50; each kernel that "
             "imports numpy adds one thread per CPU (about 300 for four on 64 CPUs).")


def _pids(value: int) -> int:
    if 0 < value < 64:
        raise ValueError(f"{value} is too few for a JupyterLab server (one with a kernel "
                         "and a terminal runs about 25 tasks): write at least 64, or 0 for "
                         "no limit")
    return value


class GroupLimit(Limit):
    """The limits of one roster group's members."""

    pids: int | None = Field(
        None, ge=64, le=4_194_304, description=PIDS_HELP + " Empty: the hub-wide value.")


class LimitsSection(Limit):
    """Per-user limits for servers: for everyone, and per roster group."""

    pids: Annotated[int, AfterValidator(_pids)] = Field(
        DEFAULT_PIDS, ge=0, le=4_194_304,
        description=PIDS_HELP + " 0 turns the limit off (not recommended where students "
        "have a terminal). Below 64 a server may not start at all.")

    groups: dict[GroupName, GroupLimit] = Field(
        default_factory=dict,
        description="Per roster group, replacing the hub-wide values for its members. A user "
        "in several groups gets the largest of each.",
    )


# --- backend: slurm -----------------------------------------------------------------------

SLURM_OPTION = re.compile(r"^--([a-z][a-z0-9-]*)(=\S+)?$")
# sbatch options hubkeeper writes itself, and the hub.yaml field that decides each. sbatch
# also takes any unambiguous abbreviation (--part=), so a prefix of one of these is refused too.
SLURM_OWN_OPTIONS = {
    "partition": "slurm.partition", "time": "slurm.time",
    "mem": "limits.memory", "mem-per-cpu": "limits.memory", "mem-per-gpu": "limits.memory",
    "cpus-per-task": "limits.cpu", "gres": "slurm.groups.<group>.gpus",
    "gpus": "slurm.groups.<group>.gpus", "gpus-per-node": "slurm.groups.<group>.gpus",
    "output": "hubkeeper", "error": "hubkeeper", "chdir": "hubkeeper",
    "export": "hubkeeper", "job-name": "hubkeeper", "uid": "hubkeeper", "gid": "hubkeeper",
    "get-user-env": "hubkeeper", "wrap": "hubkeeper", "parsable": "hubkeeper",
}


def _slurm_option(value: str) -> str:
    match = SLURM_OPTION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an sbatch option: write one long option per item, "
                         "'--name' or '--name=value' without spaces, e.g. --account=physics "
                         "or --qos=interactive")
    name = match.group(1)
    for own, field in SLURM_OWN_OPTIONS.items():
        if own.startswith(name):
            where = ("hubkeeper writes it itself" if field == "hubkeeper"
                     else f"set {field} instead")
            raise ValueError(f"{value!r}: --{own} is not an extra option, {where}")
    return value


SlurmName = Annotated[str, Field(pattern=SLURM_PARTITION_PATTERN,
                                 description="A Slurm partition name (or several, "
                                 "comma-separated: the job starts in whichever is first).")]
SlurmOption = Annotated[str, AfterValidator(_slurm_option)]


class SlurmGroup(Section):
    """What one roster group's members get from Slurm, replacing the hub-wide values."""

    partition: SlurmName | None = Field(
        None, description="Their servers' partition. A user in several groups gets the "
        "partition of the first of their groups listed under slurm.groups.")
    gpus: int = Field(0, ge=0, le=64, description="GPUs per server (--gres=gpu:N); 0: none.")
    time: Period = Field(
        0, description="Their servers' time limit (8h, 2d); the largest of a user's groups "
        "wins. 0: the hub's slurm.time.")


class SlurmSection(Section):
    """backend slurm: servers run as Slurm jobs of the users' accounts (batchspawner)."""

    partition: SlurmName | None = Field(
        None, description="The partition servers run in. Empty: the cluster's default "
        "partition.")
    time: Period = Field(
        0,
        description="Time limit of a server's job (8h, 1d; written for sbatch as "
        "D-HH:MM:SS). When it is reached Slurm ends the server; the user's files stay. "
        "0: the partition's default limit.")
    extra_options: list[SlurmOption] = Field(
        default_factory=list,
        description="More sbatch options for every server's job, each '--name=value' (e.g. "
        "--account=physics, --qos=interactive, --constraint=skylake). Memory and CPUs come "
        "from limits:, partition, time and GPUs from this section.")
    queue_timeout: Duration = Field(
        "5m", validate_default=True,
        description="How long a start may wait for its job to leave the queue (30s, 5m, "
        "1h). Meanwhile the user sees Slurm's reason and the job's place in the queue; at "
        "the deadline the job is cancelled and the user is told why it did not run.")
    hub_ip: Annotated[str, AfterValidator(check_ip_address)] = Field(
        "127.0.0.1",
        description="The address of this machine the compute nodes reach the hub's API on "
        "(hub.api_port). 127.0.0.1 only works when servers run on the hub's own machine "
        "(a one-node cluster).")
    groups: dict[GroupName, SlurmGroup] = Field(
        default_factory=dict,
        description="Per roster group: partition, GPUs, time limit.")


# --- backend: kubernetes ------------------------------------------------------------------

# The Zero to JupyterHub chart release `export z2jh` writes for (its schema is in the tests).
Z2JH_CHART_VERSION = "4.4.0"  # appVersion 5.5.0: JupyterHub 5.5, KubeSpawner 7.1
KUBERNETES_NAME = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"  # an object name (RFC 1123)
ClaimName = Annotated[str, Field(pattern=KUBERNETES_NAME,
                                 description="A PersistentVolumeClaim name in the hub's "
                                 "namespace.")]


class KubernetesSection(Section):
    """What only a Kubernetes cluster needs: `hubkeeper export z2jh` turns hub.yaml into
    values for the Zero to JupyterHub chart (see docs/kubernetes.md). Read with any backend,
    so a single-machine hub.yaml can be exported for its move to a cluster."""

    chart_version: str = Field(
        Z2JH_CHART_VERSION, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$",
        description="The Zero to JupyterHub chart release to install (helm --version); it "
        "decides the hub's JupyterHub version. The export is checked against "
        f"{Z2JH_CHART_VERSION}'s schema.")
    hub_image: Annotated[str, AfterValidator(_image_reference)] | None = Field(
        None,
        description="A hub image of your own (name:tag), e.g. one with another "
        "authenticator installed. Empty: the chart's own.")
    home_size: Size = Field(
        "10G", validate_default=True,
        description="Each user's home volume (a PersistentVolumeClaim per user).")
    storage_class: str | None = Field(
        None, pattern=KUBERNETES_NAME,
        description="The StorageClass of the home volumes. Empty: the cluster's default. "
        "Use one with reclaimPolicy: Retain, so that a deleted claim does not delete the "
        "disk under it (docs/kubernetes.md).")
    home_mount: AbsolutePath = Field(
        "/home/jovyan",
        description="Where the home volume is mounted: the image user's home.")
    uid: int = Field(1000, ge=1, le=2**31 - 1,
                     description="The user id servers run as (the image's user; not root).")
    fs_gid: int = Field(100, ge=0, le=2**31 - 1,
                        description="The group id that owns the home volume's files.")
    memory_guarantee: float = Field(
        1.0, gt=0, le=1,
        description="The share of limits.memory each server is guaranteed (its memory "
        "request). 1: no overcommit, so no server is killed because others grew; lower "
        "packs more servers on a node.")
    cpu_guarantee: float = Field(
        0.1, gt=0, le=1,
        description="The share of limits.cpu each server is guaranteed (its CPU request). "
        "Notebooks are idle most of the time, so a small share fits a class on few nodes.")
    placeholders: int | None = Field(
        None, ge=0, le=10000,
        description="Placeholder pods that keep room for this many servers, so that a "
        "class logging in at once does not wait for new nodes (z2jh#987). Empty: one per "
        "roster user (not admins, not locked); lower it between classes with helm "
        "--set scheduling.userPlaceholder.replicas=N.")
    data_claims: dict[AbsolutePath, ClaimName] = Field(
        default_factory=dict,
        description="data.shared and data.group_folders path -> the PersistentVolumeClaim "
        "that holds it on the cluster (shared data: ReadOnlyMany; group folders: "
        "ReadWriteMany). Default claim name: <hub.name>-<last part of the path>.")


ServiceName = Annotated[str, Field(pattern=SERVICE_NAME_PATTERN,
                                   description="Lower-case letters, digits and '-'.")]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$",
                                  description="An HTTP header name: letters, digits, '-'.")]


class HubService(Section):
    """A JupyterHub service reachable at /services/<name>/ behind the hub's login."""

    name: ServiceName = Field(description="Its name; its address is <hub>/services/<name>/.")
    url: Annotated[str, AfterValidator(check_local_url)] | None = Field(
        None,
        description="Where it listens, on this machine: http://127.0.0.1:<port>. The proxy "
        "sends /services/<name>/ there: with hub_login through the login gate, which passes "
        "on the path below /services/<name>/ (/services/rstudio/x -> <url>/x); without, "
        "the whole path, as JupyterHub services expect.",
    )
    command: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="A command the hub starts and restarts with itself (a managed service); "
        "empty: something else runs it (an external service). With hub_login the login gate "
        "runs it as its child: they start, stop and are restarted together.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables of the command.")
    hub_login: bool = Field(
        True,
        description="Put hubkeeper's login gate in front of it: only users logged in to the "
        "hub who may use it reach it (for services like RStudio that know nothing of "
        "JupyterHub). false: the service checks logins itself (JupyterHub OAuth).",
    )
    gate_port: Port | None = Field(
        None,
        description="hub_login only, and required there: the port on 127.0.0.1 the login "
        "gate listens on. The proxy sends /services/<name>/ to the gate, the gate sends what "
        "it lets through to url.",
    )
    user_header: HeaderName = Field(
        "X-Hubkeeper-User",
        description="hub_login only: the request header in which the gate tells the service "
        "who the user is (any copy sent by the browser is removed first). E.g. "
        "X-RStudio-Username for RStudio Workbench's proxied authentication.",
    )
    groups: list[GroupName] = Field(
        default_factory=list,
        description="Roster groups whose members may use it. Empty: every hub user.",
    )


class HubSpec(Section):
    """The whole of hub.yaml."""

    version: Literal[1] = Field(
        SCHEMA_VERSION, description="Version of the hub.yaml format. Only 1 exists."
    )
    hub: HubSection = Field(default_factory=HubSection, description="The hub process.")
    proxy: ProxySection = Field(default_factory=ProxySection, description="The public proxy.")
    auth: AuthSection = Field(default_factory=AuthSection, description="How users log in.")
    users: UsersSection = Field(default_factory=UsersSection, description="Who may log in.")
    backend: Literal["local", "docker", "slurm", "kubernetes"] = Field(
        "local",
        description="Where user servers run. local: processes of the users' accounts on "
        "this machine, from Python environments. docker: containers on this machine's "
        "Docker engine, from images, still as the users' accounts (uid, gid, groups) with "
        "their homes mounted (needs root). slurm: jobs on a Slurm cluster through "
        "batchspawner, as the users' accounts, from the same environments as local (the "
        "nodes share the filesystem; needs root). kubernetes: a cluster runs the hub from the "
        "Zero to JupyterHub chart; `hubkeeper export z2jh` writes its values (`up` does not "
        "run it here). See docs/backends.md.",
    )
    hooks: HooksSection = Field(
        default_factory=HooksSection,
        description="Start-up scripts run as root and as the user before each server starts.",
    )
    data: DataSection = Field(
        default_factory=DataSection, description="Users' data: the free-space guard."
    )
    environments: dict[EnvironmentName, Environment] = Field(
        default_factory=dict,
        description="Named Python environments (name -> packages, groups, home template), "
        "built by `hubkeeper env build`. Empty: servers run from hubkeeper's own venv.",
    )
    snapshots: SnapshotsSection = Field(
        default_factory=SnapshotsSection,
        description="Where `hubkeeper snapshot` writes and how many it keeps.",
    )
    archive: ArchiveSection = Field(
        default_factory=ArchiveSection, description="Where `hubkeeper archive` writes.")
    tls: TlsSection = Field(
        default_factory=TlsSection, description="The certificate for hub.url.")
    nginx: NginxSection = Field(
        default_factory=NginxSection, description="The nginx site in front of hub.url.")
    service: ServiceSection = Field(
        default_factory=ServiceSection, description="The hub as a systemd service.")
    culling: CullingSection = Field(
        default_factory=CullingSection, description="Stopping idle servers.")
    limits: LimitsSection = Field(
        default_factory=LimitsSection, description="Memory and CPU per user's server.")
    starts: StartsSection = Field(
        default_factory=StartsSection,
        description="Server starts at once, and how long the others may wait in line.")
    schedule: list[ClassWindow] = Field(
        default_factory=list,
        description="Classes: each group's servers are started before its class "
        "(`hubkeeper prewarm` on a timetable) and kept until the class ends.")
    services: list[HubService] = Field(
        default_factory=list,
        description="Extra web services (RStudio, a dashboard) at /services/<name>/.")
    slurm: SlurmSection = Field(
        default_factory=SlurmSection,
        description="backend slurm: partition, time limit, sbatch options, per group.")
    kubernetes: KubernetesSection = Field(
        default_factory=KubernetesSection,
        description="backend kubernetes (and `export z2jh`): storage, images, placeholders.")



def system_auth_problems(spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Logins that let one person become another, refused in system mode (hub users are
    Linux accounts there). Checked at load for hub.mode: system, and by resolve_mode for
    `auto` run as root."""
    auth = spec.auth
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if auth.kind == "shared-password":
        problems.append((("auth", "kind"),
                         "'shared-password' gives every user the one password, so in system "
                         "mode anyone could log in as anyone and get their Linux account; "
                         "use 'pam' (Linux passwords), 'native' or 'github', or hub.mode: "
                         "personal"))
    elif auth.kind == "dummy":
        problems.append((("auth", "kind"),
                         "'dummy' accepts any password, so in system mode anyone could log "
                         "in as anyone and get their Linux account; use 'pam' (Linux "
                         "passwords), 'native' or 'github', or hub.mode: personal"))
    elif auth.kind == "native" and auth.open_signup:
        problems.append((("auth", "open_signup"),
                         "in system mode a hub user runs as a Linux account, so sign-ups "
                         "cannot be open; remove open_signup (roster users sign up with "
                         "their invite code, others wait for an admin's approval)"))
    return problems


def semantic_problems(spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules that span several fields. Returns (field path, message) pairs; empty when fine."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if spec.hub.mode == "system":
        problems += system_auth_problems(spec)
    if (spec.auth.kind == "dummy" and spec.hub.mode != "system"
            and not ipaddress.ip_address(spec.hub.ip).is_loopback):
        problems.append(
            (
                ("auth", "kind"),
                f"'dummy' accepts any password, so it is only allowed when hub.ip is a "
                f"loopback address (127.0.0.1 or ::1), not {spec.hub.ip}; use "
                "'shared-password' or 'pam'",
            )
        )
    for key in ("password_file", "admin_password_file"):
        if getattr(spec.auth, key) is not None and spec.auth.kind not in (
                None, "shared-password"):
            problems.append(
                (
                    ("auth", key),
                    f"only used with kind 'shared-password', not {spec.auth.kind!r}; remove it",
                )
            )
    problems += _auth_kind_problems(spec)
    problems += _environment_problems(spec)
    problems += _web_problems(spec)
    problems += _operation_problems(spec)
    problems += _slurm_problems(spec)
    for index, window in enumerate(spec.schedule):
        if window.end <= window.start:
            problems.append((("schedule", index, "end"),
                             f"{window.end} is not after start {window.start}: a class "
                             "ends on the day it starts"))
        seen_days = set()
        for position, day in enumerate(window.days):
            if day in seen_days:
                problems.append((("schedule", index, "days", position),
                                 f"{day} is listed twice"))
            seen_days.add(day)
    if spec.backend == "kubernetes":
        problems += kubernetes_problems(spec)
    seen: dict[int, str] = {}
    for where, port in _ports(spec):
        if port in seen:
            problems.append((where, f"port {port} is already used by {seen[port]}"))
        seen.setdefault(port, _field_label(where))
    for key in ("admins", "allowed"):
        names: list[str] = getattr(spec.users, key)
        first: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in first:
                problems.append(
                    (("users", key, index),
                     f"{name!r} is listed twice (first at item {first[name] + 1})")
                )
            first.setdefault(name, index)
    users = spec.users
    auth = spec.auth
    if not (users.allowed or users.admins or users.allow_all or users.groups
            or users.roster.csv or users.roster.entries or users.roster.ranges
            or (auth.kind == "github" and auth.github.organizations)
            or (auth.kind == "native" and auth.open_signup)):
        problems.append(
            (
                ("users",),
                "nobody could log in: list names under users.allowed or users.admins, give "
                "a users.roster, or set users.allow_all: true",
            )
        )
    return problems


def _ports(spec: HubSpec) -> list[tuple[tuple[str | int, ...], int]]:
    """Every port hub.yaml names on this machine, with where it is named."""
    ports: list[tuple[tuple[str | int, ...], int]] = [
        (("hub", "port"), spec.hub.port), (("hub", "api_port"), spec.hub.api_port),
        (("proxy", "api_port"), spec.proxy.api_port)]
    if spec.hub.url:
        ports += [(("nginx", "http_port"), spec.nginx.http_port),
                  (("hub", "url"), https_port(spec))]
    for index, service in enumerate(spec.services):
        if service.url:
            port = urllib.parse.urlsplit(service.url).port
            assert port is not None  # check_local_url
            ports.append((("services", index, "url"), port))
        if service.gate_port and service.hub_login:
            ports.append((("services", index, "gate_port"), service.gate_port))
    return ports


def _field_label(where: tuple[str | int, ...]) -> str:
    """('services', 0, 'url') -> 'services[0].url', as problems name fields."""
    label = ""
    for part in where:
        label += f"[{part}]" if isinstance(part, int) else (f".{part}" if label else part)
    return label


def default_environment(spec: HubSpec) -> str | None:
    """The name of the default environment (a single one is the default), or None."""
    marked = [name for name, env in spec.environments.items() if env.default]
    if marked:
        return marked[0]
    if len(spec.environments) == 1:
        return next(iter(spec.environments))
    return None


def _environment_problems(spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Exactly one default among several environments; each environment has what its
    backend starts servers from. (Groups and files are checked against the roster and the
    disk in host/preflight.py.)"""
    problems = _backend_environment_problems(spec)
    marked = [name for name, env in spec.environments.items() if env.default]
    for name in marked[1:]:
        problems.append(
            (("environments", name, "default"),
             f"{marked[0]!r} is already the default environment; only one may be")
        )
    if len(spec.environments) > 1 and not marked:
        names = ", ".join(spec.environments)
        problems.append(
            (("environments",),
             f"with several environments ({names}) one needs 'default: true': the one "
             "users get when they do not choose")
        )
    return problems


def _backend_environment_problems(
        spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if spec.backend == "kubernetes":
        return []  # kubernetes_problems
    if spec.backend in ("local", "slurm"):  # slurm runs the local backend's venvs
        for name, env in spec.environments.items():
            for key in ("image", "build", "starter_files"):
                if getattr(env, key) is not None:
                    problems.append((("environments", name, key),
                                     "only used with backend: docker (servers in containers); "
                                     "remove it, or set backend: docker"))
        return problems
    if spec.hub.mode == "personal":
        problems.append((("backend",), "docker runs servers as the users' Linux accounts, "
                         "which needs hub.mode system (root); use backend: local with "
                         "hub.mode personal"))
    if not spec.environments:
        problems.append((("backend",), "docker starts servers from images: declare at "
                         "least one environment with image: or build: under environments"))
    for name, env in spec.environments.items():
        if env.image is None and env.build is None:
            problems.append((("environments", name),
                             "needs image: (an image on this engine) or build: (a directory "
                             "with a Dockerfile) on backend docker"))
        if env.image is not None and env.build is not None:
            problems.append((("environments", name, "build"),
                             "image and build exclude each other: keep one"))
        for key in ("packages", "requirements"):
            if getattr(env, key):
                problems.append((("environments", name, key),
                                 "not used on backend docker: install them in the image "
                                 "(RUN pip install ... in its Dockerfile)"))
    return problems


def _auth_kind_problems(spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Fields that belong to one auth.kind; auth.github when kind is github."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    auth = spec.auth
    given = auth.model_fields_set
    for key in NATIVE_FIELDS:
        if key in given and auth.kind != "native":
            problems.append(
                (("auth", key),
                 f"only used with kind 'native', not {auth.kind or 'the default'!r}; remove it")
            )
    if auth.kind != "github":
        if "github" in given:
            problems.append(
                (("auth", "github"),
                 f"only used with kind 'github', not {auth.kind or 'the default'!r}; "
                 "remove it")
            )
        return problems
    github = auth.github
    if "github" not in given:
        problems.append(
            (("auth", "kind"),
             "kind 'github' needs an auth.github section with at least callback_url (the "
             "'Authorization callback URL' of your GitHub OAuth app) and usually "
             "organizations")
        )
        return problems
    if github.callback_url is None:
        problems.append(
            (("auth", "github"),
             "callback_url is required: the 'Authorization callback URL' of your GitHub "
             "OAuth app, e.g. https://hub.example.org"
             f"{spec.hub.base_url}hub/oauth_callback")
        )
    else:
        path = urllib.parse.urlsplit(github.callback_url).path
        wanted = f"{spec.hub.base_url}hub/oauth_callback"
        if path != wanted:
            problems.append(
                (("auth", "github", "callback_url"),
                 f"the path must be {wanted!r} (hub.base_url {spec.hub.base_url!r} followed "
                 f"by hub/oauth_callback), not {path!r}")
            )
    if spec.users.allow_all and github.organizations:
        problems.append(
            (("users", "allow_all"),
             "with kind 'github' this lets every GitHub account in, so "
             "auth.github.organizations would have no effect; remove one of them")
        )
    roster_groups = set(spec.users.groups)
    for entry in spec.users.roster.entries:
        roster_groups.update(entry.groups)
    for team, group in github.teams_to_groups.items():
        if group in roster_groups:
            problems.append(
                (("auth", "github", "teams_to_groups", team),
                 f"{group!r} is also a roster group; GitHub teams and the roster cannot "
                 "both decide who is in it: use another group name")
            )
    return problems


RESERVED_SERVICES = ("hubkeeper", "hubkeeper-status", "idle-culler", "hubkeeper-schedule")


def https_port(spec: HubSpec) -> int:
    """The port nginx serves hub.url on (443 unless the address names one)."""
    assert spec.hub.url
    return urllib.parse.urlsplit(spec.hub.url).port or 443


def _web_problems(spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """hub.url and its certificate; tls and nginx only mean something with hub.url."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    tls = spec.tls
    if not spec.hub.url:
        for section in ("tls", "nginx"):
            if section in spec.model_fields_set:
                problems.append(((section,), "only used with hub.url (the public https:// "
                                 "address nginx serves); set hub.url or remove it"))
        return problems
    path = urllib.parse.urlsplit(spec.hub.url).path or "/"
    if path.rstrip("/") + "/" != spec.hub.base_url:
        problems.append((("hub", "url"),
                         f"its path {path!r} must be hub.base_url {spec.hub.base_url!r} "
                         "(set both, e.g. url https://example.edu/course/ with base_url "
                         "/course/)"))
    if not ipaddress.ip_address(spec.hub.ip).is_loopback:
        problems.append((("hub", "ip"),
                         f"with hub.url, nginx is the way in: the proxy must listen on "
                         f"127.0.0.1 (or ::1), not {spec.hub.ip}, or users could bypass TLS"))
    given_files = [key for key in ("certificate", "key") if getattr(tls, key)]
    if tls.letsencrypt_email and given_files:
        problems.append((("tls", given_files[0]),
                         "give either letsencrypt_email (Let's Encrypt) or certificate and "
                         "key (your own files), not both"))
    elif not tls.letsencrypt_email and len(given_files) != 2:
        missing = "key" if given_files == ["certificate"] else "certificate"
        where = (("tls", missing) if given_files else
                 ("tls",) if "tls" in spec.model_fields_set else ("hub", "url"))
        problems.append((where,
                         "hub.url needs a certificate: set tls.letsencrypt_email to get one "
                         "from Let's Encrypt, or tls.certificate and tls.key (PEM files)"))
    for key in ("certificate", "key", "webroot"):
        value = getattr(tls, key)
        if value and not value.startswith("/"):
            problems.append((("tls", key), f"{value!r} must be an absolute path"))
    for key in ("staging", "webroot"):
        if key in tls.model_fields_set and not tls.letsencrypt_email:
            problems.append((("tls", key), "only used with letsencrypt_email; remove it"))
    for key in ("conf_dir", "main_config"):
        value = getattr(spec.nginx, key)
        if not value.startswith("/"):
            problems.append((("nginx", key), f"{value!r} must be an absolute path"))
    return problems


def _operation_problems(spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """Culling, limits and services."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    culling = spec.culling
    if culling.enabled:
        for key in ("idle", "every"):
            if not getattr(culling, key):
                problems.append((("culling", key), "must be more than 0 while culling is "
                                 "enabled (set enabled: false to turn culling off)"))
    if not spec.service.unit_dir.startswith("/"):
        problems.append((("service", "unit_dir"),
                         f"{spec.service.unit_dir!r} must be an absolute path"))
    seen: dict[str, int] = {}
    for index, service in enumerate(spec.services):
        if service.name in RESERVED_SERVICES:
            problems.append((("services", index, "name"),
                             f"{service.name!r} is hubkeeper's own service; choose another "
                             "name"))
        elif service.name in seen:
            problems.append((("services", index, "name"),
                             f"{service.name!r} is already item {seen[service.name] + 1}"))
        seen.setdefault(service.name, index)
        if service.hub_login and not service.url:
            problems.append((("services", index),
                             "hub_login needs url: the address the login gate passes "
                             "requests to (http://127.0.0.1:<port>)"))
        if service.hub_login and not service.gate_port:
            problems.append((("services", index),
                             "hub_login needs gate_port: the port on 127.0.0.1 the login "
                             "gate listens on (a free port, not url's)"))
        for key in ("gate_port", "user_header"):
            if not service.hub_login and key in service.model_fields_set:
                problems.append((("services", index, key),
                                 "only used with hub_login: true (the login gate); remove it"))
        if not service.command and not service.url:
            problems.append((("services", index),
                             "give command (the hub runs it), url (it runs elsewhere on "
                             "this machine), or both"))
        if service.groups and not service.hub_login:
            problems.append((("services", index, "groups"),
                             "only used with hub_login: true (the login gate checks groups)"))
    return problems


def _slurm_problems(spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """The slurm section belongs to backend slurm, which runs jobs as the users' accounts."""
    if spec.backend != "slurm":
        if "slurm" in spec.model_fields_set:
            return [(("slurm",), f"only used with backend: slurm, not {spec.backend!r}; "
                     "remove it, or set backend: slurm")]
        return []
    if spec.hub.mode == "personal":
        return [(("backend",), "slurm runs servers as jobs of the users' Linux accounts, "
                 "which needs hub.mode system (root); use backend: local with hub.mode "
                 "personal")]
    return []


# What the cluster cannot take from hub.yaml, with what to write instead.
KUBERNETES_AUTH = ("shared-password", "native", "github")


def kubernetes_problems(spec: HubSpec) -> list[tuple[tuple[str | int, ...], str]]:
    """What keeps hub.yaml from running on Kubernetes: things of this machine (Linux
    passwords, local builds, host folders, commands the hub runs). `check` reports them for
    backend kubernetes; `export z2jh` for any backend."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    kinds = ", ".join(KUBERNETES_AUTH)
    if spec.auth.kind not in KUBERNETES_AUTH:
        why = {None: "the default login (pam or shared-password) depends on this machine",
               "pam": "pam checks this machine's Linux passwords, which the cluster's hub "
                      "cannot see",
               "dummy": "dummy accepts any password, and a cluster's hub is public"}
        problems.append((("auth", "kind"), f"{why[spec.auth.kind]}; on Kubernetes choose "
                         f"one of {kinds}"))
    if spec.hub.mode == "personal":
        problems.append((("hub", "mode"), "personal runs every server as one account of "
                         "this machine; on Kubernetes each user gets a pod: remove it"))
    if spec.users.account_prefix:
        problems.append((("users", "account_prefix"), "there are no Linux accounts on the "
                         "cluster; remove it"))
    if not spec.environments:
        problems.append((("environments",), "a cluster starts servers from images: declare "
                         "at least one environment with image: (pushed to a registry the "
                         "cluster pulls from)"))
    for name, env in spec.environments.items():
        if env.image is None:
            problems.append((("environments", name), "needs image: an image in a registry "
                             "the cluster pulls from, with jupyterhub-singleuser on its PATH "
                             "(for backend local: build one with its packages and push it)"))
        for key, instead in (("build", "build and push it, then give image:"),
                             ("packages", "install them in the image"),
                             ("requirements", "install them in the image"),
                             ("home_template", "put the files in the image and give "
                              "starter_files:")):
            if getattr(env, key):
                problems.append((("environments", name, key),
                                 f"not possible on a cluster (it is on this machine): "
                                 f"{instead}"))
    for index, service in enumerate(spec.services):
        problems.append((("services", index), f"services are programs of this machine; on "
                         f"Kubernetes run {service.name!r} as its own Deployment and "
                         "remove it here"))
    return problems
