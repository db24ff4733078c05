"""stormbench: a class logging in at once, against hubkeeper and stock JupyterHub.

    .venv/bin/python bench/stormbench.py [--sizes 20,40,60] [--quick]
    .venv/bin/python bench/stormbench.py --plot-only bench/results/<date>-stormbench.json

Needs root: every target runs in system mode (accounts <prefix>01..<prefix>61, created here
and deleted at the end; the 61st warms each hub up). For each target, one hub, and for each
class size N in --sizes: every home reset to /etc/skel, then N students arrive at times
spread uniformly at random over N seconds (fixed seed): each logs in through the form,
starts their server, opens it, starts a kernel and runs `1+1` (tests/support/simuser.py).
Time to first result is from the student's arrival to `2`. When every student is done, all
servers stop and the next size begins.

Targets, in one run:
  stock              JupyterHub with its defaults (hubbench's stock: the same spawner, proxy
                     and server, JupyterHub's own timeouts and no line);
  hubkeeper          hubkeeper as it is: starts wait in its line (starts.at_once: auto);
  hubkeeper-warm     hubkeeper with servers.warm: each server forked from a warm parent; no
                     prewarm;
  hubkeeper-warm-kernels  the same with servers.warm_kernels: each kernel forked from its
                     server's kernel parent (started at the server's first kernel);
  hubkeeper-prewarm  the same hub, after `hubkeeper prewarm --user ...` started the class's
                     servers before the first student arrived (timed separately);
  hubkeeper-docker   hubkeeper with backend docker (dockerbench's image), at --docker-sizes.

For each storm: failures, time to first result (p50/p95/max), the machine's CPU-seconds
while the students were at it (/proc/stat: all processes, this benchmark's simulated
browsers too) per student, and the lower bound the machine allows: those CPU-seconds / its
CPUs, the time the work takes with every CPU busy; the last student cannot be served
earlier. Results: a table, JSON (--out) and a plot of each student's time (--plot).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import hubbench as hb  # noqa: E402
from bench.common import (  # noqa: E402
    finish,
    machine_facts,
    now,
    progress,
    unwind_on_sigterm,
    write_json,
)
from tests.support.hubproc import HUBKEEPER  # noqa: E402
from tests.support.simuser import SimUser  # noqa: E402

PREFIX = "hkst"
CLASS_MAX = 60
STOCK, HUBKEEPER_TARGET, PREWARM, DOCKER = ("stock", "hubkeeper", "hubkeeper-prewarm",
                                            "hubkeeper-docker")
FORKED = "hubkeeper-warm"  # servers forked from a warm parent, no prewarm
FORKED_KERNELS = "hubkeeper-warm-kernels"  # and each kernel from its server's kernel parent
TARGET_KEYS = (STOCK, HUBKEEPER_TARGET, FORKED, FORKED_KERNELS, PREWARM, DOCKER)
PREWARM_DEADLINE = 1800.0
SETTLE = 5.0  # seconds between storms, for the stops' after-effects
STAT_FIELDS = 8  # user nice system idle iowait irq softirq steal


def busy_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    values = values[:STAT_FIELDS]
    return sum(values) - values[3] - values[4], sum(values)


def cpu_seconds_since(before: tuple[int, int]) -> float:
    busy, _ = busy_ticks()
    return (busy - before[0]) / hb.CLOCK_TICKS


async def class_storm(url: str, password: str, names: tuple[str, ...], window: float,
                      seed: int) -> dict[str, Any]:
    """The students arrive over `window` s; returns their records, the machine's CPU while
    they were at it, and how long until the last one was done. Then every server stops."""
    rng = random.Random(seed)
    arrivals = sorted(rng.uniform(0, window) for _ in names)
    users = [SimUser(url, name, password) for name in names]
    try:
        ticks = busy_ticks()
        began = time.monotonic()

        async def arrive(user: SimUser, at: float) -> None:
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            await hb.run_journey(user)
            t = user.timings
            progress(f"    {user.name} (t+{at:5.1f} s): first result "
                     f"{hb._fmt(t.first_result)} s" + (f", ERROR {t.error}" if t.error else ""))

        await asyncio.gather(*(arrive(u, a) for u, a in zip(users, arrivals, strict=True)))
        makespan = time.monotonic() - began
        cpu = cpu_seconds_since(ticks)
        stops = await asyncio.gather(*(hb.run_stop(u) for u in users))
    finally:
        for user in users:
            await user.session.close()
    records = [hb._record(u, arrival=round(a, 2), stop_error=e)
               for u, a, (_, e) in zip(users, arrivals, stops, strict=True)]
    return {"records": records, "makespan": makespan, "cpu_seconds": cpu}


def storm_summary(outcome: dict[str, Any], cpus: int) -> dict[str, Any]:
    records = outcome["records"]
    summary = hb.summarize(records)
    ok = summary["ok"]
    bound = outcome["cpu_seconds"] / cpus
    p95 = summary["first_result"]["p95"]
    return {**summary, "makespan": round(outcome["makespan"], 1),
            "cpu_seconds": round(outcome["cpu_seconds"], 1),
            "cpu_seconds_per_student": round(outcome["cpu_seconds"] / ok, 2) if ok else None,
            "lower_bound": round(bound, 1),
            "makespan_over_bound": round(outcome["makespan"] / bound, 2) if bound else None,
            "p95_over_bound": round(p95 / bound, 2) if bound and p95 is not None else None,
            "records": records}


def prewarm(config: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """`hubkeeper prewarm --user ...` for the class, timed, with the machine's CPU."""
    ticks = busy_ticks()
    began = time.monotonic()
    args = [HUBKEEPER, "--config", str(config), "prewarm", "--json"]
    for name in names:
        args += ["--user", name]
    done = subprocess.run(args, capture_output=True, text=True, timeout=PREWARM_DEADLINE)
    record = {"seconds": round(time.monotonic() - began, 1), "exit": done.returncode,
              "cpu_seconds": round(cpu_seconds_since(ticks), 1)}
    if done.returncode != 0:
        record["output"] = (done.stdout + done.stderr)[-2000:]
    return record


