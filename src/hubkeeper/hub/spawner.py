"""The local backend's spawner: JupyterHub's LocalProcessSpawner, with hubkeeper's two modes.

system mode: the server runs as the user's Linux account (the parent's behaviour); a missing
home is created 0700 and owned by the user; a home readable by others is reported.
personal mode: every server runs as the hub's own account, in <home_root>/<user> (0700).

Before the server: the environment is chosen and checked (a user may only start one their
groups allow, also through the REST API), the disk guard (data.min_free), ~/<environment>/
seeded from its home template, then the start-up hooks (hooks.as_root, then hooks.as_user),
see hub/hooks.py. The server runs `<environment>/current/bin/python -P hub/singleuser.py`
in ~/<environment>/. A refusal is a SpawnRefused: the user sees its message
on the spawn page and in the REST API; the hooks' output goes only to the root-only log.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import pwd
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from jupyterhub.spawner import LocalProcessSpawner, SpawnException
from tornado.httpclient import AsyncHTTPClient
from traitlets import Bool, Dict, Enum, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from hubkeeper.base.files import free_bytes
from hubkeeper.config.types import format_size
from hubkeeper.context.limits import Limits, merged
from hubkeeper.context.runtime import SINGLEUSER
from hubkeeper.host import cgroups, homesize
from hubkeeper.host.homes import make_private_dir
from hubkeeper.hub.admission import Admission, QueueTimeout, Ticket, auto_at_once
from hubkeeper.hub.hooks import (
    SAFE_PATH,
    HookOutcome,
    HookScript,
    Identity,
    open_log,
    run_hook,
)
from hubkeeper.state.identity import Unbound, journal_account

SEED_TIMEOUT = 60.0  # seconds copying a home template may take


class SpawnRefused(SpawnException):
    """A start hubkeeper refuses. `message` is all the user sees (JupyterHub shows
    `jupyterhub_message` on the spawn page and in progress events); details go to the log."""

    def __init__(self, message: str, *, reason: str, log_message: str = "",
                 status_code: int = 500) -> None:
        super().__init__(message, reason=reason, log_message=log_message,
                         status_code=status_code)
        self.jupyterhub_message = message


class HubkeeperSpawner(LoggingConfigurable):
    """What hubkeeper adds to every backend's spawner: accounts and homes, the disk guard,
    environments chosen and checked, hook settings, limits per group. A backend's spawner
    derives from this and, after it, from JupyterHub's spawner for its engine (this class is
    configurable, so render.py sets the shared part as c.HubkeeperSpawner)."""

    # Spawner's, for the type checker: this class is only ever mixed into a Spawner.
    user: Any
    user_options: Any
    orm_spawner: Any
    db: Any

    personal = Bool(
        False,
        config=True,
        help="Run every server as the hub's own account, each user in home_root/<name>. "
        "Users are not isolated from each other.",
    )
    home_root = Unicode(
        "", config=True, help="personal mode: the directory holding each user's directory."
    )
    account_prefix = Unicode(
        "", config=True, help="users.account_prefix. System mode takes each user's account "
        "from the journal (journal_path), never from this prefix and the name."
    )
    journal_path = Unicode(
        "", config=True,
        help="system mode: hubkeeper's journal. A hub user's server runs only as the account "
        "the journal records for that user (created or adopted by hubkeeper); a user "
        "without one is refused.",
    )

    hooks_as_root = List(
        Dict(), config=True,
        help="Scripts run as root (personal mode: the hub's account) before each server: "
        "[{script: absolute path, name: as in hub.yaml, timeout: seconds}].",
    )
    hooks_as_user = List(
        Dict(), config=True, help="Scripts run as the user after hooks_as_root; same form.",
    )
    hooks_on_failure = Enum(
        ["fail", "warn"], "fail", config=True,
        help="fail: a failed hook stops the start. warn: it is logged, the server starts.",
    )
    hook_log_dir = Unicode(
        "", config=True, help="Directory (kept 0700) of each user's hook log <user>.log.",
    )
    hub_name = Unicode("", config=True, help="The hub's name, given to hooks as HUBKEEPER_HUB.")
    min_free_bytes = Integer(
        0, config=True,
        help="Refuse to start when the filesystem of the user's home has less free space "
        "(bytes; 0: no check).",
    )

    environments = Dict(
        config=True,
        help="name -> {path: its folder of builds (<state>/envs/<name>, `current` the one "
        "to use), groups: [hub groups "
        "that may use it; empty: everyone], home_template: a directory or ''}. Empty: the "
        "server runs from hubkeeper's own venv (Spawner.cmd).",
    )
    default_environment = Unicode(
        "", config=True, help="The environment a user gets when they do not choose one.",
    )

    limits = Dict(
        config=True,
        help="Every user's server: {memory: bytes or None, cpu: CPUs or None, pids: tasks "
        "or None}.",
    )
    group_limits = Dict(
        config=True,
        help="hub group -> {memory, cpu, pids}: replaces `limits` for its members; a user in "
        "several groups gets the largest of each.",
    )

    starts_at_once = Integer(
        -1, config=True,
        help="Server starts at once (admission control); the others wait in line. -1: one "
        "per CPU, fewer when memory is short; 0: no limit.",
    )
    starts_queue_timeout = Float(
        900.0, config=True,
        help="Seconds a start may wait in line before it is refused (0: no limit).",
    )

    _enforcer: cgroups.Enforcer | None = None  # detected once per hub process
    _admission: ClassVar[Admission | None] = None  # one queue per hub process
    _ticket: Ticket | None = None  # this start's place while it waits or runs

    # --- admission control --------------------------------------------------------------

    def admission(self) -> Admission | None:
        """The hub's one queue of starts (None: no limit)."""
        if self.starts_at_once == 0:
            return None
        if HubkeeperSpawner._admission is None:
            at_once = self.starts_at_once if self.starts_at_once > 0 else auto_at_once()
            HubkeeperSpawner._admission = Admission(at_once)
            self.log.info("server starts: %d at a time, the others wait in line", at_once)
        return HubkeeperSpawner._admission

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold a start slot for the body (wait for one first). The body should end when the
        server answers, so that a slot is what a start really costs."""
        admission = self.admission()
        if admission is None:
            yield
            return
        ticket = self._ticket = admission.join(self.user.name)
        try:
            async with admission.slot(ticket, self.starts_queue_timeout):
                assert ticket.started is not None
                self.log.info("%s: start admitted after %.1f s in line (%d at a time)",
                              self.user.name, ticket.started - ticket.arrived,
                              admission.at_once)
                try:
                    yield
                finally:
                    self.log.info("%s: start slot freed after %.1f s", self.user.name,
                                  admission.clock() - ticket.started)
        except QueueTimeout:
            seconds = int(self.starts_queue_timeout)
            waited = f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"
            raise SpawnRefused(
                f"Your server was not started: the hub was busy starting other servers for "
                f"{waited}. Please try again in a few minutes.", reason="queue",
                status_code=503,
                log_message=f"{self.user.name}: waited {self.starts_queue_timeout:.0f} s "
                "(starts.queue_timeout) for a start slot") from None
        finally:
            self._ticket = None

    async def progress(self):  # type: ignore[override]
        """While the start waits in line: its place and an estimate, on the spawn page."""
        shown = None
        while (ticket := self._ticket) is not None and not ticket.admitted.is_set():
            admission = self.admission()
            assert admission is not None
            place, estimate = admission.place(ticket), admission.estimate(ticket)
            about = f", about {max(1, round(estimate))} s" if estimate else ""
            message = (f"The hub is starting other servers first: you are number {place} in "
                       f"line{about}.")
            if message != shown:
                yield {"progress": 5, "message": message}
                shown = message
            await asyncio.sleep(1)
        async for event in super().progress():  # type: ignore[misc]
            yield event

    async def wait_answering(self, ip: str, port: int) -> None:
        """Until the new server answers HTTP (any status), within http_timeout of now: a
        dead server or a deadline raises, and JupyterHub reports the failed start."""
        url = f"http://{ip or '127.0.0.1'}:{port}{self.server.base_url}api"
        client = AsyncHTTPClient()
        deadline = time.monotonic() + self.http_timeout  # type: ignore[attr-defined]
        delay = 0.05
        while True:
            status = await self.poll()  # type: ignore[attr-defined]
            if status is not None:
                raise SpawnRefused(
                    "Your server stopped while it was starting. Tell your instructor.",
                    reason="exited", log_message=f"{self.user.name}: server exited with "
                    f"status {status} before it answered")
            try:
                await client.fetch(url, request_timeout=5, raise_error=False)
                return
            except Exception:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise SpawnRefused(
                    "Your server did not start in time. Please try again.", reason="timeout",
                    log_message=f"{self.user.name}: server did not answer {url} within "
                    f"{self.http_timeout} s of its start")  # type: ignore[attr-defined]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    @property
    def account(self) -> str:
        """The Linux account of this hub user: in system mode the one hubkeeper's journal
        records for it, never one found by name (see hub/identity.py)."""
        if self.personal:
            return self.account_prefix + self.user.name
        try:
            return journal_account(self.journal_path, self.user.name).account
        except Unbound as exc:
            raise SpawnRefused(
                "Your server was not started: your hub user has no account on this "
                "machine. Tell your instructor.", reason="account", status_code=403,
                log_message=f"{self.user.name}: refused: {exc}") from None

    def home_dir(self) -> str:
        if self.personal:
            return os.path.join(self.home_root, self.user.name)
        return pwd.getpwnam(self.account).pw_dir

    def ensure_home(self) -> None:
        """Make sure the user's home exists and say so if others can read it."""
        home = self.home_dir()
        if not os.path.lexists(home):
            # made root's, handed over by fchown (host/homes.py): nothing planted is followed
            if self.personal:
                uid, gid = os.geteuid(), os.getegid()
            else:
                account = pwd.getpwnam(self.account)
                uid, gid = account.pw_uid, account.pw_gid
            if make_private_dir(home, uid, gid):
                self.log.info("%s: created home %s (0700)", self.user.name, home)
                return
        mode = stat.S_IMODE(os.stat(home).st_mode)
        if mode & 0o077:
            self.log.warning(
                "%s: home %s has mode %o, so other users can read it; `chmod 700 %s` makes it "
                "private",
                self.user.name, home, mode, home,
            )

    async def check_free_space(self) -> None:
        """data.min_free, judging the user who is over rather than everyone: on a disk with
        less free space than that, the start of a user whose home holds more than their
        fair share (the disk's size less data.min_free, divided by the hub's users) is
        refused, and the others
        start (host/homesize.py). One student filling the disk locks out only themselves."""
        if not self.min_free_bytes:
            return
        home = self.home_dir()
        where, free = free_bytes(home)
        if free >= self.min_free_bytes:
            return
        users = self.hub_user_count()
        share = homesize.fair_share(homesize.disk_size(where), users, self.min_free_bytes)
        usage = await asyncio.to_thread(homesize.home_usage, home)
        have, need = format_size(free), format_size(self.min_free_bytes)
        state = (f"{where} has {free} bytes free, less than data.min_free "
                 f"({self.min_free_bytes} bytes); {home} holds "
                 f"{'at least ' if not usage.complete else ''}{usage.bytes} bytes, the fair "
                 f"share is {share} bytes (the disk's size less data.min_free, over {users} hub "
                 "users)")
        if usage.bytes <= share:
            self.log.warning("%s: starts although %s: under the fair share, so not the one "
                             "who filled it (`hubkeeper usage` lists the largest homes)",
                             self.user.name, state)
            return
        raise SpawnRefused(
            f"Your server was not started: the disk holding your home has {have} free (the "
            f"hub needs {need}) and your home holds {format_size(usage.bytes)}, more than "
            f"your fair share ({format_size(share)}). Delete or move files you do not need "
            "(from a terminal, or ask your instructor), then start again.",
            reason="disk", status_code=507,
            log_message=f"{self.user.name}: over their fair share of the disk: {state}; "
            "refused (the others still start)")

    def hub_user_count(self) -> int:
        """The hub's users (the roster, as the hub's database holds it)."""
        if self.db is None:
            return 1
        from jupyterhub import orm

        return max(1, self.db.query(orm.User).count())

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

    @default("apply_user_options")
    def _apply_user_options_default(self) -> Callable[..., None]:
        def checked_in_start(spawner: LocalSpawner, user_options: dict[str, Any]) -> None:
            """user_options (the environment) are checked in start(), where a refusal
            reaches the user; this only tells JupyterHub they are handled."""

        return checked_in_start

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
            raise SpawnRefused(
                f"Your server was not started: your folder ~/{name} could not be prepared. "
                "Tell your instructor.", reason="environment",
                log_message=f"{self.user.name}: seeding {folder} from {template or '-'} "
                f"failed: {output.decode(errors='replace')[-2000:]}")
        return folder

    def limits_for_user(self) -> Limits:
        """This user's limits: the hub's, or the largest of their groups' where set."""
        def limits(value: dict[str, Any]) -> Limits:
            return Limits(value.get("memory"), value.get("cpu"), value.get("pids"))

        groups = [limits(self.group_limits[group.name]) for group in self.user.groups
                  if group.name in self.group_limits]
        return merged(limits(self.limits), groups)

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

    async def prepare_host_start(self) -> str | None:
        """The part of a start done on the hub's filesystem by the backends whose servers
        run an environment's venv (local, slurm): the environment chosen and checked, the
        disk guard, the home, ~/<environment>/ seeded. Returns the environment's python, or
        None when there are no environments (hubkeeper's own venv serves)."""
        if not self.personal:
            self.log.info("%s: runs as account %s (journal)", self.user.name, self.account)
        try:
            name = self.chosen_environment()
        except SpawnRefused:
            self.forget_user_options()
            raise
        await self.check_free_space()
        self.ensure_home()
        self.environment_name, self.environment_folder = name or "", ""
        if not name:
            return None
        python = self.environment_python(name)
        self.environment_folder = await self.seed_environment_folder(name)
        return python

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

    def hook_identity(self, phase: str) -> Identity:
        home = self.home_dir()
        me = pwd.getpwuid(os.geteuid())
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

    def environment_jupyter_paths(self) -> dict[str, str]:
        """The server runs the environment's python, whose sys.prefix is the build: point
        Jupyter at hubkeeper's venv (this process's prefix) for the server extensions'
        config (JupyterLab), the lab assets and the data files."""
        if not self.environment_name:
            return {}
        return {"JUPYTER_CONFIG_PATH": os.path.join(sys.prefix, "etc", "jupyter"),
                "JUPYTER_PATH": os.path.join(sys.prefix, "share", "jupyter"),
                "JUPYTERLAB_DIR": os.path.join(sys.prefix, "share", "jupyter", "lab")}

    environment_name = ""  # the environment of the current start (HUBKEEPER_ENVIRONMENT)
    environment_folder = ""  # ~/<environment>/: the server's cwd and notebook dir


