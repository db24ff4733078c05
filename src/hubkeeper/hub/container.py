"""The docker backend's spawner: DockerSpawner, with each server run as the host account.

The container of <user> is `hubkeeper.<hub>.<escaped user>` (DockerSpawner's escaping maps
names one to one onto [a-z0-9-], and '.' occurs in neither part, so no two users or hubs
share a name; no named volumes are made). It runs:

- from the environment's recorded image id (<state>/envs/<name>/image.json): the image is
  chosen by the environment, which the user's groups must allow; a start that names an
  image itself is refused (only images declared in hub.yaml ever start);
- as the account's uid, gid and supplementary groups, with no-new-privileges;
- on the host's network (like the local backend's processes), the server on 127.0.0.1;
- with the home, the shared data (read-only) and the folders of the user's groups
  (read-write) mounted at their host paths, so links made by `apply` work inside;
- under the engine's memory, CPU and process limits (limits:, by group), swap included;
- with docker-init as PID 1, which reaps the kernels' children.

A start: the home and ~/<environment>/ are prepared on the host (as on the local backend),
the container starts and waits; then, by `docker exec`, the account gets a passwd entry,
the image's starter files are copied into ~/<environment>/ (as the user, nothing
overwritten), hooks.as_root run as root and hooks.as_user as the user; only then does the
server start (through hubkeeper's proc/singleuser.py, mounted read-only, with the python of
the image's `jupyterhub-singleuser`). Stopping removes the container, and so does the first
poll() that finds it ended; the user's files live on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port
from traitlets import Dict, List, Unicode, default

from hubkeeper.config.types import format_duration
from hubkeeper.context.runtime import SERVER_CONFIG_DIR, SERVER_CONFIG_ENV, SINGLEUSER
from hubkeeper.host.images import ImageRecord
from hubkeeper.hub.hooks import HookOutcome, HookScript, note
from hubkeeper.hub.spawner_base import HubkeeperSpawner, SpawnRefused

GO_FILE = "/tmp/.hubkeeper-go"  # made (as root, by exec) when the server may start
# proc/singleuser.py, mounted read-only alone in its folder (so nothing beside it is importable)
SERVER_SCRIPT = "/run/hubkeeper/server/singleuser.py"
# proc/server_config/: hubkeeper's server settings and the environment's server_config files
SERVER_CONFIG_MOUNT = "/run/hubkeeper/server-config"


def wait_then_serve(go_file: str = GO_FILE, server_script: str = SERVER_SCRIPT) -> str:
    """PID 1's child: wait until the start-up steps are done, then become the server.

    "$@" is the image's server command (`jupyterhub-singleuser` and its arguments). When that
    command is a Python script (its first line names a python), the server starts through
    hubkeeper's singleuser.py with that python instead, which saves the start about half its
    CPU (docs/benchmarks.md, "Cheaper servers"); any other command runs as it is.
    """
    return f'''while [ ! -e {go_file} ]; do sleep 0.05; done
cd "$HUBKEEPER_FOLDER" || exit 1
if [ -r {server_script} ] && exe=$(command -v "$1") && IFS= read -r first < "$exe"; then
  case "$first" in
    "#!"*python*) shift; exec ${{first#??}} {server_script} "$@" ;;
  esac
fi
exec "$@"
'''


# Run as root inside the container: a passwd and group entry for the account, unless the
# image already has its uid or gid (names in `id`, `ls -l`, and what getpwuid needs).
ACCOUNT_ENTRY = r'''
grep -q "^[^:]*:[^:]*:$HK_UID:" /etc/passwd ||
  echo "$HK_NAME:x:$HK_UID:$HK_GID::$HOME:$HK_SHELL" >> /etc/passwd
grep -q "^[^:]*:[^:]*:$HK_GID:" /etc/group || echo "$HK_NAME:x:$HK_GID:" >> /etc/group
'''
# Run as the user: copy what ~/<env>/ lacks from the image's starter files; never overwrite,
# never write through a link of the user's.
STARTER_FILES = r'''
src=$1 dst=$2
[ -d "$src" ] || { echo "starter_files: $src is not a directory in the image"; exit 3; }
cd "$src" || exit 3
find . -mindepth 1 | while IFS= read -r f; do
  if [ -d "$f" ] && [ ! -L "$f" ]; then
    [ -L "$dst/$f" ] || mkdir -p "$dst/$f"
  elif [ ! -e "$dst/$f" ] && [ ! -L "$dst/$f" ]; then
    case "$(dirname "$f")" in .) ;; *) [ -L "$dst/$(dirname "$f")" ] && continue ;; esac
    cp -P "$f" "$dst/$f"
  fi
done
'''
SERVER_COMMAND = ["jupyterhub-singleuser"]  # on the image's PATH, as in Jupyter's images
STEP_TIMEOUT = 120.0  # seconds for the account entry, the starter files, the go signal
HOOK_MOUNT = "/run/hubkeeper/hooks"
# Engine calls run in threads. DockerSpawner shares ONE thread among all users, so 20 stops
# ran one after another (measured, bench/dockerbench.py) and a user's long hook (an exec
# that blocks its thread) would hold every other user's start. docker-py's connection pool
# to the engine holds 10.
ENGINE_THREADS = 10


class ContainerSpawner(HubkeeperSpawner, DockerSpawner):
    """backend: docker (see the module docstring)."""

    shared_data = List(
        Unicode(), config=True, help="Host directories mounted read-only at the same path.")
    group_folders = List(
        Dict(), config=True,
        help="[{path, group}]: mounted read-write, at the same path, for the group's members.")

    _engine_threads: ThreadPoolExecutor | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        if ContainerSpawner._engine_threads is None:
            ContainerSpawner._engine_threads = ThreadPoolExecutor(
                ENGINE_THREADS, thread_name_prefix="docker-engine")
        return ContainerSpawner._engine_threads

    @default("name_template")
    def _name_template_default(self) -> str:
        return f"hubkeeper.{self.hub_name or 'hub'}.{{username}}"

    @default("remove")
    def _remove_default(self) -> bool:
        return True  # stopping removes the container, never a file of the user's

    @default("network_name")
    def _network_default(self) -> str:
        return "host"

    @default("use_internal_ip")
    def _internal_ip_default(self) -> bool:
        return True  # no port published: on the host's network the server is on the host

    @default("pull_policy")
    def _pull_default(self) -> str:
        return "never"  # the image is an id `env build` recorded

    @default("allowed_images")
    def _allowed_default(self) -> dict[str, str]:
        return {}  # no image from the user, ever: the environment decides

    # --- the start ------------------------------------------------------------------------

    def recorded_image(self, name: str) -> str:
        directory = self.environments[name]["path"]
        record = ImageRecord.read(Path(directory))
        if record is None:
            raise SpawnRefused(
                f"Your server was not started: the environment {name!r} is not ready. Tell "
                "your instructor.", reason="environment",
                log_message=f"{self.user.name}: {directory}/image.json does not exist; run "
                f"`hubkeeper env build {name}`")
        return record.id

    def refuse_user_image(self) -> None:
        extra = sorted(set(self.user_options or {}) - {"environment"})
        if extra:
            raise SpawnRefused(
                "Your server was not started: only the environment can be chosen, not "
                f"{', '.join(map(str, extra))[:80]}.", reason="image", status_code=403,
                log_message=f"{self.user.name}: refused user_options {extra} (only "
                "'environment' is accepted; images come from hub.yaml)")

    def mounts_for(self, account: pwd.struct_passwd) -> dict[str, dict[str, str]]:
        """host path -> {bind, mode}: the home, hubkeeper's server script, shared data, the
        user's group folders and the hook scripts."""
        groups = {group.name for group in self.user.groups}
        binds = {account.pw_dir: {"bind": account.pw_dir, "mode": "rw"},
                 SINGLEUSER: {"bind": SERVER_SCRIPT, "mode": "ro"},
                 SERVER_CONFIG_DIR: {"bind": SERVER_CONFIG_MOUNT, "mode": "ro"}}
        for path in self.server_config_files():
            binds[path] = {"bind": path, "mode": "ro"}
        for path in self.shared_data:
            binds[path] = {"bind": path, "mode": "ro"}
        for folder in self.group_folders:
            if folder["group"] in groups:
                binds[folder["path"]] = {"bind": folder["path"], "mode": "rw"}
        for phase, hooks in (("as_root", self.hooks_as_root), ("as_user", self.hooks_as_user)):
            for index, entry in enumerate(hooks):
                binds[entry["script"]] = {"bind": self.hook_path(phase, index, entry),
                                          "mode": "ro"}
        return binds

    def server_config_files(self) -> list[str]:
        """The chosen environment's server_config files, mounted at their own paths."""
        return list(self.environments.get(self.environment_name, {}).get("server_config", []))

    @staticmethod
    def hook_path(phase: str, index: int, entry: dict[str, Any]) -> str:
        return f"{HOOK_MOUNT}/{phase}-{index}-{os.path.basename(entry['script'])}"

    async def start(self):  # type: ignore[override]
        async with self.failures_counted(), self.admitted():
            started = await self.start_container()
            await self.wait_answering(*started)
        return started

    async def start_container(self) -> tuple[str, int]:
        try:
            self.refuse_user_image()
            name = self.chosen_environment()
        except SpawnRefused:
            self.forget_user_options()
            raise
        assert name is not None  # backend docker has environments (checked in hub.yaml)
        await self.check_free_space()
        self.ensure_home()
        account = pwd.getpwnam(self.account)
        self.use_environment(name)
        self.image = self.recorded_image(name)
        self.environment_folder = await self.seed_environment_folder(name)
        self.notebook_dir = self.environment_folder
        await self.pull_materials()  # on the host, as the user: the home is mounted
        limits = self.limits_for_user()
        self.mem_limit, self.cpu_limit = limits.memory, limits.cpu
        self.ip, self.port = "127.0.0.1", random_port()
        self.cmd = ["/bin/sh", "-c", wait_then_serve(), "hubkeeper-start", *SERVER_COMMAND]
        self.volumes = self.mounts_for(account)
        supplementary = [str(gid) for gid in os.getgrouplist(account.pw_name, account.pw_gid)
                         if gid != account.pw_gid]
        self.extra_create_kwargs = {
            "user": f"{account.pw_uid}:{account.pw_gid}",
            "working_dir": self.environment_folder,
            "labels": {"hubkeeper.hub": self.hub_name or "hub",
                       "hubkeeper.user": self.user.name, "hubkeeper.environment": name},
        }
        # auto_remove off: a server that dies leaves its output for poll() to log; stop()
        # removes the container.
        host: dict[str, Any] = {"init": True, "group_add": supplementary,
                                "security_opt": ["no-new-privileges"], "auto_remove": False}
        if limits.memory:
            host["memswap_limit"] = limits.memory  # no swap beyond the limit
        if limits.pids:
            host["pids_limit"] = limits.pids  # the container's pids.max: a fork bomb stops
        self.extra_host_config = host
        started = await super().start()
        try:
            await self.prepare_container(account, name)
        except BaseException:
            await self.discard_container()
            raise
        return started

    async def get_ip_and_port(self) -> tuple[str, int]:
        return self.ip, self.port  # the host's network: the server listens on the host

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        account = pwd.getpwnam(self.account)
        env.update(USER=self.account, HOME=account.pw_dir, SHELL=account.pw_shell,
                   HUBKEEPER_FOLDER=self.environment_folder or account.pw_dir)
        # the image's own server loads hubkeeper's settings, then server_config's files
        env.update({"JUPYTER_CONFIG_PATH": SERVER_CONFIG_MOUNT,
                    SERVER_CONFIG_ENV: json.dumps(self.server_config_files())})
        return env

    async def prepare_container(self, account: pwd.struct_passwd, name: str) -> None:
        """The steps between the container's start and the server's, by exec."""
        user = f"{account.pw_uid}:{account.pw_gid}"
        status, output, _ = await self.exec_in(
            ["/bin/sh", "-c", ACCOUNT_ENTRY], "0", STEP_TIMEOUT,
            {"HK_NAME": account.pw_name, "HK_UID": str(account.pw_uid),
             "HK_GID": str(account.pw_gid), "HK_SHELL": account.pw_shell,
             "HOME": account.pw_dir})
        if status != 0:
            self.log.warning("%s: no passwd entry in the container (%s): %s", self.user.name,
                             status, output[-500:])
        starter = self.environments[name].get("starter_files")
        if starter:
            status, output, _ = await self.exec_in(
                ["/bin/sh", "-c", STARTER_FILES, "starter-files", starter,
                 self.environment_folder], user, STEP_TIMEOUT, {"HOME": account.pw_dir})
            if status != 0:
                raise self.folder_refused(
                    name, f"copying {starter} from the image into "
                    f"{self.environment_folder} failed ({status}): {output[-2000:]}")
        await self.run_hooks()
        status, output, _ = await self.exec_in(["/bin/sh", "-c", f": > {GO_FILE}"], "0",
                                               STEP_TIMEOUT, {})
        if status != 0:
            raise SpawnRefused(
                "Your server was not started: its container did not answer. Tell your "
                "instructor.", reason="container",
                log_message=f"{self.user.name}: could not signal the container to start the "
                f"server ({status}): {output[-500:]}")

    async def exec_in(self, argv: list[str], user: str, timeout: float,
                      env: dict[str, str], workdir: str = "/",
                      ) -> tuple[int | None, str, bool]:
        """Run argv in the container as `user`: (exit status, output, timed out). At the
        deadline the process is killed (its host pid, from the engine)."""
        created = await self.docker("exec_create", self.container_id, argv, user=user,
                                    environment=env, workdir=workdir, stdout=True,
                                    stderr=True)
        exec_id = created["Id"]
        try:
            output = await asyncio.wait_for(self.docker("exec_start", exec_id), timeout)
        except asyncio.TimeoutError:
            await self.kill_exec(exec_id)
            return None, "", True
        except BaseException:
            await self.kill_exec(exec_id)
            raise
        info = await self.docker("exec_inspect", exec_id)
        return info.get("ExitCode"), output.decode(errors="replace"), False

    async def kill_exec(self, exec_id: str) -> None:
        with contextlib.suppress(Exception):
            info = await self.docker("exec_inspect", exec_id)
            if info.get("Running") and info.get("Pid"):
                os.kill(int(info["Pid"]), signal.SIGKILL)

    async def run_hook(self, hook: HookScript, log_fd: int) -> HookOutcome:
        """One start-up script inside the container: as_root as the container's root,
        as_user as the account; its output appended to the user's hook log."""
        account = pwd.getpwnam(self.account)
        phase_hooks = self.hooks_as_root if hook.phase == "as_root" else self.hooks_as_user
        index = next(i for i, entry in enumerate(phase_hooks) if entry["script"] == hook.script)
        home = account.pw_dir
        if hook.phase == "as_root":
            user, cwd = "0", "/"
            env = self.hook_env(home, "root", "/root", "/bin/sh")
        else:
            user, cwd = f"{account.pw_uid}:{account.pw_gid}", home
            env = self.hook_env(home, account.pw_name, home, account.pw_shell)
        note(log_fd, f"{hook.phase} {hook.name} in container {self.object_name} "
                     f"(timeout {format_duration(hook.timeout)})")
        began = time.monotonic()
        status, output, timed_out = await self.exec_in(
            [self.hook_path(hook.phase, index, phase_hooks[index])], user, hook.timeout, env,
            cwd)
        os.write(log_fd, output.encode())
        outcome = HookOutcome(hook, status, time.monotonic() - began, timed_out)
        note(log_fd, f"{hook.name} {outcome.describe()} in {outcome.seconds:.1f}s")
        return outcome

    async def discard_container(self) -> None:
        """Remove the container of a start that failed after it was made, or of a server
        that ended (no data in it)."""
        with contextlib.suppress(Exception):
            await self.docker("remove_container", self.container_id, force=True)
        self.object_id = ""

    async def poll(self):  # type: ignore[override]
        status = await super().poll()
        if status is not None and self.object_id:
            with contextlib.suppress(Exception):
                tail = await self.docker("logs", self.object_id, tail=20)
                self.log.warning("%s: container %s ended (%s); its last output:\n%s",
                                 self.user.name, self.object_name, status,
                                 tail.decode(errors="replace"))
            # JupyterHub calls stop() only for a server still running: the container of one
            # that ended goes now (its output is logged), not at the user's next start, and
            # does not outlive the hub's shutdown.
            await self.discard_container()
        return status
