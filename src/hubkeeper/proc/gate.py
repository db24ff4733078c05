"""The login gate: `python -m hubkeeper.proc.gate`, run by the hub as the managed service <name>.

For a service that knows nothing of JupyterHub (RStudio, a dashboard): the hub's proxy sends
/services/<name>/ here; the gate logs the browser in with the hub (OAuth, JupyterHub's own
service-auth library), lets through only hub users of the service's groups and passes
their requests on to the service, naming the user in a header. With a command, the gate
runs the service as its child: they start, stop and are restarted by the hub together.

Everything about the hub comes from the environment JupyterHub gives a managed service
(JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_PREFIX, ...); the service
comes from the command line `render/extra_services.py` renders.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from tornado import httpclient, web
from tornado.httpserver import HTTPServer
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from hubkeeper.base import procs
from hubkeeper.base.whoami import effective_uid
from hubkeeper.proc.gate_firewall import FirewallError, PortGuard
from hubkeeper.proc.gate_proxy import MAX_BODY, GateHandler, log_request
from hubkeeper.proc.gate_rules import GateConfig
from hubkeeper.proc.gate_upstream import checked_client

log = logging.getLogger("hubkeeper.gate")

STOP_DEADLINE = 10.0  # seconds the child gets after SIGTERM before SIGKILL
AUTH_CACHE_SECONDS = 60  # how long the hub's answer "who is this token" is reused
_PR_SET_PDEATHSIG = 1


class GateUsageError(Exception):
    """The gate was started wrongly (not by the hub, or a bad command line)."""


def read_config(argv: Sequence[str], environ: Mapping[str, str]) -> GateConfig:
    """The gate's command line (from hub.yaml, rendered) and the hub's environment."""
    parser = argparse.ArgumentParser(prog="python -m hubkeeper.proc.gate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True,
                        help="the service's address, http://127.0.0.1:<port>")
    parser.add_argument("--group", action="append", default=[], dest="groups",
                        help="a hub group whose members may pass (repeat; none: every user)")
    parser.add_argument("--user-header", default="X-Hubkeeper-User",
                        help="the request header that names the user")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="after --: the service's command, run as the gate's child")
    args = parser.parse_args(list(argv))
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    missing = [key for key in ("JUPYTERHUB_SERVICE_NAME", "JUPYTERHUB_SERVICE_URL",
                               "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_API_TOKEN")
               if not environ.get(key)]
    if missing:
        raise GateUsageError(f"{', '.join(missing)} not set: the gate is started by the hub "
                             "as a managed service (services in hub.yaml), not by hand")
    listen = urlsplit(environ["JUPYTERHUB_SERVICE_URL"])
    if not listen.hostname or not listen.port:
        raise GateUsageError(f"JUPYTERHUB_SERVICE_URL {listen.geturl()!r} has no host and port")
    return GateConfig(
        name=environ["JUPYTERHUB_SERVICE_NAME"],
        prefix=environ["JUPYTERHUB_SERVICE_PREFIX"],
        host=listen.hostname,
        port=listen.port,
        upstream=args.upstream.rstrip("/"),
        groups=frozenset(args.groups),
        user_header=args.user_header,
        command=tuple(command),
    )


def child_environment(config: GateConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The gate's environment (hub.yaml's `environment` included) without the hub's
    credentials: the service must not be able to act as the gate."""
    env = {key: value for key, value in environ.items()
           if not key.startswith(("JUPYTERHUB_", "JPY_"))}
    env["HUBKEEPER_SERVICE_NAME"] = config.name
    env["HUBKEEPER_SERVICE_PREFIX"] = config.prefix
    env["HUBKEEPER_SERVICE_URL"] = config.upstream
    return env


