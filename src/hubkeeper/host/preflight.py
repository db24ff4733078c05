"""Facts of this machine that hub.yaml needs, checked before anything changes: accounts exist,
files can be read and run, ports are free, engines answer, partitions exist. The rules of
hub.yaml itself, and of hub.yaml against its roster and mode, are in config/rules/."""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hubkeeper.base import procs
from hubkeeper.base.errors import HubkeeperError, Problem
from hubkeeper.base.whoami import effective_uid
from hubkeeper.config.backends import backend_of
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.rules.roster import (
    cluster_rule_problems,
    environment_group_problems,
    roster_problems,
)
from hubkeeper.config.types import config_relative
from hubkeeper.host.accounts import HostUsers
from hubkeeper.host.extra_config import file_problems, hidden_from_others, unsafe_writers
from hubkeeper.host.site import site_problems
from hubkeeper.render.slurm_job import RUNUSER
from hubkeeper.roster import Roster
from hubkeeper.state.journal import Journal
from hubkeeper.state.statedir import StatePaths


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def account_problems(roster: Roster) -> list[Problem]:
    """System mode: every roster user must be a Linux account (`hubkeeper apply` makes them)."""
    problems = []
    for member in roster.members:
        if not _account_exists(member.account):
            problems.append(member.origin.problem(
                f"{member.account!r} has no Linux account on this machine; in system mode "
                "each hub user is one: `hubkeeper apply` creates the roster's accounts (or "
                "use hub.mode: personal)",
            ))
    return problems


@dataclass(frozen=True)
class ToMake:
    """Roster accounts and groups this machine has not got yet: `apply` makes them."""

    accounts: tuple[str, ...]
    groups: tuple[str, ...]

    def __str__(self) -> str:
        def count(number: int, noun: str) -> str:
            return f"{number} {noun}{'' if number == 1 else 's'}"
        return (f"apply will create {count(len(self.accounts), 'account')}, "
                f"{count(len(self.groups), 'group')}")


def to_make(roster: Roster, host: HostUsers) -> ToMake:
    """System mode before the first `apply`: which roster accounts and Linux groups do not
    exist yet (a name that exists but is not ours is `plan.users.host_problems`'s)."""
    return ToMake(
        accounts=tuple(member.account for member in roster.members
                       if member.account not in host.accounts),
        groups=tuple(roster.prefix + group for group in roster.groups
                     if roster.prefix + group not in host.groups))


def password_file_problems(loaded: LoadedSpec) -> list[Problem]:
    problems = []
    for key, minimum in (("password_file", 8), ("admin_password_file", 32)):
        value = getattr(loaded.spec.auth, key)
        if not value:
            continue
        path = config_relative(loaded.directory, value)
        try:
            text = path.read_text().strip()
        except OSError as exc:
            problems.append(loaded.problem(("auth", key), f"cannot read {path}: {exc.strerror}"))
            continue
        if len(text) < minimum:
            problems.append(loaded.problem(
                ("auth", key), f"{path} holds {len(text)} characters; at least {minimum} needed"))
        if path.stat().st_mode & 0o077:
            problems.append(loaded.problem(
                ("auth", key), f"{path} is readable by other users; chmod 600 {path}"))
    return problems


def _pid_alive(pid_file: Path) -> bool:
    pid = procs.pid_in_file(pid_file)
    return pid is not None and procs.exists(pid)


