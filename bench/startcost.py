"""startcost: CPU-seconds a single-user server needs to become ready, stock against hubkeeper.

    .venv/bin/python bench/startcost.py [--runs 10] [--out bench/results/latest-startcost.json]

    .venv/bin/python bench/startcost.py --pss 10   # memory per server, cold against warm

Starts the same JupyterLab server again and again, one at a time, in a fresh empty home:
  stock      `jupyterhub-singleuser` as JupyterHub starts it;
  hubkeeper  `python -P hubkeeper/proc/singleuser.py`, as hubkeeper starts it (see there);
  warm       forked from a warm parent (proc/warmparent.py, `servers.warm`), started once
             before the runs (its own start-up CPU is reported apart, as `warm_parent`).
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
from hubkeeper.context.runtime import SINGLEUSER, WARMPARENT  # noqa: E402
from hubkeeper.hub.warm import WarmParents, WarmProcess, fork_server  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
VENV_BIN = Path(sys.executable).parent
READY_DEADLINE = 60.0
COMMANDS = {
    "stock": [str(VENV_BIN / "jupyterhub-singleuser")],
    "hubkeeper": [sys.executable, "-P", SINGLEUSER],
    "warm": ["(forked from)", WARMPARENT],
}
ARGS = ["--allow-root", "--ServerApp.default_url=/lab"]


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


class Warm:
    """A warm parent for this venv's python, in a 0700 folder of the scratch directory."""

    def __init__(self, scratch: Path) -> None:
        folder = scratch / "warm"
        self.parents = WarmParents(str(folder), WARMPARENT)
        self.parents.ensure_folder()
        self.path = self.parents.socket_for(sys.executable)
        self.parents.launch(sys.executable, self.path)
        self.process = self.parents.running[sys.executable]
        end = time.monotonic() + READY_DEADLINE
        while not os.path.exists(self.path):
            if time.monotonic() > end or self.process.poll() is not None:
                raise RuntimeError("the warm parent did not start")
            time.sleep(0.05)
        self.cpu_seconds = cpu_seconds(self.process.pid)

    def fork(self, env: dict[str, str], home: Path, log: Path) -> WarmProcess:
        request = {"uid": os.geteuid(), "gid": os.getegid(), "groups": os.getgroups(),
                   "cwd": str(home), "env": env, "argv": [SINGLEUSER, *ARGS],
                   "as_root": os.geteuid() == 0, "cgroup_procs": []}
        with open(log, "wb") as sink:
            return fork_server(self.path, request, (sink.fileno(), sink.fileno()))

    def stop(self) -> None:
        self.parents.stop_all()
        self.process.wait(timeout=30)


def launch(key: str, hub_port: int, scratch: Path,
           warm: Warm | None) -> tuple[Any, int, Path, Path]:
    """A server started the `key` way: (its process, port, home, log)."""
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
    if key == "warm":
        assert warm is not None
        return warm.fork(env, home, log), port, home, log
    with open(log, "wb") as sink:
        server = subprocess.Popen([*COMMANDS[key], *ARGS], env=env, cwd=home, stdout=sink,
                                  stderr=subprocess.STDOUT)
    return server, port, home, log


def wait_answering(server: Any, port: int, log: Path, began: float) -> None:
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
            return
        except OSError:
            time.sleep(0.01)


def stop(server: Any, home: Path) -> None:
    if isinstance(server, WarmProcess):
        server.send_signal(15)
        end = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        server.close()
    else:
        server.terminate()
        server.wait(timeout=30)
    shutil.rmtree(home, ignore_errors=True)


def one_start(key: str, hub_port: int, scratch: Path, warm: Warm | None) -> dict[str, float]:
    began = time.monotonic()
    server, port, home, log = launch(key, hub_port, scratch, warm)
    try:
        wait_answering(server, port, log, began)
        wall = time.monotonic() - began
        cpu = cpu_seconds(server.pid)  # a warm child's own, from its fork
    finally:
        stop(server, home)
    return {"cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3)}


def pss_mib(pid: int) -> float:
    """The process's proportional set size (its share of pages it shares), MiB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss in /proc/{pid}/smaps_rollup")


def memory(count: int, hub_port: int, scratch: Path, warm: Warm) -> dict[str, float]:
    """`count` servers of each kind at once, ready: the median PSS of one, MiB (the warm
    parent's own PSS is reported apart: it is paid once per environment build)."""
    found: dict[str, float] = {}
    for key in ("hubkeeper", "warm"):
        running = []
        try:
            for _ in range(count):
                began = time.monotonic()
                server, port, home, log = launch(key, hub_port, scratch, warm)
                running.append((server, home))
                wait_answering(server, port, log, began)
            time.sleep(2)  # settle
            found[key] = round(statistics.median(pss_mib(server.pid)
                                                 for server, _ in running), 1)
            if key == "warm":
                found["warm_parent"] = round(pss_mib(warm.process.pid), 1)
            progress(f"{count} {key} servers: median PSS {found[key]:.1f} MiB")
        finally:
            for server, home in running:
                stop(server, home)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="starts of each [10]")
    parser.add_argument("--pss", type=int, default=0,
                        help="also N servers at once, cold and warm: PSS per server")
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
    warm = Warm(scratch)
    report["warm_parent_cpu_seconds"] = round(warm.cpu_seconds, 3)
    try:
        for run in range(args.runs):
            for key in COMMANDS:
                result = one_start(key, hub_port, scratch, warm)
                report["starts"][key].append(result)
                progress(f"{key:9s} #{run + 1}: {result['cpu_seconds']:.2f} CPU-s, "
                         f"{result['wall_seconds']:.2f} s")
        if args.pss:
            report["pss_mib"] = memory(args.pss, hub_port, scratch, warm)
    finally:
        warm.stop()
        hub.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    summary = {}
    for key, starts in report["starts"].items():
        summary[key] = {name: round(statistics.median(s[name] for s in starts), 3)
                        for name in ("cpu_seconds", "wall_seconds")}
    summary["ratio_cpu"] = round(summary["hubkeeper"]["cpu_seconds"]
                                 / summary["stock"]["cpu_seconds"], 2)
    summary["ratio_cpu_warm"] = round(summary["warm"]["cpu_seconds"]
                                      / summary["stock"]["cpu_seconds"], 2)
    report["median"] = summary
    finish(report, args.out, REPO)
    print(f"median CPU-s per start: stock {summary['stock']['cpu_seconds']:.2f}, hubkeeper "
          f"{summary['hubkeeper']['cpu_seconds']:.2f} (ratio {summary['ratio_cpu']}), warm "
          f"{summary['warm']['cpu_seconds']:.2f} (parent once: "
          f"{report['warm_parent_cpu_seconds']:.2f}); wall: "
          f"{summary['stock']['wall_seconds']:.2f} / "
          f"{summary['hubkeeper']['wall_seconds']:.2f} / "
          f"{summary['warm']['wall_seconds']:.2f} s; PSS MiB: {report.get('pss_mib')}\n"
          f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
