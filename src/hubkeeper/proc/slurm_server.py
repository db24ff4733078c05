"""Run inside a server's Slurm job, by the environment's python: choose a free port on the
node, tell the hub (batchspawner's API endpoint, `<hub api>/batchspawner`, authenticated with
the server's own token), then become the single-user server on that port (proc/singleuser.py,
by path).

The hub cannot choose the port: it does not know which node the job lands on, nor what is
free there. batchspawner's own wrapper looks its command up on PATH, which would find
hubkeeper's jupyterhub-singleuser rather than the environment's interpreter; this one keeps
the interpreter it was started with (sys.executable), so kernels run from the environment.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

REPORT_DEADLINE = 60.0  # seconds to reach the hub before giving up (the job then ends)


def free_port() -> int:
    """A port free on this node now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def report_port(port: int, environ: dict[str, str]) -> None:
    """POST {"port": port} to the hub until it answers, within REPORT_DEADLINE."""
    url = environ["JUPYTERHUB_API_URL"].rstrip("/") + "/batchspawner"
    request = urllib.request.Request(
        url, data=json.dumps({"port": port}).encode(), method="POST",
        headers={"Authorization": f"token {environ['JUPYTERHUB_API_TOKEN']}",
                 "Content-Type": "application/json"})
    end = time.monotonic() + REPORT_DEADLINE
    delay = 0.5
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
                return
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() + delay > end:
                raise SystemExit(f"hubkeeper: cannot tell the hub at {url} this server's "
                                 f"port: {exc}") from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def with_port(service_url: str, port: int) -> str:
    """JUPYTERHUB_SERVICE_URL with the chosen port (the hub wrote port 0 there)."""
    parts = urllib.parse.urlsplit(service_url)
    host = parts.hostname or "0.0.0.0"
    if ":" in host:
        host = f"[{host}]"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def main(argv: list[str]) -> None:
    port = free_port()
    report_port(port, dict(os.environ))
    os.environ["JUPYTERHUB_SERVICE_URL"] = with_port(
        os.environ.get("JUPYTERHUB_SERVICE_URL", "http://0.0.0.0:0/"), port)
    # The server's own start script, next to this one (proc/singleuser.py).
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "singleuser.py")
    os.execv(sys.executable, [sys.executable, "-P", script, *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
