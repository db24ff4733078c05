"""dockerbench: spawn latency and a login storm, hubkeeper's backend docker against backend local.

    .venv/bin/python bench/dockerbench.py [--quick] [--out bench/results/latest-docker.json]

Needs root and a Docker engine (the Debian one: /usr/bin/docker). Both targets are
hubkeeper in system mode with the Python proxy, PAM login, the same accounts
(<prefix>01..<prefix>30) and one environment `nb`, so both seed ~/nb/ and start there:

  local   backend: local, `nb` a venv with no packages of its own (JupyterLab from
          hubkeeper's venv);
  docker  backend: docker, `nb` built by `hubkeeper env build` from a Debian image with a
          venv of the same jupyterhub and jupyterlab versions (tests/support/docker.py),
          and Debian's nodejs, because the host has node: JupyterLab runs
          `node yarn.js config` at every server start when node is on PATH (about 0.4
          CPU-s), so an image without it would be spared work the local servers do.
          --no-node-in-image measures that image.

`env build` runs for both before the hub starts and before anything is timed. The phases
(warm-up, sequential, storm) are hubbench.run_target's. This adds, per phase, the CPU time
of the whole machine, of the Docker engine (dockerd, containerd, shims, runc) and of the
containers' processes (which live outside this benchmark's process tree), and for the
docker target a timeline of each container from `docker events` and the hub's log: when
the spawn began, the container was created and started, each `docker exec` step, and when
the server was ready.

Cleans up (at the start too, after a crashed run): the accounts, containers labelled
hubkeeper.hub=<prefix>-docker, images hubkeeper/<prefix>-*, work directories
/tmp/<prefix>-*. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import hubbench as hb  # noqa: E402
from bench.common import (  # noqa: E402
    finish,
    now,
    output_of,
    progress,
    unwind_on_sigterm,
    write_json,
)
from tests.support.docker import DOCKER, notebook_context  # noqa: E402
from tests.support.hubproc import HUBKEEPER  # noqa: E402

PREFIX = "hkdkb"
ENVIRONMENT = "nb"
LOCAL, DOCKER_TARGET = "local", "docker"
BUILD_DEADLINE = 1800.0
# comm (15 characters at most) of the engine's processes; containerd-shim-runc-v2 is cut
ENGINE_COMMS = ("dockerd", "containerd", "containerd-shim", "runc", "docker-proxy")


def hub_name(kind: str) -> str:
    return f"{hb.ACCOUNT_PREFIX}-{kind}"


# ----------------------------------------------------------------------------- CPU


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return [text[text.index("(") + 1:text.rindex(")")], *text[text.rindex(")") + 2:].split()]


def machine_busy_ticks() -> int:
    """CPU ticks all CPUs spent busy since boot: user, nice, system, irq, softirq (not idle,
    iowait or steal)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return values[0] + values[1] + values[2] + values[5] + values[6]


