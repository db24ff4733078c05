"""Run jupyterhub in the foreground: start it, wait until it answers, stop it cleanly.

The hub runs in its own session, so a Ctrl-C in the terminal reaches only us; we turn it (and
SIGTERM, SIGHUP) into one SIGTERM for the hub, which stops the user servers and the proxy.
If we die, the kernel sends the hub SIGTERM (PR_SET_PDEATHSIG), so no hub outlives us.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hubkeeper.base import procs
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import package_file
from hubkeeper.base.whoami import effective_uid
from hubkeeper.config.loader import CONFIG_ENV, LoadedSpec
from hubkeeper.context.urls import hub_api_url, public_url
from hubkeeper.host import peer, porthold
from hubkeeper.host.hubapi import HubUnreachable, fetch
from hubkeeper.host.peer import ListenerRefused
from hubkeeper.state.statedir import StatePaths

log = logging.getLogger(__name__)

JUPYTERHUB_CONFIG = Path(package_file("hub/jupyterhub_config.py"))
STOP_DEADLINE = 10.0  # seconds the hub gets to stop servers and proxy before SIGKILL
PROXY_STOP_DEADLINE = 5.0  # then its orphaned proxy, after SIGTERM, before SIGKILL
READY_DEADLINE = 120.0
READY_TIMEOUT = 2.0  # seconds for each look at whether the hub answers
PORT_CHECK_EVERY = 2.0  # seconds between looks at who listens on the public port (node)
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class HubExit:
    requested: bool  # True when we were asked to stop, False when the hub died on its own
    returncode: int
    stop_seconds: float | None
    killed: bool  # the hub did not stop within STOP_DEADLINE and was killed


def _child_setup() -> None:
    """In the hub process before exec: default signal handling, die with the parent."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the hub may outlive a killed supervisor
        pass


def _is_ready(url: str, what: str) -> bool:
    """Whether `url`'s hub/api/ answers 200, through the checked client (host/hubapi.py): never
    through an http_proxy, and not ready while another account holds the port."""
    try:
        answer = fetch(url + "hub/api/", what=what, timeout=READY_TIMEOUT)
    except (HubUnreachable, ListenerRefused):
        return False
    return answer.status == 200


def stop_orphaned_proxy(pid_file: Path, api_port: int,
                        deadline: float = PROXY_STOP_DEADLINE) -> int | None:
    """End the proxy a hub killed at the stop deadline leaves behind (JupyterHub stops it
    only when it stops in time): a requested stop ends the proxy too, so that its ports are
    free for the next `up`. Only the process the pid file names, and only while it is a
    configurable-http-proxy serving this hub's proxy API port. Returns its pid."""
    pid = procs.pid_in_file(pid_file)
    args = procs.cmdline(pid) if pid is not None else []
    if not args:
        return None
    is_proxy = any("configurable-http-proxy" in arg or "hubkeeper.proc.proxy" in arg
                   for arg in args)
    port = str(api_port)
    if not is_proxy or not any(arg == port or arg.endswith("=" + port) for arg in args):
        return None
    if procs.send(pid, signal.SIGTERM) and not procs.wait_until(
            lambda: not procs.alive(pid), deadline):
        procs.send(pid, signal.SIGKILL)
    log.warning("stopped the proxy (pid %d) the killed hub left behind", pid)
    return pid


