"""hub.yaml's `services` -> JupyterHub services at /services/<name>/. Pure, like render.py.

`update_services` (render/hubkeeper_services.py) sets hubkeeper's own service first; this module
appends.
A service with hub_login runs behind the login gate (`python -m hubkeeper.proc.gate`, see
gate.py): JupyterHub runs the gate as the managed service <name> at gate_port, and the gate
passes what it lets through to the service's url (and runs its command, if any, as its
child). A service without hub_login is handed to JupyterHub as it is.

Who may open a service is decided twice: by the hub, which only lets users with the scope
access:services!service=<name> complete the OAuth round (every user, or the members of
`groups` through a role), and by the gate, which checks the groups again on every visit
(JupyterHub's admins hold access to every service; the gate keeps them out of a service
whose groups they are not in).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from traitlets.config import Config

from hubkeeper.config.model import HubSpec
from hubkeeper.config.operation import HubService
from hubkeeper.context.runtime import Runtime

GATE_MODULE = "hubkeeper.proc.gate"
# What the gate's tokens may read of the user who logs in through it: their own groups.
GATE_OAUTH_SCOPES = ["read:users:groups!user"]
DIE_WITH_HUB = ("setpriv", "--pdeathsig", "TERM", "--")  # util-linux, as for snapshot's rsync


def update_extra_services(c: Config, spec: HubSpec, runtime: Runtime) -> None:
    if spec.hub.url:
        # The address users see: JupyterHub builds OAuth redirects and services' public
        # URLs from it, where the request itself would say http://127.0.0.1 behind nginx.
        parts = urllib.parse.urlsplit(spec.hub.url)
        c.JupyterHub.public_url = f"{parts.scheme}://{parts.netloc}{spec.hub.base_url}"
    # hubkeeper's own pages (render/hubkeeper_services.py): every user may log in to them;
    # the page itself shows each only their own files, and the admin page only to admins
    everyone: set[str] = {access_scope("hubkeeper")} if spec.web.enabled else set()
    for service in spec.services:
        c.JupyterHub.services.append(service_entry(service, runtime))
        if service.hub_login and service.groups:
            c.JupyterHub.load_roles.append(access_role(service))
        else:
            everyone.add(access_scope(service.name))
    if everyone:
        # Added to JupyterHub's default 'user' role, which every hub user holds.
        c.JupyterHub.extra_user_scopes = everyone


def access_scope(name: str) -> str:
    return f"access:services!service={name}"


def access_role(service: HubService) -> dict[str, Any]:
    return {
        "name": f"service-{service.name}-users",
        "description": f"open /services/{service.name}/ (its groups in hub.yaml)",
        "scopes": [access_scope(service.name)],
        "groups": list(service.groups),
    }


def service_entry(service: HubService, runtime: Runtime) -> dict[str, Any]:
    """One item of c.JupyterHub.services."""
    # Services in hub.yaml are the operator's: users are not asked to confirm the OAuth
    # round (JupyterHub's "authorize access" page).
    entry: dict[str, Any] = {"name": service.name, "oauth_no_confirm": True}
    if not service.hub_login:
        if service.url:
            entry["url"] = service.url
        if service.command:
            # JupyterHub starts it in a session of its own and stops it only when it stops
            # cleanly: the kernel's SIGTERM when the hub dies keeps a killed hub's service
            # from holding its port against the next one.
            entry["command"] = [*DIE_WITH_HUB, *service.command]
        if service.environment:
            entry["environment"] = dict(service.environment)
        entry["display"] = bool(service.url)
        return entry
    assert service.url and service.gate_port  # model rules: hub_login needs both
    entry["url"] = f"http://127.0.0.1:{service.gate_port}"
    entry["command"] = gate_command(service, runtime)
    if service.environment:
        entry["environment"] = dict(service.environment)  # the gate hands it to the command
    entry["display"] = True
    if service.groups:
        entry["oauth_client_allowed_scopes"] = list(GATE_OAUTH_SCOPES)
    return entry


def gate_command(service: HubService, runtime: Runtime) -> list[str]:
    assert service.url
    command = [runtime.python, "-m", GATE_MODULE, "--upstream", service.url.rstrip("/"),
               "--user-header", service.user_header]
    for group in service.groups:
        command += ["--group", group]
    if service.command:
        command += ["--", *service.command]
    return command