class EngineLoad(hb.ForeignLoad):
    """ForeignLoad that also counts, among the processes outside this benchmark's tree,
    the Docker engine's (dockerd, containerd, the shims, runc seen alive) and the bench
    accounts' processes under a containerd shim (the docker target's servers and kernels);
    the bench accounts' processes wherever they run (servers and kernels on either
    backend); and the whole machine's busy time (exact, from /proc/stat). Sampled once a second, so
    processes that live less (most runc calls, the exec'd steps) are missed: they count in
    the machine's time only. Children's time reaped by a shim is not counted: a shim reaps
    the container's init, which would count the servers twice. The engine serves every
    client: another user of it during a phase shows up here too."""

    def __init__(self, uids: set[int], interval: float = 1.0) -> None:
        super().__init__(interval)
        self.uids = uids
        self.engine = 0
        self.servers = 0  # the bench accounts' processes, on either backend
        self.containers = 0  # those of them under a shim (outside our tree)
        self._seen: dict[tuple[str, int], tuple[int, str]] = {}
        self._first = True
        self._lock = threading.Lock()

    def _sample(self) -> None:
        with self._lock:
            super()._sample()
            self._classify()

    def _classify(self) -> None:
        # pid -> (ppid, comm, user+system ticks, start time, uid)
        rows: dict[int, tuple[int, str, int, str, int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = _stat_fields(entry.name)
            try:
                uid = entry.stat().st_uid
            except OSError:
                continue
            if fields is None:
                continue
            # fields[1] is proc(5) field 3 (state): ppid 4, utime 14, stime 15, start 22
            rows[int(entry.name)] = (int(fields[2]), fields[0],
                                     int(fields[12]) + int(fields[13]), fields[20], uid)

        def under_shim(pid: int) -> bool:
            for _ in range(64):
                row = rows.get(pid)
                if row is None or pid <= 1:
                    return False
                if row[1].startswith("containerd-shim"):
                    return True
                pid = row[0]
            return False

        current: dict[tuple[str, int], tuple[int, str]] = {}
        for pid, (_, comm, own, start, uid) in rows.items():
            if comm.startswith(ENGINE_COMMS):
                current[("engine", pid)] = (own, start)
            elif uid in self.uids:
                current[("servers", pid)] = (own, start)
                if under_shim(pid):
                    current[("containers", pid)] = (own, start)
        if not self._first:
            for key, (ticks, start) in current.items():
                before = self._seen.get(key)
                grown = ticks - before[0] if before is not None and before[1] == start else ticks
                setattr(self, key[0], getattr(self, key[0]) + grown)
        self._first = False
        self._seen = current

    def counters(self) -> dict[str, int]:
        self._sample()  # exact at the phase's edges, not up to a second old
        return {"machine": machine_busy_ticks(), "engine": self.engine,
                "servers": self.servers, "containers": self.containers}


# ----------------------------------------------------------------------------- the engine


def docker_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)


def remove_containers() -> list[str]:
    """Every container of this run's docker hub (label hubkeeper.hub), running or not."""
    found = docker_cli("ps", "-aq", "--filter", f"label=hubkeeper.hub={hub_name(DOCKER_TARGET)}")
    ids = found.stdout.split()
    if ids:
        docker_cli("rm", "-f", *ids)
    return ids


def remove_images() -> list[str]:
    """Images tagged hubkeeper/<prefix>-*: what `env build` made for this run's hubs."""
    listed = docker_cli("images", "--format", "{{.Repository}}:{{.Tag}}",
                        f"hubkeeper/{hb.ACCOUNT_PREFIX}-*")
    tags = [t for t in listed.stdout.split()
            if t.startswith(f"hubkeeper/{hb.ACCOUNT_PREFIX}-")]
    if tags:
        docker_cli("rmi", *tags)
    return tags


def remove_workdirs(keep: Path | None) -> list[str]:
    """/tmp/<prefix>-*: the hubs' work directories (of a crashed run too), the logs."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{hb.WORKDIR_PREFIX}-*"):
        if keep is not None and keep.resolve().is_relative_to(path.resolve()):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


class EngineEvents:
    """`docker events` for one hub's containers (label hubkeeper.hub), into a file."""

    def __init__(self, hub: str, path: Path) -> None:
        self.path = path
        with open(path, "wb") as sink:
            self.proc = subprocess.Popen(
                [DOCKER, "events", "--filter", f"label=hubkeeper.hub={hub}",
                 "--format", "{{json .}}"],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def close(self) -> list[dict[str, Any]]:
        time.sleep(1)  # the last events (a destroy) may still be on their way
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        events = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


# ----------------------------------------------------------------------------- targets


LOCAL_EXTRA = f"""\
environments:
  {ENVIRONMENT}: {{}}
"""
DOCKER_EXTRA = f"""\
backend: docker
environments:
  {ENVIRONMENT}:
    build: {{context: image, trust_host_ca: true}}
"""


NODEJS = ("RUN apt-get update && apt-get install -y --no-install-recommends nodejs "
          "&& rm -rf /var/lib/apt/lists/*")
# versions inside the image, to compare with the host's (machine())
IMAGE_VERSIONS = ("import json, platform, shutil, importlib.metadata as m; print(json.dumps("
                  "{'python': platform.python_version(), 'node': shutil.which('node'), "
                  "**{p: m.version(p) for p in ('jupyterhub', 'jupyterlab', 'jupyter_server',"
                  " 'ipykernel', 'tornado')}}))")


class Prepared:
    """What happened before a target's hub started: `env build` and, for docker, the
    image and the recorder of engine events."""

    def __init__(self, logs: Path, node_in_image: bool) -> None:
        self.logs = logs  # survives run_target, which removes the hub's work directory
        self.node_in_image = node_in_image
        self.build: dict[str, dict[str, Any]] = {}
        self.events: EngineEvents | None = None

    def env_build(self, key: str, config: Path) -> None:
        # mkdtemp made it 0700: the accounts must reach the local environment's venv
        config.parent.chmod(0o755)
        if key == DOCKER_TARGET:
            notebook_context(config.parent / "image", *([NODEJS] if self.node_in_image else []))
        began = time.monotonic()
        done = subprocess.run([HUBKEEPER, "--config", str(config), "env", "build"],
                              capture_output=True, text=True, timeout=BUILD_DEADLINE)
        record: dict[str, Any] = {"seconds": round(time.monotonic() - began, 1),
                                  "exit": done.returncode}
        self.build[key] = record
        if done.returncode != 0:
            raise hb.BenchError(f"hubkeeper env build ({key}) exited {done.returncode}:\n"
                                + (done.stdout + done.stderr)[-3000:])
        if key == DOCKER_TARGET:
            image = json.loads((config.parent / "state" / "envs" / ENVIRONMENT /
                                "image.json").read_text())
            inspect = json.loads(docker_cli("image", "inspect", image["id"]).stdout)[0]
            record.update(tag=image["tag"], id=image["id"], size_mb=round(
                inspect["Size"] / 1e6), layers=len(inspect["RootFS"]["Layers"]))
            versions = docker_cli("run", "--rm", "--network", "none", "--entrypoint",
                                  "/opt/env/bin/python", image["id"], "-c", IMAGE_VERSIONS)
            record["inside"] = (json.loads(versions.stdout) if versions.returncode == 0
                                else versions.stderr[-500:])
            self.events = EngineEvents(hub_name(key), self.logs / f"{key}-events.jsonl")


def targets(prepared: Prepared, order: list[str]) -> list[hb.Target]:
    def start(key: str, extra: str):  # noqa: ANN202
        return lambda workdir: hb.start_hubkeeper(
            workdir, "python", name=hub_name(key), extra=extra,
            prepare=lambda config: prepared.env_build(key, config))

    known = {LOCAL: hb.Target(LOCAL, "hubkeeper, backend local", start(LOCAL, LOCAL_EXTRA)),
             DOCKER_TARGET: hb.Target(DOCKER_TARGET, "hubkeeper, backend docker",
                                      start(DOCKER_TARGET, DOCKER_EXTRA))}
    return [known[key] for key in order]


# ----------------------------------------------------------------------------- timelines


HUB_LOG_LINE = re.compile(r"^\[(?P<level>\w) (?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) "
                          r"[^\]]*\] (?P<message>.*)$")
TOOK = re.compile(r"User (?P<user>\S+) took (?P<seconds>[\d.]+) seconds to start")
SPAWNING = re.compile(r"^Spawning ")


def hub_log_spawns(path: Path) -> list[dict[str, Any]]:
    """From the hub's log: each spawn's begin and end (unix time) and, on the local backend,
    when the server process was started ("Spawning ..."), in order."""
    spawns: list[dict[str, Any]] = []
    spawning: list[float] = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return spawns
    for line in lines:
        match = HUB_LOG_LINE.match(line)
        if not match:
            continue
        stamp = time.mktime(time.strptime(match["stamp"][:19], "%Y-%m-%d %H:%M:%S")) + float(
            match["stamp"][19:])
        took = TOOK.search(match["message"])
        if took:
            spawns.append({"user": took["user"], "end": stamp,
                           "begin": stamp - float(took["seconds"])})
        elif SPAWNING.match(match["message"]):
            spawning.append(stamp)
    for spawn in spawns:  # the "Spawning" line of a spawn lies between its begin and end
        inside = [s for s in spawning if spawn["begin"] - 0.01 <= s <= spawn["end"]]
        if inside:
            spawn["process"] = inside[0]
    return spawns


def container_timelines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per container: unix times of create, start, each exec (start, end,
    command, exit code), kill and destroy."""
    containers: dict[str, dict[str, Any]] = {}
    execs: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: e.get("timeNano", 0)):
        if event.get("Type") != "container":
            continue
        actor = event.get("Actor", {})
        attributes = actor.get("Attributes", {})
        at = event["timeNano"] / 1e9
        entry = containers.setdefault(actor.get("ID", ""), {
            "user": attributes.get("hubkeeper.user"), "execs": []})
        action = event.get("Action") or event.get("status") or ""
        verb, _, command = action.partition(": ")
        if verb in ("create", "start", "kill", "die", "destroy"):
            entry.setdefault(verb, at)
        elif verb == "exec_create":
            execs[attributes.get("execID", "")] = item = {"command": command[:60],
                                                          "created": at}
            entry["execs"].append(item)
        elif verb == "exec_start":
            execs.get(attributes.get("execID", ""), {})["started"] = at
        elif verb == "exec_die":
            item = execs.get(attributes.get("execID", ""), {})
            item["ended"] = at
            item["exit"] = attributes.get("exitCode")
    return sorted((c for c in containers.values() if "create" in c), key=lambda c: c["create"])


def phase_of(at: float, phases: dict[str, float]) -> str | None:
    """The phase (by its start time) a moment belongs to."""
    current = None
    for name, began in sorted(phases.items(), key=lambda item: item[1]):
        if at >= began - 0.5:
            current = name
    return current


def anatomy(result: dict[str, Any], spawns: list[dict[str, Any]],
            containers: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Each phase's spawns cut into steps (seconds), matched by user and time: hub work
    before the server or container, the container's create and start, the exec steps, and
    from then until JupyterHub saw the server answer."""
    phases = {name: load["began_unix"] for name, load in result.get("machine_load", {}).items()
              if "began_unix" in load}
    rows: dict[str, list[dict[str, float]]] = {}
    used: set[int] = set()
    for spawn in spawns:
        phase = phase_of(spawn["begin"], phases)
        if phase is None:
            continue
        row: dict[str, float] = {"total": spawn["end"] - spawn["begin"]}
        if "process" in spawn:
            row["before_server"] = spawn["process"] - spawn["begin"]
            row["server_until_ready"] = spawn["end"] - spawn["process"]
        for index, box in enumerate(containers or []):
            if index in used or box["user"] != spawn["user"]:
                continue
            if not spawn["begin"] - 0.5 <= box["create"] <= spawn["end"]:
                continue
            used.add(index)
            execs = [e for e in box["execs"] if "ended" in e and e["ended"] <= spawn["end"]]
            row["before_create"] = box["create"] - spawn["begin"]
            if "start" in box:
                row["create_to_start"] = box["start"] - box["create"]
            if execs and "start" in box:
                row["start_to_last_exec"] = execs[-1]["ended"] - box["start"]
                row["execs"] = len(execs)
                row["exec_running"] = sum(e["ended"] - e.get("started", e["created"])
                                          for e in execs)
                row["last_exec_to_ready"] = spawn["end"] - execs[-1]["ended"]
            if "kill" in box and "destroy" in box:
                row["kill_to_destroy"] = box["destroy"] - box["kill"]
            break
        rows.setdefault(phase, []).append(row)
    out: dict[str, Any] = {}
    for phase, items in rows.items():
        keys = sorted({k for item in items for k in item})
        out[phase] = {key: hb.stats([item[key] for item in items if key in item])
                      for key in keys}
    return out


# ----------------------------------------------------------------------------- report


def cpu_summary(result: dict[str, Any], phase: str, users: int) -> dict[str, Any]:
    load = result.get("machine_load", {}).get(phase)
    if not load or not users:
        return {}
    foreign = load.get("foreign_cpu_seconds", 0.0)
    engine = load.get("engine_cpu_seconds", 0.0)
    containers = load.get("containers_cpu_seconds", 0.0)
    others = max(0.0, foreign - engine - containers)
    machine = load.get("machine_cpu_seconds")
    ours = None if machine is None else machine - others
    return {
        "machine_cpu_seconds": machine, "others_cpu_seconds": round(others, 2),
        "engine_cpu_seconds": engine, "containers_cpu_seconds": containers,
        "hub_cpu_seconds": load.get("hub_cpu_seconds"),
        "servers_cpu_seconds": load.get("servers_cpu_seconds"),
        "per_user": None if ours is None else round(ours / users, 2),
        "servers_per_user": None if load.get("servers_cpu_seconds") is None else round(
            load["servers_cpu_seconds"] / users, 2),
        "engine_per_user": round(engine / users, 2),
        "hub_per_user": None if load.get("hub_cpu_seconds") is None else round(
            load["hub_cpu_seconds"] / users, 2),
        "others_share": round(others / (load["wall"] * len(os.sched_getaffinity(0))), 3)
        if load.get("wall") else None,
    }


def stop_summary(result: dict[str, Any]) -> dict[str, Any]:
    """How long `stop_server` took (the hub's DELETE until the server is gone), per phase;
    for the storm also the wall time of all stops at once."""
    out: dict[str, Any] = {}
    for phase in ("sequential", "storm"):
        records = result.get(phase, {}).get("records", [])
        out[phase] = hb.stats([r["stop"] for r in records if r.get("stop") is not None])
    out["storm_wall"] = result.get("storm", {}).get("stop_wall")
    return out


def ratios(report: dict[str, Any]) -> dict[str, float | None]:
    """docker / local for each figure of the tables (above 1: docker slower or costlier)."""
    local = report["targets"].get(LOCAL, {})
    docker = report["targets"].get(DOCKER_TARGET, {})
    out: dict[str, float | None] = {}
    for phase in ("sequential", "storm"):
        for metric in ("spawn", "first_result"):
            for p in ("p50", "p95", "max"):
                out[f"{phase}.{metric}.{p}"] = hb._ratio(
                    docker.get(phase, {}).get(metric, {}).get(p),
                    local.get(phase, {}).get(metric, {}).get(p))
        out[f"{phase}.cpu_per_user"] = hb._ratio(
            docker.get("cpu", {}).get(phase, {}).get("per_user"),
            local.get("cpu", {}).get(phase, {}).get("per_user"))
        out[f"{phase}.stop.p50"] = hb._ratio(
            docker.get("stops", {}).get(phase, {}).get("p50"),
            local.get("stops", {}).get(phase, {}).get("p50"))
    out["storm.stop_wall"] = hb._ratio(docker.get("stops", {}).get("storm_wall"),
                                       local.get("stops", {}).get("storm_wall"))
    return out


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    p = report["parameters"]
    table = Table(title=f"backend docker vs local: {p['sequential_users']} sequential users, "
                        f"{p['storm_users']} in a storm over {p['storm_window']:.0f} s "
                        "(seconds; CPU-s per user visit)")
    for column in ("target", "seq ok", "spawn p50", "p95", "1+1 p50", "p95", "stop p50",
                   "CPU-s/user", "servers", "storm ok", "1+1 p50", "p95", "max",
                   "spawn p50", "all stops", "CPU-s/user", "servers", "other CPU"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for key, result in report["targets"].items():
        s, st = result.get("sequential", {}), result.get("storm", {})
        cpu = result.get("cpu", {})

        def get(section: dict[str, Any], metric: str, q: str) -> str:
            return hb._fmt(section.get(metric, {}).get(q))

        share = cpu.get("storm", {}).get("others_share")
        table.add_row(
            key, f"{s.get('ok', '-')}/{s.get('users', '-')}",
            get(s, "spawn", "p50"), get(s, "spawn", "p95"),
            get(s, "first_result", "p50"), get(s, "first_result", "p95"),
            hb._fmt(result.get("stops", {}).get("sequential", {}).get("p50")),
            hb._fmt(cpu.get("sequential", {}).get("per_user")),
            hb._fmt(cpu.get("sequential", {}).get("servers_per_user")),
            f"{st.get('ok', '-')}/{st.get('users', '-')}",
            get(st, "first_result", "p50"), get(st, "first_result", "p95"),
            get(st, "first_result", "max"), get(st, "spawn", "p50"),
            hb._fmt(result.get("stops", {}).get("storm_wall")),
            hb._fmt(cpu.get("storm", {}).get("per_user")),
            hb._fmt(cpu.get("storm", {}).get("servers_per_user")),
            "-" if share is None else f"{share:.0%}")
    console.print(table)
    r = report.get("ratios", {})
    console.print("docker / local: " + ", ".join(
        f"{k} {hb._fmt(v)}" for k, v in r.items() if v is not None))
    docker = report["targets"].get(DOCKER_TARGET, {})
    for phase, steps in docker.get("anatomy", {}).items():
        console.print(f"docker {phase}: " + ", ".join(
            f"{k} {hb._fmt(v['p50'])}" for k, v in steps.items()))
    for key, result in report["targets"].items():
        if result.get("error"):
            console.print(f"{key}: ERROR {result['error'][:300]}")


# ----------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    facts = hb.machine()
    version = docker_cli("version", "--format", "{{.Server.Version}}")
    info = docker_cli("info", "--format",
                      "{{.Driver}} {{.CgroupDriver}} cgroup-v{{.CgroupVersion}} "
                      "{{.DefaultRuntime}}")
    return {**facts, "docker_engine": version.stdout.strip() or None,
            "docker_info": info.stdout.strip() or None,
            "dockerspawner": hb._version("dockerspawner"),
            "docker_py": hb._version("docker")}


def cleanup(note: str, keep: Path | None) -> dict[str, list[str]]:
    """Everything this benchmark makes; `keep`: the --keep-logs directory."""
    done = {"containers": remove_containers(), "images": remove_images(),
            "accounts": hb.delete_accounts(), "workdirs": remove_workdirs(keep)}
    if any(done.values()):
        progress(f"{note}: removed " + ", ".join(f"{len(v)} {k}" for k, v in done.items()))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 2 sequential and 4 storm users")
    parser.add_argument("--sequential", type=int, default=8, metavar="N",
                        help="users one after another [8]")
    parser.add_argument("--storm", type=int, default=20, metavar="M",
                        help="users in the login storm (at most 29) [20]")
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench" / "results" / "latest-docker.json",
                        help="where to write the JSON results [bench/results/latest-docker.json]")
    parser.add_argument("--seed", type=int, default=hb.SEED, help="seed of the storm arrivals")
    parser.add_argument("--quiet-wait", type=float, default=900, metavar="SECONDS",
                        help="before each phase, wait up to this long for other work on the "
                             "machine to stop (0: do not wait) [900]")
    parser.add_argument("--order", default=f"{LOCAL},{DOCKER_TARGET}",
                        help=f"the targets, in the order they run [{LOCAL},{DOCKER_TARGET}]")
    parser.add_argument("--no-node-in-image", dest="node_in_image", action="store_false",
                        help="build the image without nodejs (the host has node)")
    parser.add_argument("--prefix", default=PREFIX,
                        help="accounts <prefix>01..30, hubs <prefix>-local and "
                             f"<prefix>-docker, /tmp/<prefix>-* [{PREFIX}]")
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR",
                        help="keep each target's hub log and the engine events in DIR "
                             "(default: a temporary directory, removed at the end)")
    args = parser.parse_args(argv)
    n_seq, n_storm = (2, 4) if args.quick else (args.sequential, args.storm)
    if not 1 <= n_seq <= 29 or not 1 <= n_storm <= 29:
        parser.error("--sequential and --storm: 1 to 29 users")
    order = [key.strip() for key in args.order.split(",") if key.strip()]
    if not order or set(order) - {LOCAL, DOCKER_TARGET} or len(set(order)) != len(order):
        parser.error(f"--order: {LOCAL} and/or {DOCKER_TARGET}, each once")

    unwind_on_sigterm()
    try:
        hb.use_prefix(args.prefix)
        hb.preflight([])
        if not Path(DOCKER).exists() or output_of([DOCKER, "version"]) is None:
            raise hb.BenchError(f"the Docker engine does not answer to {DOCKER} version")
    except hb.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    cleanup("before the run", args.keep_logs)  # leftovers of a crashed run
    logs = args.keep_logs or Path(tempfile.mkdtemp(prefix=f"{hb.WORKDIR_PREFIX}-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    prepared = Prepared(logs, args.node_in_image)
    report: dict[str, Any] = {
        "benchmark": "dockerbench",
        "started": now(),
        "complete": False,
        "machine": machine(),
        "parameters": {"quick": args.quick, "sequential_users": n_seq, "storm_users": n_storm,
                       "storm_window": hb.STORM_WINDOW, "seed": args.seed, "proxy": "python",
                       "environment": ENVIRONMENT, "prefix": args.prefix,
                       "node_in_image": args.node_in_image, "order": order,
                       "percentiles": "linear interpolation between closest ranks, over "
                                      "users that got a result",
                       "homes": "reset to /etc/skel before each phase",
                       "quiet_wait": args.quiet_wait},
        "targets": {},
    }
    try:
        hb.create_accounts(hb.ACCOUNTS)
        uids = {pwd.getpwnam(name).pw_uid for name in hb.ACCOUNTS}
        progress(f"accounts {hb.ACCOUNTS[0]}..{hb.ACCOUNTS[-1]} ready")
        with EngineLoad(uids) as load:
            for target in targets(prepared, order):
                # the hub's log lands in `logs` (run_target copies it there)
                result = hb.run_target(target, n_seq, n_storm, args.seed, args.quiet_wait,
                                       load, logs, progress)
                result["env_build"] = prepared.build.get(target.key)
                events = None
                if prepared.events is not None:
                    events = prepared.events.close()
                    prepared.events = None
                    result["leftover_containers"] = remove_containers()
                result["anatomy"] = anatomy(
                    result, hub_log_spawns(logs / f"{target.key}-hub.log"),
                    container_timelines(events) if events is not None else None)
                result["cpu"] = {"warmup": cpu_summary(result, "warmup", 1),
                                 "sequential": cpu_summary(result, "sequential", n_seq),
                                 "storm": cpu_summary(result, "storm", n_storm)}
                result["stops"] = stop_summary(result)
                report["targets"][target.key] = result
                report["ratios"] = ratios(report)
                write_json(args.out, report)
                time.sleep(5)  # let the machine settle between targets
        report["complete"] = all("error" not in t for t in report["targets"].values())
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        report["interrupted"] = True
    finally:
        if prepared.events is not None:
            prepared.events.close()
        report["cleanup"] = cleanup("after the run", args.keep_logs)
        report["ratios"] = ratios(report)
        finish(report, args.out, REPO)
    print_report(report)
    print(f"\nJSON: {args.out}")
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