class Supervisor:
    def __init__(
        self,
        loaded: LoadedSpec,
        paths: StatePaths,
        on_ready: Callable[[str], None],
        output: IO[str] | None,
        lock_fd: int | None = None,
    ) -> None:
        self.loaded = loaded
        self.paths = paths
        self.on_ready = on_ready
        self.output = output
        self.lock_fd = lock_fd
        self._stop = threading.Event()
        self._reported: set[int] = set()

    def request_stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        self._stop.set()

    def run(self) -> HubExit:
        env = dict(os.environ)
        env[CONFIG_ENV] = str(self.loaded.path)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        log_path = self.paths.logs / "hub.log"
        command = [sys.executable, "-m", "jupyterhub", "-f", str(JUPYTERHUB_CONFIG)]
        previous = {s: signal.signal(s, self.request_stop)
                    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        held = self._hold_proxy_ports()
        try:
            # The hub and every server it starts write to the log file itself, never to a pipe
            # of ours: a server adopted after we are gone must not die of a broken pipe.
            with open(log_path, "ab", buffering=0) as log_file:
                offset = log_file.tell()
                proc = subprocess.Popen(
                    command,
                    cwd=self.paths.root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_child_setup,
                    pass_fds=(self.lock_fd,) if self.lock_fd is not None else (),
                )
            done = threading.Event()
            echo = threading.Thread(target=self._echo, args=(log_path, offset, done),
                                    daemon=True)
            if self.output is not None:
                echo.start()
            try:
                return self._watch(proc)
            finally:
                done.set()
                if echo.is_alive():
                    echo.join(timeout=2)
        finally:
            held.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _hold_proxy_ports(self) -> porthold.PortHold:
        """The proxy's public and API ports, kept for our account while we run, so that no
        other account can take them between a proxy's death and its restart (porthold)."""
        spec = self.loaded.spec
        if spec.proxy.kind != "python" or spec.proxy.command:
            # Only hubkeeper.proc.proxy listens with SO_REUSEPORT, beside the reservation.
            log.warning("proxy.kind %s: the proxy's ports are not held while it restarts; "
                        "the hub log names any other account that takes them",
                        "node" if spec.proxy.kind == "node" else "python with proxy.command")
            return porthold.PortHold([], [])
        held = porthold.hold([(spec.hub.ip, spec.hub.port),
                              ("127.0.0.1", spec.proxy.api_port)])
        for address in held.refused:  # a proxy of a hub that was killed still runs: it is
            # replaced at start, and its port is then free for the next `up` to hold
            log.warning("could not hold %s for the proxy (in use); it is held from the "
                        "next start", address)
        return held

    def _check_public_port(self) -> None:
        """Say loudly, in the hub's log, if another account listens on the public port."""
        port = self.loaded.spec.hub.port
        me = effective_uid()
        for listener in peer.listeners(port):
            if listener.uid != me and listener.uid not in self._reported:
                self._reported.add(listener.uid)
                message = (f"SECURITY: uid {listener.uid} listens on the hub's public port "
                           f"{listener.address}:{port}, not the proxy: logins sent there "
                           f"(passwords too) reach that account. Stop its process "
                           f"(ss -ltnp 'sport = :{port}'); use proxy.kind: python, whose "
                           "port hubkeeper holds across proxy restarts")
                log.error("%s", message)
                with open(self.paths.logs / "hub.log", "a") as hub_log:
                    hub_log.write(f"[E hubkeeper.supervisor] {message}\n")

    def _echo(self, log_path: Path, offset: int, done: threading.Event) -> None:
        """In the foreground, show the hub's log as it grows (like tail -f)."""
        with open(log_path, "rb") as log_file:
            log_file.seek(offset)
            while True:
                chunk = log_file.read(65536)
                if chunk:
                    try:
                        assert self.output is not None
                        self.output.write(chunk.decode(errors="replace"))
                        self.output.flush()
                    except (OSError, ValueError, AssertionError):
                        return  # terminal gone; the log file has everything
                elif done.wait(0.2):
                    return

    def _watch(self, proc: subprocess.Popen[bytes]) -> HubExit:
        url = public_url(self.loaded.spec)
        spec = self.loaded.spec
        # The hub's own API first: asking through the proxy before the hub has registered its
        # route only fills the log with 404s. Then the public URL, the path users take.
        hub_api = hub_api_url(spec)
        hub_up = False
        ready = False
        started = time.monotonic()
        watch_port = spec.proxy.kind != "python" or bool(spec.proxy.command)
        next_port_check = started
        while proc.poll() is None:
            if self._stop.wait(0.25):
                return self._stop_hub(proc)
            if watch_port and time.monotonic() >= next_port_check:
                next_port_check = time.monotonic() + PORT_CHECK_EVERY
                self._check_public_port()
            if not ready:
                hub_up = hub_up or _is_ready(hub_api, "the hub's API")
                if hub_up and _is_ready(url, "the hub's proxy"):
                    ready = True
                    # In a thread: what follows readiness (the roster's sync) makes requests
                    # that may take a while, and Ctrl-C or SIGTERM must be honoured at once.
                    threading.Thread(target=self.on_ready, args=(url,), daemon=True,
                                     name="on-ready").start()
                elif time.monotonic() - started > READY_DEADLINE:
                    self._stop_hub(proc)
                    raise HubkeeperError(
                        f"the hub did not answer at {url} within {READY_DEADLINE:.0f} s",
                        hint=f"see {self.paths.logs / 'hub.log'}",
                    )
        return HubExit(requested=False, returncode=proc.returncode, stop_seconds=None,
                       killed=False)

    def _stop_hub(self, proc: subprocess.Popen[bytes]) -> HubExit:
        began = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_DEADLINE)
            killed = False
        except subprocess.TimeoutExpired:
            log.warning("the hub did not stop within %.0f s; killing it", STOP_DEADLINE)
            proc.kill()
            proc.wait()
            killed = True
            stop_orphaned_proxy(self.paths.proxy_pid, self.loaded.spec.proxy.api_port)
        return HubExit(requested=True, returncode=proc.returncode,
                       stop_seconds=time.monotonic() - began, killed=killed)
