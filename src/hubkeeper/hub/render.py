"""HubSpec -> traitlets Config for JupyterHub. Pure: one function per section, each only sets.

`render(spec, runtime)` is all that `jupyterhub_config.py` calls; tests assert on its output.
"""

from __future__ import annotations

from typing import Any

from traitlets.config import Config

from hubkeeper.config.model import HubSpec
from hubkeeper.hub.runtime import Runtime

SPAWNER_CLASS = "hubkeeper.hub.spawner.LocalSpawner"
SERVICE_NAME = "hubkeeper"
# What `hubkeeper status` reads; nothing more (least privilege).
SERVICE_SCOPES = [
    "read:hub", "list:users", "read:users", "read:servers",  # status
    "admin:users", "admin:groups", "servers",  # apply: the roster, while the hub runs
]

AUTHENTICATORS = {
    "shared-password": "jupyterhub.authenticators.shared.SharedPasswordAuthenticator",
    "pam": "hubkeeper.hub.auth.PAMAuthenticator",
    "dummy": "jupyterhub.auth.DummyAuthenticator",
}


def render(spec: HubSpec, runtime: Runtime) -> Config:
    c = Config()
    update_hub(c, spec, runtime)
    update_proxy(c, spec, runtime)
    update_auth(c, spec, runtime)
    update_spawner(c, spec, runtime)
    update_services(c, spec, runtime)
    update_groups(c, spec, runtime)
    return c


def public_url(spec: HubSpec) -> str:
    host = spec.hub.ip if ":" not in spec.hub.ip else f"[{spec.hub.ip}]"
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{spec.hub.port}{spec.hub.base_url}"


def update_hub(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    host = spec.hub.ip if ":" not in spec.hub.ip else f"[{spec.hub.ip}]"
    c.JupyterHub.bind_url = f"http://{host}:{spec.hub.port}{spec.hub.base_url}"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{spec.hub.api_port}"
    c.JupyterHub.db_url = f"sqlite:///{runtime.state.database}"
    c.JupyterHub.cookie_secret_file = runtime.secrets.cookie_secret_file
    c.JupyterHub.pid_file = str(runtime.state.hub_pid)
    # On shutdown stop every server and the proxy: `up` promises a clean stop.
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True


def update_proxy(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    c.ConfigurableHTTPProxy.should_start = True
    c.ConfigurableHTTPProxy.command = list(runtime.proxy_command)
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{spec.proxy.api_port}"
    c.ConfigurableHTTPProxy.auth_token = runtime.secrets.proxy_token
    c.ConfigurableHTTPProxy.pid_file = str(runtime.state.proxy_pid)


def update_auth(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    kind = spec.auth.kind
    c.JupyterHub.authenticator_class = AUTHENTICATORS[kind]
    roster = runtime.roster
    c.Authenticator.admin_users = {member.name for member in roster.active if member.admin}
    c.Authenticator.allowed_users = {member.name for member in roster.active}
    c.Authenticator.blocked_users = {m.name for m in roster.members if m.locked} | set(
        runtime.removed)
    c.Authenticator.allow_all = spec.users.allow_all
    if kind == "pam":
        c.PAMAuthenticator.account_prefix = spec.users.account_prefix
    if kind == "shared-password":
        c.SharedPasswordAuthenticator.user_password = runtime.secrets.shared_password
        c.SharedPasswordAuthenticator.admin_password = runtime.secrets.admin_password


def update_spawner(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    c.JupyterHub.spawner_class = SPAWNER_CLASS
    c.Spawner.cmd = list(runtime.singleuser_command)
    c.Spawner.default_url = "/lab"
    c.LocalSpawner.personal = runtime.mode == "personal"
    c.LocalSpawner.account_prefix = spec.users.account_prefix
    if runtime.mode == "personal":
        c.LocalSpawner.home_root = str(runtime.state.users)
        if runtime.as_root:
            # Only reachable on loopback (checked in resolve_mode); Jupyter refuses root otherwise.
            c.Spawner.args = ["--ServerApp.allow_root=True"]


def update_groups(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    # JupyterHub only adds at start; `up` removes what the roster no longer has via the API.
    active = {member.name for member in runtime.roster.active}
    c.JupyterHub.load_groups = {
        group: {"users": [n for n in runtime.roster.group_members(group) if n in active]}
        for group in runtime.roster.groups
    }


def update_services(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    c.JupyterHub.services = [{"name": SERVICE_NAME, "api_token": runtime.secrets.service_token}]
    c.JupyterHub.load_roles = [
        {
            "name": f"{SERVICE_NAME}-status",
            "description": "what `hubkeeper status` reads and `apply` changes",
            "scopes": list(SERVICE_SCOPES),
            "services": [SERVICE_NAME],
        }
    ]


def as_plain(config: Config) -> dict[str, Any]:
    """The Config as plain data (sorted sets), for JSON output and golden tests."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(value[key]) for key in sorted(value)}
        if isinstance(value, (set, frozenset)):
            return sorted(value)
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return plain(config)


def as_python(config: Config) -> str:
    """The Config as the `c.Section.key = value` lines an operator knows from JupyterHub."""
    lines = []
    for section, values in as_plain(config).items():
        for key, value in values.items():
            lines.append(f"c.{section}.{key} = {value!r}")
    return "\n".join(lines) + "\n"
