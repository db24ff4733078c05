"""The local backend's spawner: JupyterHub's LocalProcessSpawner, with hubkeeper's two modes
(hub/spawner_base.py) and limits in cgroups (host/cgroups.py).

Before the server: the environment is chosen and checked, the disk guard (data.min_free),
~/<environment>/ seeded from its home template, the course material pulled, then the
start-up hooks (hub/spawner_steps.py).
The server runs `<environment>/current/bin/python -P proc/singleuser.py` in ~/<environment>/.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
from collections.abc import Callable
from subprocess import Popen
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Bool, Instance, Unicode, Union, default

from hubkeeper.context.limits import Limits
from hubkeeper.context.runtime import SINGLEUSER
from hubkeeper.host import cgroups
from hubkeeper.hub.spawner_base import HubkeeperSpawner, SpawnRefused
from hubkeeper.hub.warm import (
    WarmParents,
    WarmProcess,
    WarmUnavailable,
    fork_server,
    parents_at,
    reopen,
    start_time,
)

__all__ = ["HubkeeperSpawner", "LocalSpawner", "SpawnRefused"]


class LocalSpawner(HubkeeperSpawner, LocalProcessSpawner):
    """The local backend: the server is a process of the user's account on this machine."""

    @default("interrupt_timeout")
    def _interrupt_timeout_default(self) -> int:
        # A stop sends SIGINT first. Jupyter Server turns it into KeyboardInterrupt, which
        # can be lost in the wrong frame (seen: a culled server that went on for 10 s, the
        # default here). SIGTERM, sent next, stops it through its own handler; 2 s is
        # longer than a clean SIGINT stop takes (about 0.5 s measured).
        return 2

    async def start(self):  # type: ignore[override]
        async with self.failures_counted(), self.admitted():
            python = await self.prepare_host_start()
            if python:
                self.cmd = [python, "-P", SINGLEUSER]
                self.notebook_dir = self.environment_folder
            await self.pull_materials()
            await self.run_hooks()
            self.prepare_limits()
            started = await self.start_process()
            await self.enter_scope()
            await self.wait_answering(*started)
        return started

    # --- through a warm parent (hub/warm.py) ---------------------------------------------

    warm = Bool(False, config=True, help="servers.warm: fork servers from a warm parent per "
                "environment build (proc/warmparent.py); a start it cannot serve runs as today.")
    warm_folder = Unicode("", config=True, help="<state>/run/warm: the parents' sockets.")
    warm_script = Unicode("", config=True, help="proc/warmparent.py, run by path.")
    # the server's process: started here (Popen) or forked by a warm parent (its pidfd)
    proc = Union([Instance(Popen), Instance(WarmProcess)], allow_none=True)

    def warm_parents(self) -> WarmParents:
        return parents_at(self.warm_folder, self.warm_script)

    async def start_process(self) -> tuple[str, int]:
        """The server's process: forked by the warm parent when servers.warm is on and it
        can serve, else started as JupyterHub's LocalProcessSpawner does (and why logged)."""
        if self.warm:
            try:
                return await self.start_warm()
            except WarmUnavailable as exc:
                self.log.warning("%s: server started without the warm parent: %s",
                                 self.user.name, exc)
        return await super().start()

    async def start_warm(self) -> tuple[str, int]:
        if self.shell_cmd or len(self.cmd) != 3 or self.cmd[1:] != ["-P", SINGLEUSER]:
            raise WarmUnavailable(f"the server command {self.cmd} is not hubkeeper's")
        path = self.warm_parents().serving(self.cmd[0])
        if self.port == 0:
            self.port = random_port()
        request = self.warm_request()
        self.log.info("%s: forking from the warm parent %s: %s", self.user.name, path,
                      shlex.join(request["argv"]))
        process = await asyncio.to_thread(fork_server, path, request)
        self.proc = process  # type: ignore[assignment]
        self.pid = process.pid
        self.warm_started = start_time(process.pid) or 0
        return (self.ip or "127.0.0.1", self.port)

    def warm_request(self) -> dict[str, Any]:
        """What the warm parent's child becomes: exactly today's server (ids, folder,
        environment, arguments, cgroup)."""
        if self.personal:
            uid, gid, groups = os.geteuid(), os.getegid(), os.getgroups()
            cwd = self.environment_folder or self.home_dir()
        else:
            account = pwd.getpwnam(self.account)
            uid, gid = account.pw_uid, account.pw_gid
            groups = os.getgrouplist(self.account, gid)
            cwd = self.environment_folder or account.pw_dir
        group = self.user_cgroup
        return {"uid": uid, "gid": gid, "groups": groups, "cwd": cwd, "env": self.get_env(),
                "argv": [SINGLEUSER, *self.get_args()], "as_root": self.personal and uid == 0,
                "cgroup_procs": group.procs_files() if group is not None else []}

    warm_started = 0  # the warm server's start time (clock ticks), kept with its pid

    async def _signal(self, sig: int) -> bool:  # type: ignore[override]
        if isinstance(self.proc, WarmProcess):
            return self.proc.send_signal(sig)
        return await super()._signal(sig)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.pid and isinstance(self.proc, WarmProcess) and self.warm_started:
            state["warm_started"] = self.warm_started
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        started = state.get("warm_started")
        if self.pid and isinstance(started, int):
            # not a child of this hub: only the process with that start time is ours
            process = reopen(self.pid, started, "")
            if process is None:
                self.pid = 0
            else:
                self.proc = process  # type: ignore[assignment]
                self.warm_started = started

    def clear_state(self) -> None:
        super().clear_state()
        self.warm_started = 0

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