class LocalSpawner(HubkeeperSpawner, LocalProcessSpawner):
    """The local backend: the server is a process of the user's account on this machine."""

    async def start(self):  # type: ignore[override]
        async with self.admitted():
            python = await self.prepare_host_start()
            if python:
                self.cmd = [python, "-P", SINGLEUSER]
                self.notebook_dir = self.environment_folder
            await self.run_hooks()
            self.prepare_limits()
            started = await super().start()
            await self.enter_scope()
            await self.wait_answering(*started)
        return started

    # --- limits -------------------------------------------------------------------------

    user_limits = Limits()
    user_cgroup: cgroups.UserGroup | None = None

    _told = False  # the log said once that limits are not enforced here

    @classmethod
    def enforcer(cls) -> cgroups.Enforcer:
        if LocalSpawner._enforcer is None:
            LocalSpawner._enforcer = cgroups.detect()
        return LocalSpawner._enforcer

    def prepare_limits(self) -> None:
        """Put this start's limits in place; the server joins them in its preexec."""
        self.user_limits = self.limits_for_user()
        self.user_cgroup = None
        if not self.user_limits:
            return
        # Jupyter shows these to the user (MEM_LIMIT, CPU_LIMIT, jupyter-resource-usage).
        self.mem_limit = self.user_limits.memory
        self.cpu_limit = self.user_limits.cpu
        enforcer = self.enforcer()
        if not enforcer.enforces:
            chosen = self.user_limits.memory is not None or self.user_limits.cpu is not None
            # the default process limit alone is no news in personal mode: say it once
            level = self.log.warning if chosen or not LocalSpawner._told else self.log.debug
            LocalSpawner._told = True
            level("%s: limits (memory %s, cpu %s, processes %s) are %s", self.user.name,
                  self.user_limits.memory, self.user_limits.cpu, self.user_limits.pids,
                  enforcer.describe())
            return
        self.user_cgroup = cgroups.UserGroup(enforcer, self.hub_name or "hub", self.user.name)
        try:
            self.user_cgroup.prepare(self.user_limits)
        except OSError as exc:
            raise SpawnRefused(
                "Your server was not started: its memory, CPU and process limits could not "
                "be set. "
                "Tell your instructor.", reason="limits",
                log_message=f"{self.user.name}: cannot set limits in "
                f"{self.user_cgroup.directories}: {exc}") from None

    async def enter_scope(self) -> None:
        """systemd: move the new server into its transient scope with the limits."""
        group = self.user_cgroup
        if group is None or group.enforcer.kind != "systemd" or not self.pid:
            return
        proc = await asyncio.create_subprocess_exec(
            *cgroups.scope_command(group.unit, self.pid, self.user_limits),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, error = await proc.communicate()
        if proc.returncode:
            self.log.error("%s: limits NOT enforced, systemd refused the scope %s: %s",
                           self.user.name, group.unit, error.decode(errors="replace").strip())

    async def stop(self, now: bool = False) -> None:  # type: ignore[override]
        await super().stop(now=now)
        if self.user_cgroup is not None:
            self.user_cgroup.remove()

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        folder = self.environment_folder
        group = self.user_cgroup
        procs = group.procs_files() if group is not None else []
        if not self.personal:
            become_user = super().make_preexec_fn(self.account)

            def preexec_user() -> None:
                cgroups.join(procs)  # as root, before the server can do anything
                become_user()  # setuid and chdir home
                if folder:
                    os.chdir(folder)

            return preexec_user
        home = folder or self.home_dir()

        def preexec() -> None:
            cgroups.join(procs)
            os.chdir(home)

        return preexec

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(self.environment_jupyter_paths())
        return env

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        if not self.personal:
            account = pwd.getpwnam(self.account)
            env.update(USER=self.account, HOME=account.pw_dir, SHELL=account.pw_shell)
            return env
        env["USER"] = self.user.name
        env["HOME"] = self.home_dir()
        env["SHELL"] = "/bin/bash"
        return env

    async def move_certs(self, paths):  # type: ignore[override]
        if self.personal:
            return paths  # nothing to hand over: the server runs as the hub's account
        return await super().move_certs(paths)
