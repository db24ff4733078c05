"""What rendering needs besides hub.yaml: the mode, paths, secrets and executables on this host.

Built once from the opened hub (`Runtime.from_hub`) so that `render()` stays a pure
function of its inputs.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.base.files import package_file
from hubkeeper.config.backends import backend_of
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.rules.mode import Mode, effective_mode, mode_problems
from hubkeeper.roster import Roster
from hubkeeper.state.statedir import Secrets, StatePaths

if TYPE_CHECKING:
    from hubkeeper.context.hub import Hub

# Servers start through this script (by path, with -P): see proc/singleuser.py.
SINGLEUSER = package_file("proc/singleuser.py")
# servers.warm: one warm parent per environment build, run by path like SINGLEUSER.
WARMPARENT = package_file("proc/warmparent.py")
# First on every server's JUPYTER_CONFIG_PATH: hubkeeper's own server settings, then the
# environment's server_config files (proc/server_config/jupyter_server_config.py).
SERVER_CONFIG_DIR = package_file("proc/server_config")
SERVER_CONFIG_ENV = "HUBKEEPER_SERVER_CONFIG"


def resolve_mode(loaded: LoadedSpec, is_root: bool) -> Mode:
    """hub.mode with `auto` resolved, checked against who we are: every problem of the mode,
    the backend and the login at once (`config/rules/mode.py`)."""
    if not backend_of(loaded.spec).runs_here:
        raise HubkeeperError(
            f"{loaded.path}: backend 'kubernetes' runs the hub on a cluster, from the Zero to "
            "JupyterHub chart, not on this machine",
            hint=KUBERNETES_HINT,
        )
    problems = mode_problems(loaded, is_root)
    if problems:
        raise InvalidInput(problems, hint="docs/users.md says how each login works, "
                           "docs/backends.md what each backend needs")
    return effective_mode(loaded.spec, is_root)


KUBERNETES_HINT = ("hubkeeper export z2jh -o values.yaml, then helm upgrade --install "
                   "(docs/kubernetes.md)")


def find_proxy(loaded: LoadedSpec) -> list[str]:
    """The configurable-http-proxy executable of the kind hub.yaml asks for."""
    proxy = loaded.spec.proxy
    if proxy.command:
        if not os.access(proxy.command, os.X_OK):
            raise HubkeeperError(
                f"{loaded.path}: proxy.command {proxy.command} is not an executable file"
            )
        return [proxy.command]
    venv_bin = Path(sys.executable).parent
    if proxy.kind == "python":
        candidate = venv_bin / "configurable-http-proxy"
        if candidate.exists():  # run through hubkeeper.proc.proxy: no cap of 10 requests
            return [sys.executable, "-m", "hubkeeper.proc.proxy"]
        raise HubkeeperError(
            "the Python configurable-http-proxy is not installed next to hubkeeper",
            hint="pip install configurable-http-proxy (it is a hubkeeper dependency)",
        )
    # The npm package; installed by `make` into the venv prefix, or anywhere on PATH.
    candidate = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
    if candidate.exists():
        return [str(candidate)]
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != venv_bin
    )
    found = shutil.which("configurable-http-proxy", path=path)
    if found:
        return [found]
    raise HubkeeperError(
        "proxy.kind is 'node' but the npm configurable-http-proxy is not installed",
        hint=f"npm install --prefix {sys.prefix} configurable-http-proxy, "
        "or set proxy.kind: python",
    )


@dataclass(frozen=True)
class Runtime:
    mode: Mode
    state: StatePaths
    secrets: Secrets
    proxy_command: tuple[str, ...]
    singleuser_command: tuple[str, ...]
    as_root: bool
    roster: Roster
    removed: frozenset[str] = frozenset()  # journaled users no longer on the roster
    config_dir: Path | None = None  # hub.yaml's directory: relative paths in it start here
    python: str = "python3"  # hubkeeper's interpreter, for the services the hub runs
    config_file: Path | None = None  # hub.yaml (the hub runs `users admit` on it)

    @classmethod
    def from_hub(cls, hub: Hub, redact: bool = False) -> Runtime:
        """What rendering needs from the opened hub and this host. With `redact`, secrets
        are placeholders and nothing is read."""
        roster = hub.roster
        removed = frozenset(hub.load_journal().users_off({m.name for m in roster.members}))
        return cls(
            mode=hub.mode,
            state=hub.paths,
            secrets=hub.secrets(redact),
            proxy_command=tuple(find_proxy(hub.loaded)),
            singleuser_command=(sys.executable, "-P", SINGLEUSER),
            as_root=hub.is_root,
            roster=roster,
            removed=removed,
            config_dir=hub.directory,
            python=sys.executable,
            config_file=hub.path,
        )
