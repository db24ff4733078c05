"""The steps of a start that every backend's spawner shares, besides accounts and admission
(hub/spawner_base.py): the environment chosen and checked (a user may only start one their
groups allow, also through the REST API), ~/<environment>/ seeded from its home template,
the course material pulled as the user (materials:, host/materials.py), and the start-up
hooks (hooks.as_root, then hooks.as_user, see hub/hooks.py).

`StartSteps` is a mixin of HubkeeperSpawner and holds no traits: the settings it reads
are HubkeeperSpawner's (c.HubkeeperSpawner.*), named below for the reader and the type
checker. A refusal is a SpawnRefused: the user sees its message on the spawn page and in the
REST API; the hooks' output goes only to the root-only log.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import pwd
import signal
import sys
from typing import Any

from tornado import web

from hubkeeper.base import procs
from hubkeeper.base.whoami import effective_uid
from hubkeeper.context.runtime import SERVER_CONFIG_DIR, SERVER_CONFIG_ENV
from hubkeeper.host.materials import Pull, PullReport, applies, parse_report, pull_argv, pull_env
from hubkeeper.hub import metrics
from hubkeeper.hub.hooks import (
    SAFE_PATH,
    HookOutcome,
    HookScript,
    Identity,
    note,
    open_log,
    run_hook,
)

SEED_TIMEOUT = 60.0  # seconds copying a home template may take
DEBIAN_KERNELS = "/usr/share/jupyter/kernels"  # kernelspecs of Debian's packages

try:
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub 5 (SpawnException is new in 6.0): the same shape, by hand

    class SpawnException(web.HTTPError):  # type: ignore[no-redef]
        def __init__(self, message: str, *, reason: str, log_message: str = "",
                     status_code: int = 400) -> None:
            self.message = message
            # tornado's log_message (read-only) is what JupyterHub 5 shows the user, so the
            # details go to the hub's log here
            if log_message and log_message != message:
                logging.getLogger("JupyterHub").error("%s", log_message)
            super().__init__(status_code, message, reason=reason)


class SpawnRefused(SpawnException):
    """A start hubkeeper refuses. `message` is all the user sees (JupyterHub shows
    `jupyterhub_message` on the spawn page and in progress events); details go to the log."""

    def __init__(self, message: str, *, reason: str, log_message: str = "",
                 status_code: int = 500) -> None:
        super().__init__(message, reason=reason, log_message=log_message,
                         status_code=status_code)
        self.jupyterhub_message = message


class StartSteps:
    """Environments and hooks, mixed into HubkeeperSpawner (which declares the settings)."""

    # HubkeeperSpawner's settings and Spawner's attributes, for the type checker only (no
    # values here: the traits of HubkeeperSpawner must not be shadowed).
    user: Any
    user_options: Any
    orm_spawner: Any
    db: Any
    log: logging.Logger
    personal: bool
    account: str
    environments: dict[str, Any]
    default_environment: str
    hooks_as_root: list[dict[str, Any]]
    hooks_as_user: list[dict[str, Any]]
    hooks_on_failure: str
    hook_log_dir: str
    hub_name: str
    materials: list[dict[str, Any]]

    environment_name = ""  # the environment of the current start (HUBKEEPER_ENVIRONMENT)
    environment_folder = ""  # ~/<environment>/: the server's cwd and notebook dir

    def home_dir(self) -> str:
        raise NotImplementedError  # HubkeeperSpawner's

    # --- environments -------------------------------------------------------------------

    def allowed_environments(self) -> list[str]:
        """The environments this user's groups allow, the default first."""
        groups = {group.name for group in self.user.groups}
        allowed = [name for name, env in self.environments.items()
                   if not env.get("groups") or groups & set(env["groups"])]
        return sorted(allowed, key=lambda name: (name != self.default_environment, name))

    async def get_options_form(self) -> str:
        allowed = self.allowed_environments()
        if len(allowed) < 2:
            return ""  # nothing to choose: no form, the start goes straight on
        options = "\n".join(
            f'<option value="{html.escape(name)}"{" selected" if i == 0 else ""}>'
            f"{html.escape(name)}</option>" for i, name in enumerate(allowed))
        return ('<label for="hubkeeper-environment">Environment</label>\n'
                '<select class="form-control" id="hubkeeper-environment" '
                f'name="environment">\n{options}\n</select>')

    def run_options_from_form(self, form_data: dict[str, list[str]]) -> dict[str, Any]:
        chosen = form_data.get("environment") or [""]
        return {"environment": chosen[0]} if chosen[0] else {}

    def chosen_environment(self) -> str | None:
        """The environment this start uses; refuse one that does not exist or that the
        user's groups do not allow (user_options come from the user, also via the API)."""
        if not self.environments:
            return None
        wanted = (self.user_options or {}).get("environment")
        allowed = self.allowed_environments()
        if wanted is None or wanted == "":
            if not allowed:
                raise SpawnRefused(
                    "Your server was not started: no environment is open to your groups. "
                    "Tell your instructor.", reason="environment", status_code=403,
                    log_message=f"{self.user.name}: no environment allows their groups")
            return allowed[0]
        if not isinstance(wanted, str) or wanted not in self.environments:
            raise SpawnRefused(
                f"Your server was not started: there is no environment "
                f"{str(wanted)[:64]!r}. Choose one of: {', '.join(allowed) or 'none'}.",
                reason="environment", status_code=404,
                log_message=f"{self.user.name}: asked for unknown environment {wanted!r}")
        if wanted not in allowed:
            raise SpawnRefused(
                f"Your server was not started: you may not use the environment {wanted!r}. "
                f"Choose one of: {', '.join(allowed) or 'none'}.",
                reason="environment", status_code=403,
                log_message=f"{self.user.name}: refused environment {wanted!r}, not allowed "
                "for their groups")
        return wanted

    def forget_user_options(self) -> None:
        """JupyterHub reuses the last user_options when a start names none: a refused
        choice must not stick, or the next plain start would be refused again."""
        self.user_options = {}
        if self.orm_spawner is not None and self.db is not None:
            self.orm_spawner.user_options = {}
            self.db.commit()

    async def seed_environment_folder(self, name: str) -> str:
        """~/<name>/ exists (0700, the user's) and holds every file of the home template
        the user does not have yet. Copied by a process running as the user: it cannot be
        tricked into writing where the user could not."""
        folder = os.path.join(self.home_dir(), name)
        template = self.environments[name].get("home_template") or ""
        kwargs: dict[str, Any] = {}
        if not self.personal:
            account = pwd.getpwnam(self.account)
            kwargs = {"user": account.pw_uid, "group": account.pw_gid,
                      "extra_groups": os.getgrouplist(account.pw_name, account.pw_gid)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubkeeper.proc.seed", folder, template,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, cwd="/", env={"PATH": SAFE_PATH},
            start_new_session=True, **kwargs)
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), SEED_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            output, status = b"timed out", -1
        else:
            status = proc.returncode or 0
        if status != 0:
            raise self.folder_refused(name, f"seeding {folder} from {template or '-'} failed: "
                                      f"{output.decode(errors='replace')[-2000:]}")
        return folder

    def folder_refused(self, name: str, why: str) -> SpawnRefused:
        """The start refused because ~/<name> could not be prepared; `why` goes to the log
        only."""
        return SpawnRefused(
            f"Your server was not started: your folder ~/{name} could not be prepared. "
            "Tell your instructor.", reason="environment",
            log_message=f"{self.user.name}: {why}")

    def environment_python(self, name: str) -> str:
        """The interpreter of the environment's current build, with `current` resolved now:
        the server and its kernels keep their build (sys.prefix) when a rebuild switches
        `current` later."""
        current = os.path.join(self.environments[name]["path"], "current")
        build = os.path.realpath(current)
        python = os.path.join(build, "bin", "python")
        if not os.path.exists(python):
            raise SpawnRefused(
                f"Your server was not started: the environment {name!r} is not ready. Tell "
                "your instructor.", reason="environment",
                log_message=f"{self.user.name}: {current} does not exist; run `hubkeeper env "
                f"build {name}`")
        return python

    def environment_jupyter_paths(self) -> dict[str, str]:
        """hubkeeper's server settings first on JUPYTER_CONFIG_PATH (they load last, so
        they win; the environment's server_config files run after them). An environment's
        server runs its own python, whose sys.prefix is the build: point Jupyter at
        hubkeeper's venv (this process's prefix) for the server extensions' config
        (JupyterLab, jupyter-resource-usage), the lab assets and the data files. Debian's
        kernelspecs are hidden (proc/singleuser.py): an environment's kernels are its
        build's (an R environment's `ir`, host/renv.py), hubkeeper's python3, and the
        user's own."""
        snippets = (self.environments.get(self.environment_name, {}).get("server_config", [])
                    if self.environment_name else [])
        env = {"JUPYTER_CONFIG_PATH": os.pathsep.join(
                   [SERVER_CONFIG_DIR, os.path.join(sys.prefix, "etc", "jupyter")]),
               SERVER_CONFIG_ENV: json.dumps(snippets)}
        if not self.environment_name:
            return env
        return {**env, "JUPYTER_PATH": os.path.join(sys.prefix, "share", "jupyter"),
                "JUPYTERLAB_DIR": os.path.join(sys.prefix, "share", "jupyter", "lab"),
                "HUBKEEPER_HIDDEN_KERNELS": DEBIAN_KERNELS}

    # --- course material ----------------------------------------------------------------

    async def pull_materials(self) -> None:
        """Pull each material of this start's environment into its folder, as the user
        (host/materials.py). A failed pull is logged and the server starts with the
        material as it was, unless its on_failure is fail."""
        chosen = [entry for entry in self.materials
                  if applies(entry.get("environments") or [], self.environment_name)]
        if not chosen:
            return
        base = self.environment_folder or self.home_dir()
        identity = self.hook_identity("as_user")
        log_fd = open_log(self.hook_log_dir, self.user.name)
        log_path = os.path.join(self.hook_log_dir, f"{self.user.name}.log")
        try:
            for entry in chosen:
                pull = Pull(entry["repo"], entry.get("branch"),
                            os.path.join(base, entry["target"]), float(entry["timeout"]))
                note(log_fd, f"materials: pulling {pull.repo} into {pull.folder}")
                report = await self.pull_material(pull, identity)
                note(log_fd, f"materials: {pull.folder}: {report.describe()}")
                if report.ok:
                    self.log.info("%s: material %s: %s", self.user.name, pull.folder,
                                  report.describe())
                    continue
                os.write(log_fd, report.output.encode())  # git's output, capped by parse_report
                what = f"material {pull.repo} could not be pulled into {pull.folder}"
                if entry.get("on_failure") != "fail":
                    self.log.warning("%s: %s: %s; the server starts with the material as it "
                                     "was (on_failure: warn); output in %s", self.user.name,
                                     what, report.error, log_path)
                    continue
                raise SpawnRefused(
                    f"Your server was not started: the course material for "
                    f"~/{os.path.relpath(pull.folder, self.home_dir())} could not be "
                    "updated. Tell your instructor.", reason="materials",
                    log_message=f"{self.user.name}: {what}: {report.error}; output in "
                    f"{log_path}")
        finally:
            os.close(log_fd)

    async def pull_material(self, pull: Pull, identity: Identity) -> PullReport:
        """One pull as the user (their uid, gid and groups), with its deadline."""
        kwargs: dict[str, Any] = {}
        if identity.uid is not None:
            kwargs = {"user": identity.uid, "group": identity.gid,
                      "extra_groups": list(identity.groups)}
        env = pull_env(identity.env["USER"], identity.env["HOME"])
        proc = await asyncio.create_subprocess_exec(
            *pull_argv(pull), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd="/",
            env=env, start_new_session=True, **kwargs)
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), pull.timeout)
        except asyncio.TimeoutError:
            procs.send_group(proc.pid, signal.SIGKILL)
            stdout, stderr = await proc.communicate()
            return parse_report(pull, proc.returncode, stdout, stderr, timed_out=True)
        except BaseException:  # the start was cancelled: leave nothing running
            procs.send_group(proc.pid, signal.SIGKILL)
            raise
        return parse_report(pull, proc.returncode, stdout, stderr)

    # --- start-up hooks -----------------------------------------------------------------

    def hook_env(self, home: str, user: str, user_home: str, shell: str) -> dict[str, str]:
        groups = " ".join(sorted(group.name for group in self.user.groups))
        return {
            "PATH": SAFE_PATH, "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": user_home, "USER": user, "LOGNAME": user, "SHELL": shell,
            "HUBKEEPER_USER": self.user.name,
            "HUBKEEPER_ACCOUNT": self.user.name if self.personal else self.account,
            "HUBKEEPER_HOME": home,
            "HUBKEEPER_GROUPS": groups,
            "HUBKEEPER_ENVIRONMENT": self.environment_name,
            "HUBKEEPER_HUB": self.hub_name,
        }

    async def run_hooks(self) -> None:
        """hooks.as_root then hooks.as_user, in order; refuse the start if one fails and
        hooks.on_failure is fail."""
        phases = [("as_root", self.hooks_as_root), ("as_user", self.hooks_as_user)]
        if not any(hooks for _, hooks in phases):
            return
        log_fd = open_log(self.hook_log_dir, self.user.name)
        log_path = os.path.join(self.hook_log_dir, f"{self.user.name}.log")
        try:
            for phase, hooks in phases:
                for entry in hooks:
                    hook = HookScript(script=entry["script"], name=entry["name"],
                                      timeout=float(entry["timeout"]), phase=phase)
                    outcome = await self.run_hook(hook, log_fd)
                    if outcome.ok:
                        continue
                    metrics.hook_failed(hook.name, phase)
                    what = f"start-up script {hook.name} ({phase}) {outcome.describe()}"
                    if self.hooks_on_failure == "warn":
                        self.log.warning("%s: %s; the server starts anyway (hooks.on_failure: "
                                         "warn); output in %s", self.user.name, what, log_path)
                        continue
                    raise SpawnRefused(
                        f"Your server was not started: the {what}. Tell your instructor.",
                        reason="hook",
                        log_message=f"{self.user.name}: {what}; output in {log_path}",
                    )
        finally:
            os.close(log_fd)

    def hook_identity(self, phase: str) -> Identity:
        home = self.home_dir()
        me = pwd.getpwuid(effective_uid())
        if phase == "as_root" or self.personal:
            # as_root runs as the hub's account; so does everything in personal mode.
            if phase == "as_root":
                return Identity(self.hook_env(home, me.pw_name, me.pw_dir, me.pw_shell), "/")
            return Identity(self.hook_env(home, me.pw_name, home, "/bin/bash"), home)
        account = pwd.getpwnam(self.account)
        groups = tuple(os.getgrouplist(account.pw_name, account.pw_gid))
        env = self.hook_env(home, account.pw_name, account.pw_dir, account.pw_shell)
        return Identity(env, home, account.pw_uid, account.pw_gid, groups)

    async def run_hook(self, hook: HookScript, log_fd: int) -> HookOutcome:
        """Run one start-up script as its phase says, on the hub's machine (a backend whose
        servers run elsewhere, like docker's containers, overrides this)."""
        return await run_hook(hook, self.hook_identity(hook.phase), log_fd)
