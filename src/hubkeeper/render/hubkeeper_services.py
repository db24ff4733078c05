"""hubkeeper's own services of the hub, and their roles: `hubkeeper-api` (apply, prewarm),
`hubkeeper-status` (status) and `hubkeeper-metrics` (Prometheus) with their tokens,
`hubkeeper` (the web pages, web.enabled; its token is only its own, for OAuth: no role),
jupyterhub-idle-culler (culling:) and the
`hubkeeper-schedule` service (schedule:). Pure: each function only sets, like render/jupyterhub.py,
whose checklist calls them; render/extra_services.py appends hub.yaml's own services after these.
"""

from __future__ import annotations

import json

from traitlets.config import Config

from hubkeeper.base.files import package_file
from hubkeeper.config.model import HubSpec
from hubkeeper.context.runtime import Runtime
from hubkeeper.render.extra_services import DIE_WITH_HUB
from hubkeeper.render.schedule import keepalive_every
from hubkeeper.state.identity import web_account

SERVICE_NAME = "hubkeeper"  # the web pages at /services/hubkeeper/ (web.enabled)
API_SERVICE_NAME = "hubkeeper-api"
# What `apply` and `prewarm` need of the running hub; nothing more (least privilege).
SERVICE_SCOPES = [
    "read:hub", "list:users", "read:users", "read:servers",  # what is there
    "admin:users", "admin:groups", "servers",  # apply: the roster, while the hub runs
    "users:activity",  # prewarm --until: started servers kept from idle culling
    "tokens!user=hubkeeper-canary",  # upgrade: its canary's token (host/canary.py), no other
]
STATUS_SERVICE_NAME = "hubkeeper-status"
# What `hubkeeper status` reads: a token that can change nothing, for the verb run most often.
STATUS_SCOPES = ["read:hub", "list:users", "read:users", "read:servers"]
METRICS_SERVICE_NAME = "hubkeeper-metrics"
# What Prometheus scrapes with (docs/metrics.md): /hub/metrics, JupyterHub's and hubkeeper's
# own; the token reads no user, server or group.
METRICS_SCOPES = ["read:metrics"]


