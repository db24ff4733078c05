"""Is this hub running, and stopping it: the `hubkeeper up` that holds the state directory's
hub lock, and a proxy a killed hub left behind (for `retire`, `service install`, `doctor`)."""

from __future__ import annotations

import logging
import signal

from hubkeeper.base import procs
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.locks import HubLock
from hubkeeper.state.statedir import StatePaths

log = logging.getLogger(__name__)
HUB_STOP_DEADLINE = 30.0  # `up` gives the hub 10 s, then kills it; this leaves a margin


def running_hub(paths: StatePaths) -> int | None:
    """The pid of the `hubkeeper up` holding this state directory's lock (0: held, pid
    unknown), or None when no hub runs."""
    lock = HubLock(paths)
    try:
        lock.check_free()
    except HubkeeperError:
        return lock.holder() or 0
    return None


def stop_hub(paths: StatePaths, deadline: float = HUB_STOP_DEADLINE) -> int | None:
    """SIGTERM the running hub's `up` (it stops the hub, proxy and servers) and wait until
    the lock is free. Returns the pid stopped, None when none ran."""
    pid = running_hub(paths)
    if pid is None:
        return None
    argv = procs.cmdline(pid) if pid else []
    if "up" in argv and any("hubkeeper" in part for part in argv):
        log.info("stopping the hub: SIGTERM to pid %s", pid)
        procs.send(pid, signal.SIGTERM)
    elif argv:  # alive, and not a `hubkeeper up`: never signalled
        raise HubkeeperError(f"{paths.lock} is held by pid {pid} ({' '.join(argv)[:100]}), "
                             "not by a `hubkeeper up`",
                             hint="let it finish (or stop it), then retire again")
    # else: `up` is gone and its hub, which inherited the lock, is dying with it
    if not procs.wait_until(lambda: running_hub(paths) is None, deadline):
        raise HubkeeperError(
            f"the hub on {paths.root} (pid {pid or 'unknown'}) did not stop within "
            f"{deadline:.0f} s", hint=f"stop it by hand (kill -TERM {pid or '<pid>'}, then "
            "kill -KILL if it hangs) and run `hubkeeper retire --yes` again")
    return pid


def orphan_proxy(paths: StatePaths, api_port: int) -> int | None:
    """A proxy left running by a hub that was killed: the pid in run/proxy.pid, if that
    process is a proxy listening for this hub's API port."""
    pid = procs.pid_in_file(paths.proxy_pid)
    if pid is None:
        return None
    argv = procs.cmdline(pid)
    if any("proxy" in part for part in argv) and str(api_port) in argv:
        return pid
    return None