def run_target(key: str, start: Any, sizes: list[int], seed: int,
               window_per_student: float) -> dict[str, Any]:
    """One hub for `key`, and a storm of each size against it."""
    result: dict[str, Any] = {"started": now(), "storms": {}}
    workdir = Path(tempfile.mkdtemp(prefix=f"{hb.WORKDIR_PREFIX}-{key}-"))
    workdir.chmod(0o755)  # the accounts reach the docker target's build context and venvs
    cpus = len(os.sched_getaffinity(0))
    running = None
    try:
        hb.reset_homes((hb.WARMUP_USER,))
        began = time.monotonic()
        running = start(workdir)
        result["hub_start"] = round(time.monotonic() - began, 1)
        progress(f"{key}: up at {running.url} in {result['hub_start']:.1f} s")
        asyncio.run(hb.sequential(running.url, running.password, (hb.WARMUP_USER,),
                                  progress))  # warm-up: caches, not counted
        for size in sizes:
            names = hb.ACCOUNTS[:size]
            hb.reset_homes(names)
            storm: dict[str, Any] = {}
            hb.wait_quiet(300, progress)
            if key == PREWARM:
                progress(f"  prewarm: {size} servers")
                storm["prewarm"] = prewarm(workdir / "hub.yaml", names)  # write_config's
                progress(f"  prewarm done in {storm['prewarm']['seconds']} s "
                         f"(exit {storm['prewarm']['exit']})")
            window = size * window_per_student
            progress(f"  {key}: {size} students over {window:.0f} s")
            outcome = asyncio.run(class_storm(running.url, running.password, names, window,
                                              seed))
            storm.update(storm_summary(outcome, cpus), window=window)
            result["storms"][str(size)] = storm
            progress(f"  {key} N={size}: {storm['ok']}/{size} ok, first result p50 "
                     f"{hb._fmt(storm['first_result']['p50'])} p95 "
                     f"{hb._fmt(storm['first_result']['p95'])} s, lower bound "
                     f"{storm['lower_bound']} s")
            time.sleep(SETTLE)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        progress(f"  FAILED: {result['error']}")
    finally:
        if running is not None:
            try:
                result["hub_stop"] = running.stop()
            except (AssertionError, hb.BenchError) as exc:
                result["hub_stop_error"] = str(exc)
            for pid_file in running.pid_files:
                hb.end_leftover_proxy(pid_file)
            result["hub_log"] = hb.scan_log(running.logs[0])
        result["leftover_processes"] = hb.end_processes_of(
            {pwd.getpwnam(n).pw_uid for n in hb.ACCOUNTS}, grace=10)
        shutil.rmtree(workdir, ignore_errors=True)
        result["finished"] = now()
    return result


