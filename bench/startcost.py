"""startcost: CPU-seconds a single-user server needs to become ready, stock against hubkeeper.

    .venv/bin/python bench/startcost.py [--runs 10] [--out bench/results/latest-startcost.json]

Starts the same JupyterLab server again and again, one at a time, in a fresh empty home:
  stock      `jupyterhub-singleuser` as JupyterHub starts it;
  hubkeeper  `python -P hubkeeper/proc/singleuser.py`, as hubkeeper starts it (see there).
Both get the environment a hub gives a server; a stand-in for the hub's API answers the
server's start-up calls. A start counts from the process's creation until its /api answers;
its CPU is the process's user+system time plus that of the children it waited for (JupyterLab
runs `node yarn.js config` when node is on PATH), from /proc. The two alternate, so that a
change in the machine's load hits both. Needs nothing but hubkeeper's venv; not root.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import jupyterhub  # noqa: E402

from bench.common import finish, machine_facts, now, progress  # noqa: E402
from hubkeeper.context.runtime import SINGLEUSER  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
VENV_BIN = Path(sys.executable).parent
READY_DEADLINE = 60.0
COMMANDS = {
    "stock": [str(VENV_BIN / "jupyterhub-singleuser")],
    "hubkeeper": [sys.executable, "-P", SINGLEUSER],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FakeHub(http.server.BaseHTTPRequestHandler):
    """What a server asks the hub while it starts (its version check): a JSON answer."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = f'{{"version": "{jupyterhub.__version__}"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICK


def one_start(command: list[str], hub_port: int, scratch: Path) -> dict[str, float]:
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="home-", dir=scratch))
    env = {**os.environ, "HOME": str(home),
           "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub_port}/hub/api",
           "JUPYTERHUB_API_TOKEN": "0" * 32, "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-ann",
           "JUPYTERHUB_USER": "ann", "JUPYTERHUB_BASE_URL": "/",
           "JUPYTERHUB_SERVICE_PREFIX": "/user/ann/",
           "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}/user/ann/",
           "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/ann/oauth_callback"}
    log = scratch / f"server-{port}.log"
    with open(log, "wb") as sink:
        began = time.monotonic()
        server = subprocess.Popen([*command, "--allow-root", "--ServerApp.default_url=/lab"],
                                  env=env, cwd=home, stdout=sink, stderr=subprocess.STDOUT)
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited {server.returncode}:\n"
                                   f"{log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() - began > READY_DEADLINE:
                raise RuntimeError(f"the server did not answer within {READY_DEADLINE:.0f} s")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/user/ann/api",
                                            timeout=2) as response:
                    response.read()
                break
            except OSError:
                time.sleep(0.01)
        wall = time.monotonic() - began
        cpu = cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return {"cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="starts of each [10]")
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench" / "results" / "latest-startcost.json")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="startcost-"))
    hub_port = free_port()
    hub = http.server.ThreadingHTTPServer(("127.0.0.1", hub_port), FakeHub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    report: dict[str, Any] = {"benchmark": "startcost", "started": now(),
                              "machine": machine_facts(REPO),
                              "parameters": {"runs": args.runs, "commands": COMMANDS},
                              "starts": {key: [] for key in COMMANDS}}
    try:
        for run in range(args.runs):
            for key, command in COMMANDS.items():
                result = one_start(command, hub_port, scratch)
                report["starts"][key].append(result)
                progress(f"{key:9s} #{run + 1}: {result['cpu_seconds']:.2f} CPU-s, "
                         f"{result['wall_seconds']:.2f} s")
    finally:
        hub.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {}
    for key, starts in report["starts"].items():
        summary[key] = {name: round(statistics.median(s[name] for s in starts), 3)
                        for name in ("cpu_seconds", "wall_seconds")}
    summary["ratio_cpu"] = round(summary["hubkeeper"]["cpu_seconds"]
                                 / summary["stock"]["cpu_seconds"], 2)
    report["median"] = summary
    finish(report, args.out, REPO)
    print(f"median CPU-s per start: stock {summary['stock']['cpu_seconds']:.2f}, hubkeeper "
          f"{summary['hubkeeper']['cpu_seconds']:.2f} (ratio {summary['ratio_cpu']}); "
          f"wall: {summary['stock']['wall_seconds']:.2f} / "
          f"{summary['hubkeeper']['wall_seconds']:.2f} s\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
