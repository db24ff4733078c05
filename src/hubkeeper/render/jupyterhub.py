"""HubSpec -> traitlets Config for JupyterHub. Pure: one function per section, each only sets.

`render(spec, runtime)` is all that `jupyterhub_config.py` calls; tests assert on its output.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from traitlets.config import Config

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import package_file
from hubkeeper.config.access import PROVIDERS, provider_groups
from hubkeeper.config.backends import backend_of
from hubkeeper.config.environments import Hook
from hubkeeper.config.model import HubSpec, default_environment
from hubkeeper.config.rules.mode import auth_kind
from hubkeeper.config.servers import ui_url
from hubkeeper.config.types import USERNAME_PATTERN, config_relative
from hubkeeper.context.runtime import WARMPARENT, Runtime
from hubkeeper.context.urls import bind_url, hub_bind_url
from hubkeeper.render.auth_github import update_github_auth
from hubkeeper.render.auth_ldap import update_ldap_auth
from hubkeeper.render.auth_lti13 import update_lti13_auth
from hubkeeper.render.auth_oidc import update_oidc_auth
from hubkeeper.render.extra_services import update_extra_services
from hubkeeper.render.hubkeeper_services import update_culling, update_schedule, update_services
from hubkeeper.state import admitted, invites, subjects

PROXY_CLASS = "hubkeeper.hub.chp.CheckedProxy"

AUTHENTICATORS = {
    "shared-password": "jupyterhub.authenticators.shared.SharedPasswordAuthenticator",
    "pam": "hubkeeper.hub.auth.PAMAuthenticator",
    "dummy": "jupyterhub.auth.DummyAuthenticator",
    "native": "hubkeeper.hub.auth.NativeAuthenticator",
    "github": "hubkeeper.hub.auth.GitHubTeamsAuthenticator",
    "oidc": "hubkeeper.hub.auth_oidc.OIDCAuthenticator",
    "ldap": "hubkeeper.hub.auth_ldap.LDAPAuthenticator",
    "lti13": "hubkeeper.hub.auth_lti13.LTI13Authenticator",
}


def render(spec: HubSpec, runtime: Runtime) -> Config:
    c = Config()
    update_hub(c, spec, runtime)
    update_proxy(c, spec, runtime)
    update_auth(c, spec, runtime)
    update_spawner(c, spec, runtime)
    update_hooks(c, spec, runtime)
    update_data(c, spec, runtime)
    update_environments(c, spec, runtime)
    update_servers(c, spec, runtime)
    update_materials(c, spec, runtime)
    update_services(c, spec, runtime)
    update_culling(c, spec, runtime)
    update_limits(c, spec, runtime)
    update_extra_services(c, spec, runtime)
    update_groups(c, spec, runtime)
    update_backend(c, spec, runtime)
    update_starts(c, spec, runtime)
    update_schedule(c, spec, runtime)
    update_start_timeout(c, spec, runtime)
    return c


def update_hub(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    c.JupyterHub.bind_url = bind_url(spec)
    c.JupyterHub.hub_bind_url = hub_bind_url(spec)
    c.JupyterHub.db_url = f"sqlite:///{runtime.state.database}"
    c.JupyterHub.cookie_secret_file = runtime.secrets.cookie_secret_file
    c.JupyterHub.pid_file = str(runtime.state.hub_pid)
    # On shutdown stop every server and the proxy: `up` promises a clean stop.
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True


PYTHON_PROXY = ("-m", "hubkeeper.proc.proxy")


def proxy_limits(spec: HubSpec, command: tuple[str, ...]) -> list[str]:
    """What keeps one user's server from hurting the others, in each proxy's own options:
    hubkeeper's Python proxy takes an idle timeout and a cap per user server; the Node one
    has only --proxy-timeout (the target socket's idle time, in ms; none on WebSockets
    once open). Another proxy.command gets nothing: its options are unknown."""
    proxy = spec.proxy
    if tuple(command[1:3]) == PYTHON_PROXY:
        return [f"--idle-timeout={proxy.idle_timeout:g}",
                f"--max-per-route={proxy.max_per_route}"]
    if proxy.kind == "node" and proxy.idle_timeout:
        return [f"--proxy-timeout={int(proxy.idle_timeout * 1000)}"]
    return []


def update_proxy(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    # JupyterHub's proxy class, with its token sent only to a proxy run by root or the hub's
    # account (hub/chp.py); the settings stay ConfigurableHTTPProxy's.
    c.JupyterHub.proxy_class = PROXY_CLASS
    c.ConfigurableHTTPProxy.should_start = True
    command = tuple(runtime.proxy_command)
    c.ConfigurableHTTPProxy.command = [*command, *proxy_limits(spec, command)]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{spec.proxy.api_port}"
    c.ConfigurableHTTPProxy.auth_token = runtime.secrets.proxy_token
    c.ConfigurableHTTPProxy.pid_file = str(runtime.state.proxy_pid)


def update_auth(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    kind = auth_kind(spec, runtime.mode)
    c.JupyterHub.authenticator_class = AUTHENTICATORS[kind]
    roster = runtime.roster
    # People a provider admitted at first login are let in, and made admins, by the
    # provider at each login (leaving the team or group takes effect at the next one).
    listed = [member for member in roster.active if member.provider is None]
    c.Authenticator.admin_users = {member.name for member in listed if member.admin}
    c.Authenticator.allowed_users = {member.name for member in listed}
    c.Authenticator.blocked_users = {m.name for m in roster.members if m.locked} | set(
        runtime.removed)
    c.Authenticator.allow_all = spec.users.allow_all
    if kind in PROVIDERS:
        update_provider(c, spec, runtime)
    if runtime.mode == "system" and kind in ("pam", "native", *PROVIDERS):
        # A login whose hub user has no account of hubkeeper's is refused (and its start).
        c.HubkeeperAuthenticator.journal_path = str(runtime.state.journal)
    if kind == "pam":
        c.PAMAuthenticator.account_prefix = spec.users.account_prefix
    if kind == "shared-password":
        c.SharedPasswordAuthenticator.user_password = runtime.secrets.shared_password
        c.SharedPasswordAuthenticator.admin_password = runtime.secrets.admin_password
    if kind == "native":
        auth = spec.auth
        c.NativeAuthenticator.open_signup = auth.open_signup
        c.NativeAuthenticator.minimum_password_length = auth.minimum_password_length
        c.NativeAuthenticator.check_common_password = auth.check_common_password
        c.NativeAuthenticator.ask_email_on_signup = auth.ask_email_on_signup
        # Sign-ups get the roster's name rules (they may become Linux accounts).
        c.NativeAuthenticator.username_pattern = USERNAME_PATTERN
        # A roster name signs up only with the invite code `apply` issued for it.
        c.NativeAuthenticator.invite_codes_file = str(runtime.state.secret(invites.FILE_NAME))
        # Its page.html adds "Authorize Users" (admins) and "Change Password" to the menu;
        # hubkeeper's sign-up page adds the invite code to its sign-up page.
        c.JupyterHub.template_paths = [HUBKEEPER_TEMPLATES, native_templates()]
    if kind == "ldap":
        update_ldap_auth(c, spec, runtime)
    if kind == "lti13":
        update_lti13_auth(c, spec, runtime)
    if kind == "github":
        update_github_auth(c, spec, runtime)
    if kind == "oidc":
        update_oidc_auth(c, spec, runtime)


def update_provider(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """What every identity provider shares (hub/auth.py HubkeeperAuthenticator): the
    provider's groups -> hub groups and admins, logins bound to the provider's subject,
    and with users.accounts: first_login the account made at the first login."""
    roster = runtime.roster
    group_map, admin_groups = provider_groups(spec.auth)
    if spec.auth.kind == "github":  # GitHub names are case-insensitive; compared lower-case
        group_map = {team.lower(): group for team, group in group_map.items()}
        admin_groups = tuple(team.lower() for team in admin_groups)
    listed = [member for member in roster.active if member.provider is None]
    if group_map:
        clash = sorted(set(group_map.values())
                       & {group for member in listed for group in member.groups})
        if clash:  # hub.yaml's own groups are checked when it is loaded; this is the CSV
            raise HubkeeperError(
                f"group(s) {', '.join(clash)} come both from the roster and from "
                f"auth.{spec.auth.kind}'s groups; the provider and the roster cannot both "
                "decide who is in a group",
                hint="rename the group in the roster CSV or in hub.yaml's provider section",
            )
        c.Authenticator.manage_groups = True
        c.HubkeeperAuthenticator.group_map = group_map
        c.HubkeeperAuthenticator.roster_groups = {
            member.name: sorted(member.groups) for member in listed if member.groups}
    c.HubkeeperAuthenticator.provider_admin_groups = list(admin_groups)
    c.HubkeeperAuthenticator.roster_admins = sorted(m.name for m in listed if m.admin)
    c.HubkeeperAuthenticator.subjects_file = str(runtime.state.root / subjects.FILE_NAME)
    c.HubkeeperAuthenticator.account_prefix = spec.users.account_prefix
    if spec.users.accounts == "first_login":
        c.HubkeeperAuthenticator.first_login = True
        c.HubkeeperAuthenticator.admitted_file = str(admitted.path_in(runtime.state.root))
        if runtime.mode == "system":
            c.HubkeeperAuthenticator.admit_command = [
                runtime.python, "-m", "hubkeeper", "--config", str(runtime.config_file),
                "users", "admit"]


HUBKEEPER_TEMPLATES = package_file("hub/templates")


def native_templates() -> str:
    """The template directory of the installed nativeauthenticator (its docs ask for it in
    JupyterHub.template_paths)."""
    spec = importlib.util.find_spec("nativeauthenticator")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("nativeauthenticator is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "templates")


def manages_groups(spec: HubSpec) -> bool:
    """Whether the authenticator decides users' groups at login (Authenticator.manage_groups)."""
    return bool(provider_groups(spec.auth)[0])