def _die_with_parent() -> None:
    """The kernel sends us SIGTERM when our parent dies (the hub, or for the child: the gate),
    so that nothing we start outlives a killed hub and holds its port."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to do
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _child_setup() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    _die_with_parent()


class Child:
    """The service's command, in its own process group, stopped with the gate."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log.info("%s: starting %s", self.config.name, " ".join(self.config.command))
        self.proc = await asyncio.create_subprocess_exec(
            *self.config.command, env=child_environment(self.config, os.environ),
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_child_setup)

    async def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL after STOP_DEADLINE."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_DEADLINE)
        except asyncio.TimeoutError:
            log.warning("%s: %s did not stop within %.0f s; killing it", self.config.name,
                        self.config.command[0], STOP_DEADLINE)
            self._signal(signal.SIGKILL)
            await self.proc.wait()

    def _signal(self, signum: int) -> None:
        assert self.proc is not None
        procs.send_group(self.proc.pid, signum)


def make_app(config: GateConfig, auth: HubOAuth,
             client: httpclient.AsyncHTTPClient) -> web.Application:
    prefix = config.prefix
    return web.Application(
        [
            (prefix.rstrip("/"), web.RedirectHandler, {"url": prefix}),
            (prefix + "oauth_callback", HubOAuthCallbackHandler),
            (prefix + "(.*)", GateHandler, {"config": config, "auth": auth, "client": client}),
        ],
        # Signs the gate's login cookie; a new one at each start only means a silent new
        # OAuth round with the hub.
        cookie_secret=secrets.token_bytes(32),
        log_function=log_request,
    )


async def serve(config: GateConfig) -> int:
    """Run until SIGTERM/SIGINT (the hub stopping us) or until the child exits; the
    service's port is closed to other accounts than ours for as long (gate_firewall.py)."""
    _die_with_parent()
    guard = None
    if effective_uid() == 0:
        guard = PortGuard.for_upstream(config.name, config.upstream, effective_uid())
        try:
            guard.close()
        except FirewallError as exc:
            log.error("%s: %s; the service is not offered: any account could send it a "
                      "user header of its choice", config.name, exc)
            return 2
    else:
        log.warning("%s: not root (personal mode): every hub user's server runs as this "
                    "account, so %s cannot be closed to them; the service must not trust "
                    "%s from anyone it cannot tell apart", config.name, config.upstream,
                    config.user_header)
    try:
        return await _serve(config)
    finally:
        if guard is not None:
            guard.open()


async def _serve(config: GateConfig) -> int:
    auth = HubOAuth.instance(cache_max_age=AUTH_CACHE_SECONDS)
    client = SimpleAsyncHTTPClient(force_instance=True, max_clients=1024,
                                   max_body_size=MAX_BODY, max_buffer_size=MAX_BODY)
    checked_client(client, config.name)  # never to a student listening in its place
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    child = Child(config) if config.command else None
    if child:
        await child.start()
    server = HTTPServer(make_app(config, auth, client), max_body_size=MAX_BODY)
    server.listen(config.port, config.host)
    log.info("%s: the login gate listens on %s:%d for %s, passing to %s%s", config.name,
             config.host, config.port, config.prefix, config.upstream,
             f" (groups: {', '.join(sorted(config.groups))})" if config.groups else "")
    waits = [asyncio.ensure_future(stop.wait())]
    if child:
        assert child.proc is not None
        waits.append(asyncio.ensure_future(child.proc.wait()))
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    code = 0
    if not stop.is_set():
        assert child is not None and child.proc is not None
        code = 1  # the hub sees the service exit and starts gate and child again
        log.error("%s: %s exited with %s; stopping the gate", config.name, config.command[0],
                  child.proc.returncode)
    server.stop()
    if child:
        await child.stop()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.close_all_connections(), 5)
    client.close()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO,
                        format="[%(levelname).1s %(asctime)s %(name)s] %(message)s")
    try:
        config = read_config(sys.argv[1:] if argv is None else argv, os.environ)
    except GateUsageError as exc:
        log.error("%s", exc)
        return 2
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