def update_services(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    # The API's token and the web service's are apart: the web service runs as an
    # unprivileged account and holds only its own token (for the hub's OAuth), which can
    # do nothing in the REST API; admins' actions go through the root helper.
    c.JupyterHub.services = [
        {"name": API_SERVICE_NAME, "api_token": runtime.secrets.api_token},
        {"name": STATUS_SERVICE_NAME, "api_token": runtime.secrets.status_token},
        {"name": METRICS_SERVICE_NAME, "api_token": runtime.secrets.metrics_token},
    ]
    if web_enabled(spec, runtime):
        c.JupyterHub.services.append({"name": SERVICE_NAME,
                                      "api_token": runtime.secrets.service_token,
                                      **web_service(spec, runtime)})
    # the home page's link to the student's page (hub/templates/home.html); native login
    # sets its own list with these templates first (render/jupyterhub.py)
    if web_enabled(spec, runtime) and "template_paths" not in c.JupyterHub:
        c.JupyterHub.template_paths = [package_file("hub/templates")]
    c.JupyterHub.load_roles = [
        {
            "name": f"{SERVICE_NAME}-status",  # the name older hubs have in their database
            "description": "what `apply` and `prewarm` read and change",
            "scopes": list(SERVICE_SCOPES),
            "services": [API_SERVICE_NAME],
        },
        {
            "name": f"{STATUS_SERVICE_NAME}-read",
            "description": "what `hubkeeper status` reads; it changes nothing",
            "scopes": list(STATUS_SCOPES),
            "services": [STATUS_SERVICE_NAME],
        },
        {
            "name": f"{METRICS_SERVICE_NAME}-read",
            "description": "what Prometheus scrapes: /hub/metrics, nothing else",
            "scopes": list(METRICS_SCOPES),
            "services": [METRICS_SERVICE_NAME],
        },
    ]


WEB_MODULE = "hubkeeper.proc.webpage"
WEB_HELPER_ENV = "HUBKEEPER_HELPER_SOCKET"
WEB_MAX_READ_ENV = "HUBKEEPER_WEB_MAX_READ"


def web_enabled(spec: HubSpec, runtime: Runtime) -> bool:
    """The web pages run in system mode only (config/rules/mode.py refuses the rest)."""
    return spec.web.enabled and runtime.mode == "system"


def web_service(spec: HubSpec, runtime: Runtime) -> dict:
    """What the `hubkeeper` service gets to serve the web pages at /services/hubkeeper/:
    JupyterHub runs proc/webpage.py as the web account (never root), which asks `up`'s root
    helper at <state>/web/helper.sock (lifecycle/webhelper.py) for users' files."""
    if not web_enabled(spec, runtime):
        return {}
    return {
        "url": f"http://127.0.0.1:{spec.web.port}",
        "command": [*DIE_WITH_HUB, runtime.python, "-m", WEB_MODULE],
        "user": web_account(spec.hub.name),
        "cwd": "/",
        "environment": {WEB_HELPER_ENV: str(runtime.state.helper_socket),
                        WEB_MAX_READ_ENV: str(spec.web.max_read)},
        "display": False,  # the home page links to the student's page itself
        "oauth_no_confirm": True,
    }


CULLER_NAME = "idle-culler"
# What jupyterhub-idle-culler needs to stop servers, and nothing to delete users with.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
ACTIVITY_DEFAULT = 300  # JupyterHub's and the single-user server's own activity interval


def activity_interval(idle: float) -> int:
    """How often activity reaches the hub: JupyterHub's 5 minutes, shorter for a short
    culling.idle, so that a server in use is never seen as idle for longer than idle/4."""
    return max(5, min(ACTIVITY_DEFAULT, int(idle // 4)))


def update_culling(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    culling = spec.culling
    if not culling.enabled:
        return
    # It dies with the hub: a killed hub must not leave a culler behind (the next one starts
    # its own).
    command = [*DIE_WITH_HUB, runtime.python, "-m", "jupyterhub_idle_culler",
               f"--timeout={int(culling.idle)}", f"--cull-every={int(culling.every)}",
               "--cull-users=False", "--remove-named-servers=False"]
    if culling.max_age:
        command.append(f"--max-age={int(culling.max_age)}")
    c.JupyterHub.services.append({"name": CULLER_NAME, "command": command})
    c.JupyterHub.load_roles.append({
        "name": CULLER_NAME,
        "description": "stop idle servers (culling in hub.yaml); never delete users",
        "scopes": list(CULLER_SCOPES),
        "services": [CULLER_NAME],
    })
    interval = activity_interval(culling.idle)
    if interval != ACTIVITY_DEFAULT:
        c.JupyterHub.last_activity_interval = interval
        c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": str(interval)}


SCHEDULE_NAME = "hubkeeper-schedule"
# What the schedule service needs to start servers and keep them active, nothing more.
SCHEDULE_SCOPES = ["list:users", "read:users", "read:servers", "servers", "users:activity"]


def update_schedule(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    """schedule: a service that starts each class's servers and keeps them until its end."""
    if not spec.schedule:
        return
    active = {member.name for member in runtime.roster.active}
    windows = [{"group": window.group, "days": list(window.days), "start": window.start,
                "end": window.end,
                "users": [name for name in runtime.roster.group_members(window.group)
                          if name in active]}
               for window in spec.schedule]
    idle = spec.culling.idle if spec.culling.enabled else 0
    c.JupyterHub.services.append({
        "name": SCHEDULE_NAME,
        "command": [*DIE_WITH_HUB, runtime.python, "-m", "hubkeeper.proc.schedule"],
        "environment": {"HUBKEEPER_SCHEDULE": json.dumps(windows),
                        "HUBKEEPER_KEEPALIVE": str(keepalive_every(idle))},
    })
    c.JupyterHub.load_roles.append({
        "name": SCHEDULE_NAME,
        "description": "start each class's servers before it and keep them until its end "
                       "(schedule in hub.yaml)",
        "scopes": list(SCHEDULE_SCOPES),
        "services": [SCHEDULE_NAME],
    })