def update_spawner(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    spawner_class = backend_of(spec).spawner_class
    if spawner_class is None:
        raise HubkeeperError(f"backend {spec.backend!r} runs no hub on this machine",
                             hint="hubkeeper export z2jh (docs/kubernetes.md)")
    c.JupyterHub.spawner_class = spawner_class
    c.Spawner.cmd = list(runtime.singleuser_command)
    c.Spawner.default_url = ui_url(spec.servers.ui)
    c.HubkeeperSpawner.personal = runtime.mode == "personal"
    c.HubkeeperSpawner.account_prefix = spec.users.account_prefix
    if spec.servers.warm:  # local backend only (rules/spec.py)
        c.LocalSpawner.warm = True
        c.LocalSpawner.warm_folder = str(runtime.state.warm)
        c.LocalSpawner.warm_script = WARMPARENT
    if runtime.mode == "system":
        # A server runs only as the account the journal records for its user, read at
        # each start (so `apply` reaches a running hub).
        c.HubkeeperSpawner.journal_path = str(runtime.state.journal)
    if runtime.mode == "personal":
        c.HubkeeperSpawner.home_root = str(runtime.state.users)
        if runtime.as_root:
            # Only reachable on loopback (checked in resolve_mode); Jupyter refuses root otherwise.
            c.Spawner.args = ["--ServerApp.allow_root=True"]


# JupyterHub's own Spawner.start_timeout default: what the server itself may take.
SERVER_START_SECONDS = 60


def _config_path(runtime: Runtime, value: str) -> str:
    """A path from hub.yaml, absolute (relative ones start at hub.yaml's directory)."""
    if runtime.config_dir is None and not Path(value).expanduser().is_absolute():
        raise HubkeeperError(f"cannot resolve {value!r}: hub.yaml's directory is unknown")
    return str(config_relative(runtime.config_dir or Path("/"), value))


def _hooks(hooks: list[Hook], runtime: Runtime) -> list[dict[str, Any]]:
    return [{"script": _config_path(runtime, hook.script), "name": hook.script,
             "timeout": hook.timeout} for hook in hooks]


def update_hooks(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    hooks = spec.hooks
    c.HubkeeperSpawner.hooks_as_root = _hooks(hooks.as_root, runtime)
    c.HubkeeperSpawner.hooks_as_user = _hooks(hooks.as_user, runtime)
    c.HubkeeperSpawner.hooks_on_failure = hooks.on_failure
    c.HubkeeperSpawner.hook_log_dir = (_config_path(runtime, hooks.log_dir) if hooks.log_dir
                                   else str(runtime.state.hook_logs))
    c.HubkeeperSpawner.hub_name = spec.hub.name


def admission_on(spec: HubSpec) -> bool:
    """Whether starts wait in hubkeeper's line (slurm: the scheduler's queue decides)."""
    return backend_of(spec).admission_on(spec)


def update_starts(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """Admission control: the spawner's line, and JupyterHub's own limits out of its way."""
    if not admission_on(spec):
        c.HubkeeperSpawner.starts_at_once = 0
        return
    at_once = spec.starts.at_once
    c.HubkeeperSpawner.starts_at_once = -1 if at_once == "auto" else at_once
    c.HubkeeperSpawner.starts_queue_timeout = spec.starts.queue_timeout
    # JupyterHub answers 429 "too many users" above its own limit: the line replaces it.
    c.JupyterHub.concurrent_spawn_limit = 0
    # Send a start to the progress page at once instead of holding its request for 10 s: a
    # held request is one of the proxy's connections, and a class holds many.
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 1}
    # The server's own start counts from when it leaves the line.
    c.Spawner.http_timeout = SERVER_START_SECONDS


def update_start_timeout(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """JupyterHub's deadline covers the whole start: give the hooks, the materials' pulls
    and the wait in line (hubkeeper's, or Slurm's queue) their time on top of the server's
    own."""
    hooks = spec.hooks
    total = sum(hook.timeout for hook in hooks.as_root + hooks.as_user)
    total += sum(material.timeout for material in spec.materials)
    total += backend_of(spec).queue_timeout(spec)
    if total:
        c.Spawner.start_timeout = SERVER_START_SECONDS + int(total + 0.999)


def update_data(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    c.HubkeeperSpawner.min_free_bytes = spec.data.min_free


def update_environments(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """Each environment's folder of builds: a start resolves its `current` link, so
    `env build`/`rebuild` reach new servers without a hub restart."""
    c.HubkeeperSpawner.environments = {
        name: {
            "path": str(runtime.state.envs / name),
            "groups": list(env.groups),
            "home_template": (_config_path(runtime, env.home_template)
                              if env.home_template else ""),
            **({"starter_files": env.starter_files} if env.starter_files else {}),
            # every environment says its UI: a start sets it over the last start's
            "default_url": ui_url(env.ui or spec.servers.ui),
            **({"env": dict(env.env)} if env.env else {}),
            **({"server_config": [_config_path(runtime, value) for value in env.server_config]}
               if env.server_config else {}),
        }
        for name, env in spec.environments.items()
    }
    c.HubkeeperSpawner.default_environment = default_environment(spec) or ""


def update_servers(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """The servers' variables: hub-wide here, per environment in `environments`, per group
    in hub.yaml's order (the first of a user's groups wins a name; hub/spawner_base.py)."""
    servers = spec.servers
    if servers.env:
        c.HubkeeperSpawner.server_env = dict(servers.env)
    # a list: the order is the precedence, and a list keeps it through any serialisation
    group_env = [{"group": name, "env": dict(group.env)}
                 for name, group in servers.groups.items() if group.env]
    if group_env:
        c.HubkeeperSpawner.group_env = group_env
    if servers.warm_kernels:
        c.HubkeeperSpawner.warm_kernels = True


def update_materials(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """Course material pulled as the user at each start (set only when there is some, so
    a hub without it renders as before)."""
    if not spec.materials:
        return
    c.HubkeeperSpawner.materials = [
        {"repo": material.repo, "branch": material.branch, "target": material.target,
         "environments": list(material.environments), "timeout": material.timeout,
         "on_failure": material.on_failure}
        for material in spec.materials
    ]


def update_groups(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    if manages_groups(spec):
        # JupyterHub refuses load_groups when the authenticator manages groups; the roster's
        # groups reach the hub through the API (`up`, `apply`) and at each login.
        return
    # JupyterHub only adds at start; `up` removes what the roster no longer has via the API.
    active = {member.name for member in runtime.roster.active}
    c.JupyterHub.load_groups = {
        group: {"users": [n for n in runtime.roster.group_members(group) if n in active]}
        for group in runtime.roster.groups
    }


def update_limits(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """Always set: the process limit is on by default (limits.pids), so that one user's
    fork bomb cannot stop every server on the machine."""
    limits = spec.limits
    c.HubkeeperSpawner.limits = {"memory": limits.memory, "cpu": limits.cpu,
                                 "pids": limits.pids or None}
    if limits.groups:
        c.HubkeeperSpawner.group_limits = {
            name: {"memory": group.memory, "cpu": group.cpu, "pids": group.pids}
            for name, group in limits.groups.items()}


def _render_docker(c: Config, spec: HubSpec) -> None:
    """Shared data and group folders mounted into each container (on the local backend they
    are simply on the host)."""
    c.ContainerSpawner.shared_data = [shared.path for shared in spec.data.shared]
    c.ContainerSpawner.group_folders = [{"path": folder.path, "group": folder.group}
                                        for folder in spec.data.group_folders]


def _render_slurm(c: Config, spec: HubSpec) -> None:
    """What every server's job asks of Slurm; memory and CPUs come from limits:, as on the
    other backends."""
    slurm = spec.slurm
    c.SlurmJobSpawner.slurm_partition = slurm.partition or ""
    c.SlurmJobSpawner.slurm_time = slurm.time
    c.SlurmJobSpawner.slurm_extra_options = list(slurm.extra_options)
    c.SlurmJobSpawner.slurm_groups = {
        name: {"partition": group.partition or "", "gpus": group.gpus,
               "time": group.time}
        for name, group in slurm.groups.items()}
    c.SlurmJobSpawner.queue_timeout = slurm.queue_timeout


BACKEND_STEPS = {"docker": _render_docker, "slurm": _render_slurm}


def update_backend(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """What only this backend sets: docker's mounts into each container, slurm's job
    options (local sets nothing of its own)."""
    step = BACKEND_STEPS.get(spec.backend)
    if step is not None:
        step(c, spec)


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