# ----------------------------------------------------------------------------- report


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Class-start storm: N students arriving over N seconds (seconds)")
    for column in ("target", "N", "ok", "first result p50", "p95", "max", "CPU-s/student",
                   "lower bound", "last done", "p95 / bound", "prewarm"):
        table.add_column(column, justify="right" if column != "target" else "left")
    for key, result in report["targets"].items():
        for size, storm in result.get("storms", {}).items():
            first = storm["first_result"]
            warm = storm.get("prewarm")
            table.add_row(key, size, f"{storm['ok']}/{size}", hb._fmt(first["p50"]),
                          hb._fmt(first["p95"]), hb._fmt(first["max"]),
                          hb._fmt(storm["cpu_seconds_per_student"]),
                          hb._fmt(storm["lower_bound"], 1), hb._fmt(storm["makespan"], 1),
                          hb._fmt(storm["p95_over_bound"]),
                          f"{warm['seconds']} s" if warm else "")
        if "error" in result:
            table.add_row(key, "", "", f"ERROR {result['error']}"[:60])
    Console(width=200).print(table)


def plot(report: dict[str, Any], path: Path) -> None:
    """Each student's time to first result against their arrival, one panel per class size,
    one series per target; a failed student is an x at the top of the panel. The legend
    gives each target's lower bound (its own CPU-seconds / CPUs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({int(size) for result in report["targets"].values()
                    for size in result.get("storms", {})})
    figure, axes = plt.subplots(1, len(sizes), figsize=(5.6 * len(sizes), 5.6), squeeze=False)
    styles = {STOCK: ("tab:red", "o"), HUBKEEPER_TARGET: ("tab:blue", "s"),
              PREWARM: ("tab:green", "^"), DOCKER: ("tab:purple", "D"),
              FORKED: ("tab:orange", "v"), FORKED_KERNELS: ("tab:brown", "<")}
    for axis, size in zip(axes[0], sizes, strict=True):
        storms = {key: result["storms"][str(size)] for key, result in report["targets"].items()
                  if str(size) in result.get("storms", {})}
        top = max((r["first_result"] for storm in storms.values() for r in storm["records"]
                   if r["first_result"] is not None), default=10) * 1.08
        for key, storm in storms.items():
            color, marker = styles.get(key, ("black", "."))
            ok = [r for r in storm["records"] if r["first_result"] is not None]
            failed = [r for r in storm["records"] if r["first_result"] is None]
            axis.scatter([r["arrival"] for r in ok], [r["first_result"] for r in ok],
                         s=14, color=color, marker=marker,
                         label=f"{key}: {storm['ok']}/{size} ok, p95 "
                               f"{hb._fmt(storm['first_result']['p95'], 1)} s, last done "
                               f"{storm['makespan']:.0f} s (bound {storm['lower_bound']:.0f} s)")
            if failed:
                axis.scatter([r["arrival"] for r in failed], [top] * len(failed), s=30,
                             color=color, marker="x", label=f"{key}: {len(failed)} failed")
        axis.set_title(f"{size} students arriving over {size} s")
        axis.set_xlabel("arrival (s after the first possible)")
        axis.set_ylabel("time to first result (s)")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    machine = report.get("machine", {})
    figure.suptitle(f"Class-start storm on {machine.get('nproc')} CPUs "
                    f"({report.get('started', '')[:10]})", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ----------------------------------------------------------------------------- main


def targets(selected: list[str], logs: Path) -> tuple[dict[str, Any], Any]:
    """key -> a function that starts its hub in a work directory; and the docker target's
    preparation (its recorder of engine events is closed at the end), or None."""
    starts: dict[str, Any] = {
        STOCK: hb.start_stock,
        HUBKEEPER_TARGET: lambda d: hb.start_hubkeeper(d, "python",
                                                       name=f"{hb.ACCOUNT_PREFIX}-hub"),
        PREWARM: lambda d: hb.start_hubkeeper(d, "python", name=f"{hb.ACCOUNT_PREFIX}-warm"),
        FORKED: lambda d: hb.start_hubkeeper(d, "python", name=f"{hb.ACCOUNT_PREFIX}-fork",
                                             extra="servers: {warm: true}\n"),
        FORKED_KERNELS: lambda d: hb.start_hubkeeper(
            d, "python", name=f"{hb.ACCOUNT_PREFIX}-forkk",
            extra="servers: {warm: true, warm_kernels: true}\n"),
    }
    prepared = None
    if DOCKER in selected:
        from bench import dockerbench as db

        prepared = db.Prepared(logs, node_in_image=True)
        starts[DOCKER] = lambda d: hb.start_hubkeeper(
            d, "python", name=db.hub_name(db.DOCKER_TARGET), extra=db.DOCKER_EXTRA,
            prepare=lambda config: prepared.env_build(db.DOCKER_TARGET, config))
    return {key: starts[key] for key in selected}, prepared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,40,60", help="class sizes [20,40,60]")
    parser.add_argument("--docker-sizes", default="60",
                        help="class sizes for hubkeeper-docker [60]")
    parser.add_argument("--targets", default=",".join(TARGET_KEYS),
                        help=f"targets in the order they run [{','.join(TARGET_KEYS)}]")
    parser.add_argument("--window-per-student", type=float, default=1.0, metavar="SECONDS",
                        help="arrivals spread over N x this [1.0]")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: sizes 3,5; docker 3")
    parser.add_argument("--seed", type=int, default=hb.SEED, help="seed of the arrivals")
    parser.add_argument("--prefix", default=PREFIX, help=f"accounts <prefix>01.. [{PREFIX}]")
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench" / "results" / "latest-storm.json")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG",
                        help="also draw the plot here (e.g. docs/storm.png)")
    parser.add_argument("--plot-only", type=Path, default=None, metavar="JSON",
                        help="only draw --plot from an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.plot_only is not None:
        import json

        plot(json.loads(args.plot_only.read_text()), args.plot or Path("storm.png"))
        return 0
    sizes = [3, 5] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    docker_sizes = [3] if args.quick else [int(s) for s in args.docker_sizes.split(",") if s]
    selected = [key.strip() for key in args.targets.split(",") if key.strip()]
    if set(selected) - set(TARGET_KEYS) or len(set(selected)) != len(selected):
        parser.error(f"--targets: some of {', '.join(TARGET_KEYS)}, each once")
    if not all(1 <= size <= CLASS_MAX for size in sizes + docker_sizes):
        parser.error(f"class sizes: 1 to {CLASS_MAX}")

    unwind_on_sigterm()
    try:
        hb.use_prefix(args.prefix)
        hb.ACCOUNTS = tuple(f"{args.prefix}{i:02d}" for i in range(1, CLASS_MAX + 2))
        hb.WARMUP_USER = hb.ACCOUNTS[-1]
        hb.preflight([])
    except hb.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    hb.delete_accounts()  # leftovers of a crashed run
    logs = Path(tempfile.mkdtemp(prefix=f"{hb.WORKDIR_PREFIX}-logs-"))
    report: dict[str, Any] = {
        "benchmark": "stormbench", "started": now(), "complete": False,
        "machine": {**machine_facts(REPO), "jupyterhub": hb.jupyterhub.__version__},
        "parameters": {"sizes": sizes, "docker_sizes": docker_sizes, "targets": selected,
                       "window_per_student": args.window_per_student, "seed": args.seed,
                       "prefix": args.prefix, "proxy": "python",
                       "lower_bound": "the machine's busy CPU-seconds (/proc/stat) from the "
                                      "first arrival to the last result, / CPUs",
                       "percentiles": "linear interpolation, over students with a result"},
        "targets": {},
    }
    starts, prepared = targets(selected, logs)
    try:
        hb.create_accounts(hb.ACCOUNTS)
        progress(f"accounts {hb.ACCOUNTS[0]}..{hb.ACCOUNTS[-1]} ready")
        for key, start in starts.items():
            report["targets"][key] = run_target(
                key, start, docker_sizes if key == DOCKER else sizes, args.seed,
                args.window_per_student)
            write_json(args.out, report)
        report["complete"] = all("error" not in t for t in report["targets"].values())
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        report["interrupted"] = True
    finally:
        if prepared is not None and prepared.events is not None:
            prepared.events.close()  # the `docker events` it started
        if DOCKER in selected:
            from bench import dockerbench as db

            report["docker_cleanup"] = {"containers": db.remove_containers(),
                                        "images": db.remove_images()}
        report["deleted_accounts"] = len(hb.delete_accounts())
        shutil.rmtree(logs, ignore_errors=True)
        finish(report, args.out, REPO)
    print_report(report)
    if args.plot is not None:
        plot(report, args.plot)
        print(f"plot: {args.plot}")
    print(f"JSON: {args.out}")
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
