"""The local spawner's stop when a server does not act on SIGINT: SIGTERM follows after the
spawner's interrupt_timeout (2 s, not JupyterHub's 10), so a culled or stopped server whose
SIGINT was lost still goes promptly, and cleanly."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

from jupyterhub.spawner import LocalProcessSpawner

from hubkeeper.hub.spawner import LocalSpawner

DEAF_TO_SIGINT = ("import signal, time\n"
                  "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                  "print('ready', flush=True)\n"
                  "time.sleep(120)\n")


def test_a_server_that_ignores_sigint_is_stopped_by_sigterm() -> None:
    spawner = LocalSpawner()
    assert spawner.interrupt_timeout == 2 < LocalProcessSpawner().interrupt_timeout
    proc = subprocess.Popen([sys.executable, "-c", DEAF_TO_SIGINT], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        spawner.pid = proc.pid
        spawner.proc = proc
        # JupyterHub's own stop (hubkeeper's adds the cgroup's removal): SIGINT, wait, SIGTERM
        asyncio.run(LocalProcessSpawner.stop(spawner))
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