def _port_busy(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def port_problems(loaded: LoadedSpec, paths: StatePaths) -> list[Problem]:
    """Ports hub.yaml asks for that another program holds.

    A proxy left running by a hub that was killed is ours: the hub replaces it at start, so
    its two ports are not reported.
    """
    spec = loaded.spec
    ports = [(("hub", "api_port"), "127.0.0.1", spec.hub.api_port)]
    if not _pid_alive(paths.proxy_pid):
        ports += [(("hub", "port"), spec.hub.ip, spec.hub.port),
                  (("proxy", "api_port"), "127.0.0.1", spec.proxy.api_port)]
    # A login gate listens on its gate_port (the services the gate passes to may well run
    # already: an external one must).
    ports += [(("services", index, "gate_port"), "127.0.0.1", service.gate_port)
              for index, service in enumerate(spec.services)
              if service.hub_login and service.gate_port]
    return [
        loaded.problem(loc, f"port {port} on {ip} is in use by another program; choose a "
                            "free port or stop that program")
        for loc, ip, port in ports if _port_busy(ip, port)
    ]


def hook_problems(loaded: LoadedSpec, mode: str, state: StatePaths) -> list[Problem]:
    """hooks: every script exists, is executable, and only its owner (root or the hub's
    account) can change it; as_user scripts can be run by every account (system mode);
    the log directory is private."""
    problems = []
    hooks = loaded.spec.hooks
    owners = {0, effective_uid()}
    for phase in ("as_root", "as_user"):
        for index, hook in enumerate(getattr(hooks, phase)):
            loc = ("hooks", phase, index, "script")
            path = config_relative(loaded.directory, hook.script)
            try:
                info = path.stat()
            except FileNotFoundError:
                problems.append(loaded.problem(loc, f"no such file: {path}"))
                continue
            except OSError as exc:
                problems.append(loaded.problem(loc, f"cannot read {path}: {exc.strerror}"))
                continue
            if not stat.S_ISREG(info.st_mode):
                problems.append(loaded.problem(loc, f"{path} is not a file"))
                continue
            if not os.access(path, os.X_OK) or not info.st_mode & 0o111:
                problems.append(loaded.problem(loc, f"{path} is not executable; "
                                                    f"chmod +x {path}"))
                continue
            real = Path(os.path.realpath(path))
            unsafe = unsafe_writers(path, owners) or unsafe_writers(real, owners)
            if unsafe:
                runs = "as root" if phase == "as_root" and effective_uid() == 0 else \
                    "for every user"
                problems.append(loaded.problem(loc, f"{unsafe}: the script runs {runs}"))
                continue
            if phase == "as_user" and mode == "system":
                hidden = hidden_from_others(real)
                if hidden:
                    problems.append(loaded.problem(
                        loc, f"as_user scripts run as each user, but {hidden}"))
    log_dir = (config_relative(loaded.directory, hooks.log_dir) if hooks.log_dir
               else state.hook_logs)
    with contextlib.suppress(FileNotFoundError):
        if log_dir.stat().st_mode & 0o077:
            problems.append(loaded.problem(
                ("hooks", "log_dir") if hooks.log_dir else ("hooks",),
                f"{log_dir} can be read by other users, but it holds hook output; "
                f"chmod 700 {log_dir}"))
    return problems


def environment_file_problems(loaded: LoadedSpec,
                              state: StatePaths | None = None) -> list[Problem]:
    """environments: the requirements file, the home template and the build context exist;
    with `state` (before `up`), every environment has been built."""
    problems = []
    for name, env in loaded.spec.environments.items():
        if env.requirements:
            path = config_relative(loaded.directory, env.requirements)
            if not path.is_file():
                problems.append(loaded.problem(("environments", name, "requirements"),
                                               f"no such file: {path}"))
        if env.home_template:
            path = config_relative(loaded.directory, env.home_template)
            if not path.is_dir():
                problems.append(loaded.problem(("environments", name, "home_template"),
                                               f"no such directory: {path}"))
        if env.build is not None:
            context = config_relative(loaded.directory, env.build.context)
            if not (context / env.build.dockerfile).is_file():
                problems.append(loaded.problem(
                    ("environments", name, "build", "context"),
                    f"no {env.build.dockerfile} in {context}"))
        record = "image.json" if backend_of(loaded.spec).environments == "image" else "current"
        built = state.envs / name / record if state is not None else None
        if built is not None and not built.exists():
            problems.append(loaded.problem(
                ("environments", name),
                f"environment {name!r} is not built yet; run `hubkeeper env build {name}`"))
    return problems


def environment_problems(loaded: LoadedSpec, roster: Roster) -> list[Problem]:
    """Before environments are built (`env build`, `apply`): their groups are roster groups
    and the files they name are there."""
    return environment_group_problems(loaded, roster.groups) + environment_file_problems(loaded)


def cluster_problems(loaded: LoadedSpec, roster: Roster) -> list[Problem]:
    """What `check` and `export z2jh` ask of a hub.yaml for Kubernetes: nothing of this
    machine but the files hub.yaml names; the rules of the cluster and the roster's groups."""
    return cluster_rule_problems(loaded, roster.groups) + environment_file_problems(loaded)


def engine_problems(loaded: LoadedSpec) -> list[Problem]:
    """backend docker: the local Docker engine answers."""
    if backend_of(loaded.spec).environments != "image":
        return []
    import docker

    from hubkeeper.host import images

    try:
        images.engine().version()
    except HubkeeperError as exc:
        reason = str(exc)
    except docker.errors.DockerException as exc:
        reason = f"the Docker engine does not answer ({exc})"
    else:
        return []
    return [loaded.problem(("backend",), f"{reason}; start dockerd (`systemctl start docker`)")]


SLURM_COMMANDS = ("sbatch", "squeue", "scancel", "sinfo")


def scheduler_problems(loaded: LoadedSpec) -> list[Problem]:
    """backend slurm: the commands are here, the controller answers, the partitions hub.yaml
    names exist."""
    spec = loaded.spec
    if not backend_of(spec).scheduler_queue:
        return []
    missing = [name for name in SLURM_COMMANDS if shutil.which(name) is None]
    if not os.path.exists(RUNUSER):
        missing.append(RUNUSER)
    if missing:
        return [loaded.problem(("backend",), f"{', '.join(missing)} not found: this machine "
                               "must be able to submit Slurm jobs (Debian: apt-get install "
                               "slurm-client, and util-linux for runuser)")]
    try:
        listed = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True,
                                timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        listed = None
    if listed is None or listed.returncode != 0:
        why = "did not answer within 30 s" if listed is None else listed.stderr.strip()
        return [loaded.problem(("backend",), f"the Slurm controller does not answer (sinfo: "
                               f"{why[-300:]}); check slurm.conf and that slurmctld runs")]
    partitions = set(listed.stdout.split())
    named = [(("slurm", "partition"), spec.slurm.partition)]
    named += [(("slurm", "groups", group, "partition"), values.partition)
              for group, values in spec.slurm.groups.items()]
    problems = []
    for where, value in named:
        for partition in (value or "").split(","):
            if partition and partition not in partitions:
                problems.append(loaded.problem(where, f"Slurm has no partition {partition!r} "
                                               f"(it has: {', '.join(sorted(partitions))})"))
    return problems


def traversal_problems(loaded: LoadedSpec, mode: str, paths: StatePaths) -> list[Problem]:
    """System mode with venv environments: servers run as the users' accounts and execute
    <state>/envs/<name>/current/bin/python, so every folder above it must let others in
    (a 0700 parent gave every start a bare HTTP 500)."""
    if (mode != "system" or not loaded.spec.environments
            or backend_of(loaded.spec).environments != "venv"):
        return []
    for folder in [paths.envs, *paths.envs.parents]:
        try:
            info = folder.stat()
        except FileNotFoundError:
            continue  # made by `env build` (0755)
        if not info.st_mode & 0o001:
            return [loaded.problem(
                ("hub", "state_dir"),
                f"the users' servers run the environments under {paths.envs}, but "
                f"{folder} (mode {stat.S_IMODE(info.st_mode):04o}) does not let other "
                f"accounts through; `chmod o+x {folder}`, or put hub.state_dir elsewhere")]
    return []


def machine_problems(loaded: LoadedSpec, mode: str, paths: StatePaths, *,
                     starting: bool) -> list[Problem]:
    """Everything hub.yaml needs of this machine but the roster's accounts (`check`): with
    hub.url also nginx and the certificate; `starting` adds what only a hub about to start
    needs: free ports and built environments (`up`)."""
    problems = password_file_problems(loaded)
    if starting:
        problems += port_problems(loaded, paths)
    problems += hook_problems(loaded, mode, paths)
    problems += file_problems(loaded, mode)
    problems += environment_file_problems(loaded, paths if starting else None)
    problems += engine_problems(loaded)
    problems += traversal_problems(loaded, mode, paths)
    problems += scheduler_problems(loaded)
    if loaded.spec.hub.url and not starting:  # the hub itself runs without nginx
        problems += site_problems(loaded, Journal.load(paths.journal))
    return problems


def preflight_problems(loaded: LoadedSpec, roster: Roster, mode: str, paths: StatePaths, *,
                       starting: bool) -> list[Problem]:
    """Before `up` and `service install`: the roster rules, the machine's facts, and in
    system mode every roster account made (by `apply`)."""
    problems = roster_problems(loaded, roster.groups)
    problems += machine_problems(loaded, mode, paths, starting=starting)
    if mode == "system":
        problems += account_problems(roster)
    return problems
