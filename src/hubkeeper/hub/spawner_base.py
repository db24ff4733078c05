"""What hubkeeper adds to every backend's spawner (HubkeeperSpawner): its settings, the
hub's line of starts (admission), the user's account and home, the disk guard, limits per
group, and the part of a start done on the hub's filesystem. The environment and hook steps
are in hub/spawner_steps.py; each backend's spawner derives from HubkeeperSpawner and, after
it, from JupyterHub's spawner for its engine: hub/spawner.py (local), hub/container.py
(docker), hub/slurm.py (slurm).

system mode: the server runs as the account hubkeeper's journal records for the user; a
missing home is created 0700 and owned by the user; a home readable by others is reported.
personal mode: every server runs as the hub's own account, in <home_root>/<user> (0700).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import stat
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from tornado.httpclient import AsyncHTTPClient
from traitlets import Bool, Dict, Enum, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from hubkeeper.base.files import free_bytes
from hubkeeper.base.whoami import effective_uid
from hubkeeper.config.types import format_size
from hubkeeper.context.limits import Limits, merged
from hubkeeper.host import cgroups, homesize
from hubkeeper.host.homes import make_private_dir
from hubkeeper.hub import metrics
from hubkeeper.hub.admission import Admission, QueueTimeout, Ticket, auto_at_once
from hubkeeper.hub.spawner_steps import SpawnRefused, StartSteps
from hubkeeper.state.identity import Unbound, journal_account

__all__ = ["HubkeeperSpawner", "SpawnRefused"]

WARM_KERNELS = "HUBKEEPER_WARM_KERNELS"  # proc/singleuser.py reads it (servers.warm_kernels)


class HubkeeperSpawner(StartSteps, LoggingConfigurable):
    """What hubkeeper adds to every backend's spawner: accounts and homes, the disk guard,
    environments chosen and checked, hook settings, limits per group. A backend's spawner
    derives from this and, after it, from JupyterHub's spawner for its engine (this class is
    configurable, so render.py sets the shared part as c.HubkeeperSpawner)."""

    # Spawner's, for the type checker: this class is only ever mixed into a Spawner.
    user: Any
    user_options: Any
    orm_spawner: Any
    db: Any
    default_url: str

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
    materials = List(
        Dict(), config=True,
        help="Course material pulled as the user at each start, after the environment's "
        "folder is seeded: [{repo, branch (None: the default), target, environments (empty: "
        "all), timeout: seconds, on_failure: warn|fail}] (docs/materials.md).",
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

    server_env = Dict(
        Unicode(), config=True,
        help="servers.env: variables of every user's server (environments[<name>]['env'] "
        "and group_env replace them by name).",
    )
    group_env = List(
        Dict(), config=True,
        help="servers.groups in hub.yaml's order: [{group, env}]; for each name the first "
        "of the user's groups that sets it wins, over the environment's and the hub-wide.",
    )

    warm_kernels = Bool(
        False, config=True,
        help="servers.warm_kernels: the server forks its IPython kernels from a warm parent "
        "(HUBKEEPER_WARM_KERNELS, read by proc/singleuser.py).",
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
            HubkeeperSpawner._admission = admission = Admission(at_once)
            metrics.watch_line(lambda: len(admission.waiting))
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
                metrics.start_waited(ticket.started - ticket.arrived)
                self.log.info("%s: start admitted after %.1f s in line (%d at a time)",
                              self.user.name, ticket.started - ticket.arrived,
                              admission.at_once)
                try:
                    yield
                finally:
                    self.log.info("%s: start slot freed after %.1f s", self.user.name,
                                  admission.clock() - ticket.started)
        except QueueTimeout:
            metrics.start_waited(admission.clock() - ticket.arrived)
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

    @contextlib.asynccontextmanager
    async def failures_counted(self) -> AsyncIterator[None]:
        """A start's body: a failure is counted in hubkeeper_failed_starts_total by its
        reason (hub/metrics.py). A start cancelled (the user stopped it, or JupyterHub's
        start_timeout) is JupyterHub's to count, in its own spawn metrics."""
        try:
            yield
        except SpawnRefused as exc:
            metrics.start_failed(exc.reason)
            raise
        except Exception:
            metrics.start_failed(None)
            raise

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
        records for it, never one found by name (see state/identity.py)."""
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
                uid, gid = effective_uid(), os.getegid()
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

    @default("apply_user_options")
    def _apply_user_options_default(self) -> Callable[..., None]:
        def checked_in_start(spawner: HubkeeperSpawner, user_options: dict[str, Any]) -> None:
            """user_options (the environment) are checked in start(), where a refusal
            reaches the user; this only tells JupyterHub they are handled."""

        return checked_in_start

    def use_environment(self, name: str | None) -> None:
        """This start's environment: its name (HUBKEEPER_ENVIRONMENT, its variables) and the
        UI its server opens (Spawner.default_url, rendered per environment)."""
        self.environment_name = name or ""
        if name and self.environments[name].get("default_url"):
            self.default_url = self.environments[name]["default_url"]

    def configured_env(self) -> dict[str, str]:
        """hub.yaml's variables for this start: hub-wide, then the chosen environment's, then
        the user's groups' (the first listed under servers.groups wins)."""
        env = dict(self.server_env)
        if self.environment_name:
            env.update(self.environments[self.environment_name].get("env") or {})
        groups = {group.name for group in self.user.groups}
        for entry in reversed(self.group_env):  # the first listed is applied last, and wins
            if entry["group"] in groups:
                env.update(entry["env"])
        return env

    def get_env(self) -> dict[str, str]:
        """hub.yaml's variables under everything the spawner sets (the names are refused
        when hub.yaml is loaded; this keeps JupyterHub's and the backend's values on top).
        Every backend's env, docker's container and Slurm's export list, comes from here."""
        warm = {WARM_KERNELS: "1"} if self.warm_kernels else {}
        return {**self.configured_env(), **super().get_env(), **warm}  # type: ignore[misc]

    def limits_for_user(self) -> Limits:
        """This user's limits: the hub's, or the largest of their groups' where set."""
        def limits(value: dict[str, Any]) -> Limits:
            return Limits(value.get("memory"), value.get("cpu"), value.get("pids"))

        groups = [limits(self.group_limits[group.name]) for group in self.user.groups
                  if group.name in self.group_limits]
        return merged(limits(self.limits), groups)

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
        self.use_environment(name)
        self.environment_folder = ""
        if not name:
            return None
        python = self.environment_python(name)
        self.environment_folder = await self.seed_environment_folder(name)
        return python
