"""What rendering needs besides hub.yaml: the mode, paths, secrets and executables on this host.

Built once from the opened hub (`Runtime.from_hub`) so that `render()` stays a pure
function of its inputs.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.model import HubSpec, system_auth_problems
from hubkeeper.errors import HubkeeperError, InvalidInput
from hubkeeper.host.statedir import Secrets, StatePaths
from hubkeeper.roster import Roster

if TYPE_CHECKING:
    from hubkeeper.context.hub import Hub

# Servers start through this script (by path, with -P): see hub/singleuser.py.
SINGLEUSER = str(Path(__file__).resolve().with_name("singleuser.py"))

Mode = Literal["system", "personal"]


def resolve_mode(loaded: LoadedSpec, is_root: bool) -> Mode:
    """hub.mode with `auto` resolved, checked against who we are."""
    spec = loaded.spec
    if spec.backend == "kubernetes":
        raise HubkeeperError(
            f"{loaded.path}: backend 'kubernetes' runs the hub on a cluster, from the Zero to "
            "JupyterHub chart, not on this machine",
            hint="hubkeeper export z2jh -o values.yaml, then helm upgrade --install "
            "(docs/kubernetes.md)",
        )
    auto: Mode = "system" if is_root else "personal"
    mode: Mode = auto if spec.hub.mode == "auto" else spec.hub.mode
    if mode == "system" and spec.hub.mode == "auto":
        # hub.mode: system is refused at load already; `auto` becomes system only here.
        problems = [loaded.problem(loc, f"{message} (hub.mode 'auto' is system mode as "
                                   "root)") for loc, message in system_auth_problems(spec)]
        if problems:
            raise InvalidInput(problems, hint="docs/users.md says how each login works")
    if mode == "system" and not is_root:
        raise HubkeeperError(
            f"{loaded.path}: hub.mode 'system' runs servers as Linux accounts and needs root",
            hint="run as root, or set hub.mode: personal to try hubkeeper as yourself",
        )
    if spec.backend == "docker" and mode != "system":
        raise HubkeeperError(
            f"{loaded.path}: backend 'docker' runs servers as the users' Linux accounts, "
            "which needs system mode",
            hint="run as root (the Docker engine needs it too), or use backend: local",
        )
    if spec.backend == "slurm" and mode != "system":
        raise HubkeeperError(
            f"{loaded.path}: backend 'slurm' submits servers as jobs of the users' Linux "
            "accounts, which needs system mode",
            hint="run the hub as root on a machine that can submit jobs, or use backend: local",
        )
    if auth_kind(spec, mode) == "pam" and mode != "system":
        raise HubkeeperError(
            f"{loaded.path}: auth.kind 'pam' logs in Linux accounts, which needs system mode",
            hint="run as root with hub.mode: system (or auto), or use auth.kind: shared-password",
        )
    if mode == "personal" and is_root and not ipaddress.ip_address(spec.hub.ip).is_loopback:
        raise HubkeeperError(
            f"{loaded.path}: personal mode as root would give every user a root shell on "
            f"{spec.hub.ip}",
            hint="use hub.mode: system (servers run as Linux accounts), or keep hub.ip "
            "on 127.0.0.1 for a demo",
        )
    return mode


def auth_kind(spec: HubSpec, mode: Mode) -> str:
    """auth.kind, or its default: PAM for Linux accounts, one shared password otherwise."""
    return spec.auth.kind or ("pam" if mode == "system" else "shared-password")


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
        if candidate.exists():  # run through hubkeeper.hub.proxy: no cap of 10 requests
            return [sys.executable, "-m", "hubkeeper.hub.proxy"]
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
        )
