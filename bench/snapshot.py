"""snapshot bench: `hubkeeper snapshot` and `archive` against plain rsync, sha256sum and tar.

    .venv/bin/python bench/snapshot.py [--homes 200] [--files 500] [--rounds 2]
                                       [--out bench/results/<today>-snapshot.json]

Needs root (to drop the page cache between runs). One hub in personal mode (homes are
<state>/users/hkbNNN, no Linux accounts): `hubkeeper up` runs once so that the hub has its
database, then is stopped, and the homes are filled with a fixed-seed data set (see
`plan_files`: 70% random bytes, 30% notebook JSON, sizes log-uniform 1-40 KiB, mean about
10.6 KiB; 200 x 500 files is about 1 GiB). Everything lives in one directory
`<--dir>/hkb-snapshot-*` (on the root filesystem by default) and is removed at the end, as
is any such directory a crashed run left behind.

For each round, each phase runs hubkeeper's side and the baseline's side (the order swaps
every round), each after a quiet machine, a sync and a dropped page cache; a side that other
processes or the hypervisor (steal) disturbed by more than 10% is undone and run again, up
to 3 times, and the least disturbed run is kept:
  first    `hubkeeper snapshot` into an empty target, against `rsync -a --numeric-ids` of the
           whole users folder and `sync -f` (then, timed apart, a `sha256sum` list of the
           copy: what the baseline needs for the checksums hubkeeper's manifest has);
  incr     1% of the files rewritten (same kinds, new sizes), then `hubkeeper snapshot`
           again, against `rsync -a --link-dest=<first copy>` into a new folder, `sync -f`
           (and, apart, the sha256sum list again: sha256sum cannot reuse hashes);
  verify   `hubkeeper snapshot verify` (re-reads every file of the newest snapshot) against
           `sha256sum -c --quiet` of the list;
  archive  `hubkeeper archive --to DIR` against one `tar -I 'zstd -T0' -cf <user>.tar.zst` per home;
           `hubkeeper archive verify DIR` against `zstd -tq` of every tar (when `hubkeeper
           archive` exists in this checkout).
Round 1 adds an anatomy of hubkeeper's snapshot: its rsync command per home 1, 2, 4 and 8
at a time, walking, hashing and the manifest, each timed on its own. Results: a table and
JSON; see docs/benchmarks.md ("Snapshots and archives").
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    CLOCK_TICKS,
    finish,
    machine_facts,
    now,
    output_of,
    progress,
    unwind_on_sigterm,
    write_json,
)
from bench.roster import measured_run, quiet_machine  # noqa: E402  (standard library only)

HUBKEEPER = Path(sys.executable).parent / "hubkeeper"
PREFIX = "hkb"  # the work directory and every user of this benchmark start with it
RUN_DEADLINE = 1800.0  # one timed command
SEED = 20261123
KIB = 1024
SIZES = (1 * KIB, 40 * KIB)  # log-uniform: mean (b - a) / ln(b / a) = 10.6 KiB
# (folder, suffix, content, weight): 70% random bytes, 30% notebooks
KINDS = (
    ("data/raw", ".bin", "random", 30),
    ("data/clean", ".npy", "random", 20),
    ("figures", ".png", "random", 20),
    ("notebooks", ".ipynb", "notebook", 25),
    ("notebooks/.ipynb_checkpoints", "-checkpoint.ipynb", "notebook", 5),
)
CHANGED_SHARE = 0.01  # the "1% of files changed"; --changed-share to vary it
ATTEMPTS = 3  # runs of one side at most, while other processes or the hypervisor disturb it
OTHER_LIMIT = 0.10  # share of the machine others (processes, steal) may take in a kept run
NPROC = len(os.sched_getaffinity(0))


class BenchError(Exception):
    """A precondition or a check failed; the message says which."""


# ----------------------------------------------------------------------------- data


def plan_files(homes: list[str], per_home: int, seed: int) -> list[tuple[str, str, str, int]]:
    """(home, relative path, content kind, size) of every file, the same for the same seed."""
    rng = random.Random(seed)
    weights = [kind[3] for kind in KINDS]
    low, high = math.log(SIZES[0]), math.log(SIZES[1])
    files = []
    for home in homes:
        for number in range(per_home):
            folder, suffix, content, _ = rng.choices(KINDS, weights)[0]
            size = int(math.exp(rng.uniform(low, high)))
            files.append((home, f"{folder}/f{number:03d}{suffix}", content, size))
    return files


WORDS = ("import numpy as np", "import pandas as pd", "df = pd.read_csv('data/raw/{n}.csv')",
         "df.describe()", "plt.plot(x, y, label='run {n}')", "for i in range(10):",
         "    total += values[i] * weight", "def load(path):", "    return np.load(path)",
         "# Exercise {n}: compute the mean and the variance", "result = model.fit(X, y)",
         "print(f'accuracy: {{score:.3f}}')", "x = np.linspace(0, 1, {n})", "assert len(df) > 0")


def cell_pool(rng: random.Random, count: int = 400) -> list[str]:
    """Notebook cells (JSON text) shared by every notebook: students of one course write
    much the same code."""
    cells = []
    for number in range(count):
        lines = [rng.choice(WORDS).format(n=rng.randrange(1000)) + "\n"
                 for _ in range(rng.randrange(2, 12))]
        kind = "markdown" if number % 4 == 0 else "code"
        cell: dict[str, Any] = {"cell_type": kind, "id": f"{number:08x}", "metadata": {},
                                "source": lines}
        if kind == "code":
            cell["execution_count"] = number
            cell["outputs"] = []
        cells.append(json.dumps(cell, indent=1))
    return cells


def notebook(rng: random.Random, pool: list[str], size: int) -> bytes:
    """A notebook of about `size` bytes: pooled cells, each followed by a cell with its own
    printed numbers (outputs differ from student to student)."""
    parts, length = [], 0
    while length < size:
        parts.append(rng.choice(pool))
        numbers = " ".join(f"{rng.random():.6f}" for _ in range(12))
        parts.append(json.dumps({"cell_type": "code", "execution_count": len(parts),
                                 "metadata": {}, "source": ["print(values)\n"], "outputs": [
                                     {"name": "stdout", "output_type": "stream",
                                      "text": [numbers + "\n"]}]}, indent=1))
        length += len(parts[-1]) + len(parts[-2])
    text = ('{\n "cells": [\n' + ",\n".join(parts) + '\n ],\n "metadata": {"kernelspec": '
            '{"name": "python3"}},\n "nbformat": 4,\n "nbformat_minor": 5\n}\n')
    return text.encode()


def write_files(root: Path, files: list[tuple[str, str, str, int]], seed: int) -> dict:
    """Write `files` under root/<home>/; returns counts and bytes per content kind."""
    rng = random.Random(seed)
    pool = cell_pool(random.Random(SEED))
    totals: Counter[str] = Counter()
    for home, relative, content, size in files:
        path = root / home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size) if content == "random" else notebook(rng, pool, size)
        path.write_bytes(data)
        totals[f"{content}_files"] += 1
        totals[f"{content}_bytes"] += len(data)
    return dict(totals)


# ----------------------------------------------------------------------------- timing


def drop_caches() -> bool:
    """Write out dirty pages and drop the page cache, dentries and inodes; False if not
    permitted (then both sides run warm)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def machine_counters() -> dict[str, float]:
    """Whole-machine counters: CPU time stolen by the hypervisor and spent waiting for I/O
    (seconds, all CPUs), and MiB read and written on every disk (whoever did it)."""
    fields = Path("/proc/stat").read_text().split("\n")[0].split()
    read = written = 0
    for line in Path("/proc/diskstats").read_text().splitlines():
        parts = line.split()
        name = parts[2]
        if Path(f"/sys/block/{name}").exists() and not name.startswith(("loop", "ram", "zram")):
            read, written = read + int(parts[5]), written + int(parts[9])  # sectors
    return {"steal_seconds": int(fields[8]) / CLOCK_TICKS,
            "iowait_seconds": int(fields[5]) / CLOCK_TICKS,
            "disk_read_mib": read * 512 / 2**20, "disk_written_mib": written * 512 / 2**20}


def _self_label(command: list[str]) -> str:
    """What the sampler calls the command itself (when no child of it runs)."""
    name = Path(command[0]).name
    return "hubkeeper (python)" if name == "hubkeeper" else name


def run_step(command: list[str], cwd: Path, label: str, logs: Path) -> dict[str, Any]:
    """Run one command to its end and measure it: wall, CPU of it and all it waited for
    (getrusage(RUSAGE_CHILDREN) delta), what ran (sampled), other processes' CPU."""
    out, err = logs / f"{label}.stdout", logs / f"{label}.stderr"
    machine_before = machine_counters()
    run = measured_run(command, cwd, {**os.environ, "LC_ALL": "C.UTF-8"}, out, err,
                       _self_label(command), RUN_DEADLINE)
    if run.code is None:
        raise BenchError(f"{label}: still running after {RUN_DEADLINE:.0f} s; killed")
    machine_delta = {k: round(v - machine_before[k], 2) for k, v in machine_counters().items()}
    code, wall, user, system, sampler = run.code, run.wall, run.user, run.system, run.sampler
    own = run.own["own_cpu"]
    samples = sum(sampler.running.values()) or 1
    foreign = sampler.foreign_ticks / CLOCK_TICKS
    errors = [line for line in err.read_text(errors="replace").splitlines() if line.strip()]
    if code != 0:
        raise BenchError(f"{label}: `{' '.join(command)}` exited {code}: "
                         + "; ".join(errors[-3:]))
    return {
        "command": " ".join(command), "exit": code, "wall": round(wall, 3),
        "cpu": round(user + system, 3), "cpu_user": round(user, 3),
        "cpu_system": round(system, 3), "own_cpu": own,
        "running": {name: round(wall * count / samples, 2)
                    for name, count in sampler.running.most_common()},
        "stderr_head": errors[:3],
        "foreign_cpu_seconds": round(foreign, 2),
        "kernel_threads_cpu_seconds": round(sampler.kernel_ticks / CLOCK_TICKS, 2),
        **machine_delta,
        "stdout": out,
    }


def run_side(steps: list[tuple[str, list[str], Path]], label: str, logs: Path,
             quiet_wait: float, undo: Callable[[], None] | None = None) -> dict[str, Any]:
    """One side of a phase: a quiet machine, a dropped cache, then its steps in order.

    If other processes and the hypervisor (steal) took more than OTHER_LIMIT of the
    machine meanwhile, `undo` puts
    back what the side changed and the side runs again (up to ATTEMPTS times; a side
    without `undo` only reads, so needs none). The least disturbed attempt is reported;
    every attempt is listed."""
    attempts: list[dict[str, Any]] = []
    for attempt in range(1, ATTEMPTS + 1):
        if attempt > 1:
            progress(f"    {label}: other processes and steal took "
                     f"{attempts[-1]['other_share']:.0%} of the machine; again "
                     f"(attempt {attempt})")
            if undo is not None:
                undo()
        quiet = quiet_machine(quiet_wait) if quiet_wait > 0 else None
        dropped = drop_caches()
        result: dict[str, Any] = {"attempt": attempt, "quiet_wait": quiet,
                                  "cache_dropped": dropped, "steps": {}}
        for name, command, cwd in steps:
            step = run_step(command, cwd, f"{label}-{name}", logs)
            step.pop("stdout")
            result["steps"][name] = step
        wall = sum(step["wall"] for step in result["steps"].values())
        foreign = sum(step["foreign_cpu_seconds"] for step in result["steps"].values())
        steal = sum(step["steal_seconds"] for step in result["steps"].values())
        result["foreign_share"] = round(foreign / (wall * NPROC), 3) if wall else 0.0
        result["steal_share"] = round(steal / (wall * NPROC), 3) if wall else 0.0
        result["other_share"] = round(result["foreign_share"] + result["steal_share"], 3)
        attempts.append(result)
        if result["other_share"] <= OTHER_LIMIT:
            break
    best = min(attempts, key=lambda a: a["other_share"])
    best["attempts"] = [{k: a[k] for k in ("attempt", "foreign_share", "steal_share")}
                        | {"wall": round(sum(s["wall"] for s in a["steps"].values()), 3)}
                        for a in attempts]
    return best


def total(side: dict[str, Any], steps: tuple[str, ...]) -> dict[str, float]:
    chosen = [side["steps"][name] for name in steps if name in side["steps"]]
    return {"wall": round(sum(s["wall"] for s in chosen), 3),
            "cpu": round(sum(s["cpu"] for s in chosen), 3)}


def ratio(mine: float | None, theirs: float | None) -> float | None:
    return round(mine / theirs, 3) if mine and theirs else None


# ----------------------------------------------------------------------------- the phases


class Bench:
    """The work directory, the hub in it, and the commands both sides run."""

    def __init__(self, workdir: Path, homes: list[str], quiet_wait: float,
                 changed_share: float = CHANGED_SHARE) -> None:
        self.workdir, self.homes, self.quiet_wait = workdir, homes, quiet_wait
        self.changed_share = changed_share
        self.config = workdir / "hub.yaml"
        self.users = workdir / "state" / "users"
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def hubkeeper(self, *args: str) -> list[str]:
        return [str(HUBKEEPER), "--config", str(self.config), *args]

    def start_and_stop_hub(self) -> dict[str, Any]:
        """`hubkeeper up` once (the hub database), then SIGTERM; hubproc finds free ports."""
        from tests.support.hubproc import free_ports, start_hub

        port, api_port, proxy_port = free_ports(3)
        first, last = self.homes[0][len(PREFIX):], self.homes[-1][len(PREFIX):]
        self.config.write_text(
            "version: 1\n"
            f"hub: {{name: hkbsnap, mode: personal, ip: 127.0.0.1, port: {port}, "
            f"api_port: {api_port}, state_dir: state}}\n"
            f"proxy: {{api_port: {proxy_port}}}\n"
            f"users: {{roster: {{ranges: ['{PREFIX}{{{first}..{last}}}']}}}}\n")
        began = time.monotonic()
        try:
            hub = start_hub(self.config, deadline=180.0, log_name="up.log")
        except AssertionError as exc:
            raise BenchError(f"hubkeeper up failed: {str(exc)[-800:]}") from None
        up = time.monotonic() - began
        try:
            stopped = hub.stop()
        except AssertionError as exc:
            raise BenchError(str(exc)) from None
        return {"up_seconds": round(up, 2), "stop_seconds": round(stopped, 2)}

    def snapshot_side(self, target: Path, label: str) -> dict[str, Any]:
        command = self.hubkeeper("snapshot", "--target", str(target), "--json")
        side = run_side([("snapshot", command, self.workdir)], label, self.logs,
                        self.quiet_wait, undo=undo_snapshot(target))
        result = json.loads((self.logs / f"{label}-snapshot.stdout").read_text())
        (mine,) = result["targets"]
        side["result"] = {k: mine[k] for k in ("snapshot", "files", "bytes", "linked")}
        side["result"]["homes"] = result["users"]
        manifest = Path(mine["snapshot"]) / "MANIFEST.json"
        side["result"]["manifest_bytes"] = manifest.stat().st_size
        side["result"]["new_bytes"] = new_bytes(Path(mine["snapshot"]))
        return side

    def rsync_side(self, dest: Path, link_dest: Path | None, sums: Path,
                   label: str) -> dict[str, Any]:
        rsync = ["rsync", "-a", "--numeric-ids"]
        if link_dest is not None:
            rsync.append(f"--link-dest={link_dest}/")
        steps = [("rsync", [*rsync, f"{self.users}/", f"{dest}/"], self.workdir),
                 ("sync", ["sync", "-f", str(dest)], self.workdir),
                 ("sha256sum", ["sh", "-c", f"find . -type f -print0 | "
                                f"xargs -0 sha256sum > {sums}"], dest)]
        side = run_side(steps, label, self.logs, self.quiet_wait,
                        undo=lambda: remove(dest, sums))
        files = [p for p in dest.rglob("*") if p.is_file()]
        side["result"] = {"files": len(files), "bytes": sum(p.stat().st_size for p in files),
                          "linked": sum(1 for p in files if p.stat().st_nlink > 1),
                          "new_bytes": new_bytes(dest)}
        return side

    def change_files(self, files: list[tuple[str, str, str, int]], seed: int) -> dict:
        """Rewrite a share of the files in place: same path and kind, a new size."""
        rng = random.Random(seed)
        low, high = math.log(SIZES[0]), math.log(SIZES[1])
        chosen = rng.sample(files, round(len(files) * self.changed_share))
        changed = [(home, path, kind, int(math.exp(rng.uniform(low, high))))
                   for home, path, kind, _ in chosen]
        return {"files": len(changed), **write_files(self.users, changed, seed + 1)}


def remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def undo_snapshot(target: Path) -> Callable[[], None]:
    """What puts `target` back as it is now: the snapshots taken since removed, `latest`
    pointing where it points now."""
    before = set(os.listdir(target)) if target.is_dir() else None
    latest = os.readlink(target / "latest") if before and "latest" in before else None

    def undo() -> None:
        if before is None:
            remove(target)
            return
        for name in set(os.listdir(target)) - before:
            remove(target / name)
        if latest is not None:
            link = target / ".latest-hkb"
            link.unlink(missing_ok=True)
            os.symlink(latest, link)
            os.replace(link, target / "latest")

    return undo


def new_bytes(tree: Path) -> int:
    """Bytes of the files under `tree` that are not hard links (the space a copy added)."""
    return sum(info.st_size for p in tree.rglob("*")
               if (info := p.lstat()) and p.is_file() and not p.is_symlink()
               and info.st_nlink == 1)


def archive_available() -> bool:
    done = subprocess.run([str(HUBKEEPER), "archive", "--help"], capture_output=True)
    return done.returncode == 0


def run_round(bench: Bench, number: int, files: list[tuple[str, str, str, int]],
              with_archive: bool) -> dict[str, Any]:
    order = ("hubkeeper", "baseline") if number % 2 else ("baseline", "hubkeeper")
    work = bench.workdir / f"r{number}"
    hk_target, base = work / "hk-target", work / "baseline"
    work.mkdir()
    base.mkdir()
    result: dict[str, Any] = {"round": number, "order": list(order), "phases": {}}

    def phase(name: str, sides: dict[str, Any]) -> dict[str, Any]:
        progress(f"  {name}")
        out = {}
        for side in order:
            out[side] = sides[side]()
            steps = ", ".join(f"{k} {v['wall']:.1f} s" for k, v in out[side]["steps"].items())
            progress(f"    {side}: {steps}")
        result["phases"][name] = out
        return out

    phase("first", {
        "hubkeeper": lambda: bench.snapshot_side(hk_target, f"r{number}-hubkeeper-first"),
        "baseline": lambda: bench.rsync_side(base / "full", None, work / "sums-full",
                                             f"r{number}-baseline-first")})
    progress(f"  rewriting {bench.changed_share:.0%} of the files")
    result["changed"] = bench.change_files(files, SEED + 1000 * number)
    incr = phase("incr", {
        "hubkeeper": lambda: bench.snapshot_side(hk_target, f"r{number}-hubkeeper-incr"),
        "baseline": lambda: bench.rsync_side(base / "incr", base / "full", work / "sums-incr",
                                             f"r{number}-baseline-incr")})
    home_files = len(files)
    linked = incr["hubkeeper"]["result"]["linked"]
    result["incr_check"] = {
        "hubkeeper_linked": linked, "baseline_linked": incr["baseline"]["result"]["linked"],
        "unchanged_home_files": home_files - result["changed"]["files"],
        "ok": linked >= home_files - result["changed"]["files"]}
    if not result["incr_check"]["ok"]:
        progress(f"  WARNING: hubkeeper hard-linked only {linked} files")
    phase("verify", {
        "hubkeeper": lambda: run_side(
            [("verify", bench.hubkeeper("snapshot", "verify", "--target", str(hk_target),
                                        "--json"), bench.workdir)],
            f"r{number}-hubkeeper-verify", bench.logs, bench.quiet_wait),
        "baseline": lambda: run_side(
            [("sha256sum-c", ["sha256sum", "-c", "--quiet", str(work / "sums-incr")],
              base / "incr")], f"r{number}-baseline-verify", bench.logs, bench.quiet_wait)})
    if with_archive:
        archive_phases(bench, number, work, phase, result)
    shutil.rmtree(work)  # the next round starts from empty targets
    return result


def archive_phases(bench: Bench, number: int, work: Path, phase: Any,
                   result: dict[str, Any]) -> None:
    hk_dir, tar_dir = work / "hk-archive", work / "tar-archive"
    tar_dir.mkdir()
    loop = (f'for home in {" ".join(bench.homes)}; do '
            f'tar -I "zstd -T0" -cf "{tar_dir}/$home.tar.zst" "$home" || exit 1; done')
    phase("archive", {
        "hubkeeper": lambda: run_side(
            [("archive", bench.hubkeeper("archive", "--to", str(hk_dir), "--json"),
              bench.workdir)], f"r{number}-hubkeeper-archive", bench.logs, bench.quiet_wait,
            undo=lambda: remove(hk_dir)),
        "baseline": lambda: run_side(
            [("tar-zstd", ["bash", "-c", loop], bench.users),
             ("sync", ["sync", "-f", str(tar_dir)], bench.workdir)],
            f"r{number}-baseline-archive", bench.logs, bench.quiet_wait,
            undo=lambda: remove(*tar_dir.iterdir()))})
    archives = sorted(p for p in hk_dir.iterdir() if p.is_dir())
    if len(archives) != 1:
        raise BenchError(f"expected one archive in {hk_dir}, found {len(archives)}")
    mine = {p.relative_to(archives[0]): p.stat().st_size
            for p in archives[0].rglob("*") if p.is_file()}
    result["archive_sizes"] = {
        "hubkeeper": sum(mine.values()),
        "hubkeeper_user_tars": sum(v for k, v in mine.items() if k.parts[0] == "users"),
        "hubkeeper_manifest": sum(v for k, v in mine.items() if k.name.startswith("MANIFEST")),
        "hubkeeper_other": sum(v for k, v in mine.items() if k.parts[0] != "users"
                               and not k.name.startswith("MANIFEST")),
        "baseline": sum(p.stat().st_size for p in tar_dir.iterdir())}
    tars = sorted(str(p) for p in tar_dir.iterdir())
    phase("archive-verify", {
        "hubkeeper": lambda: run_side(
            [("verify", bench.hubkeeper("archive", "verify", str(archives[0]), "--json"),
              bench.workdir)], f"r{number}-hubkeeper-archive-verify", bench.logs,
            bench.quiet_wait),
        "baseline": lambda: run_side(
            [("zstd-t", ["zstd", "-tq", *tars], tar_dir)],
            f"r{number}-baseline-archive-verify", bench.logs, bench.quiet_wait)})


# ----------------------------------------------------------------------------- anatomy


def anatomy(bench: Bench, files: list[tuple[str, str, str, int]]) -> dict[str, Any]:
    """Where a snapshot's time goes, each part alone and cold: hubkeeper's rsync command per
    home, 1, 2, 4 and 8 at a time (hubkeeper runs RSYNC_AT_ONCE); then, with 1% of the
    files rewritten, the same with --link-dest; then walking, hashing and the manifest of a
    copy, in this process with hubkeeper's own functions."""
    from hubkeeper.host.rsync import RSYNC
    from hubkeeper.lifecycle import snapshot
    from hubkeeper.lifecycle.manifest import read_manifest, scan, walk, write_manifest

    scratch = bench.workdir / "anatomy"
    scratch.mkdir()
    out: dict[str, Any] = {"rsync": " ".join(RSYNC),
                           "rsync_at_once": getattr(snapshot, "RSYNC_AT_ONCE", 1)}
    names = " ".join(bench.homes)

    def rsync_homes(name: str, at_once: int, link_dest: Path | None = None) -> Path:
        dest = scratch / name
        link = f'"--link-dest={link_dest}/homes/$h/"' if link_dest else ""
        one = f'{" ".join(RSYNC)} {link} "$h/" "{dest}/homes/$h/"'
        script = (f"printf '%s\\n' {names} | xargs -P {at_once} -n 1 sh -c 'h=$0; {one}'"
                  if at_once > 1 else f'for h in {names}; do {one} || exit 1; done')
        script = f'mkdir -p "{dest}/homes" && {script}'
        side = run_side([("rsync", ["bash", "-c", script], bench.users)], f"anatomy-{name}",
                        bench.logs, bench.quiet_wait, undo=lambda: remove(dest))
        out[name] = {k: side["steps"]["rsync"][k] for k in ("wall", "cpu", "cpu_user",
                                                           "cpu_system")}
        out[name]["other_share"] = side["other_share"]
        progress(f"    {name}: {out[name]['wall']:.1f} s")
        return dest

    try:
        copy = rsync_homes("copy_1_at_a_time", 1)
        for at_once in (2, 4, 8):
            remove(rsync_homes(f"copy_{at_once}_at_a_time", at_once))
        out["changed"] = bench.change_files(files, SEED + 999)
        for at_once in (1, 2, 4, 8):
            remove(rsync_homes(f"link_dest_{at_once}_at_a_time", at_once, link_dest=copy))
        out["empty_rsync_wall"] = _empty_rsync(scratch)

        def clock(label: str, work: Callable[[], Any], cold: bool = True) -> Any:
            if cold:
                drop_caches()
            wall, cpu = time.monotonic(), time.process_time()
            value = work()
            out[label] = {"wall": round(time.monotonic() - wall, 3),
                          "cpu": round(time.process_time() - cpu, 3), "cold": cold}
            progress(f"    {label}: {out[label]['wall']:.2f} s")
            return value

        clock("walk_cold", lambda: sum(1 for _ in walk(copy)))
        clock("walk_warm", lambda: sum(1 for _ in walk(copy)), cold=False)
        entries = clock("scan_hash_all_cold", lambda: scan(copy))
        clock("scan_hash_all_warm", lambda: scan(copy), cold=False)
        previous = {e.path: e for e in entries}
        clock("scan_reuse_all_warm", lambda: scan(copy, previous), cold=False)
        header = {"kind": "hkb-anatomy"}
        clock("write_manifest_warm", lambda: write_manifest(scratch, header, entries),
              cold=False)
        clock("read_manifest_warm", lambda: read_manifest(scratch), cold=False)
        # write_manifest's parts: dataclasses.asdict of every entry, then json.dumps
        dicts = clock("manifest_part_asdict", lambda: [
            {k: v for k, v in asdict(e).items() if v is not None} for e in entries],
            cold=False)
        clock("manifest_part_json_dumps", lambda: json.dumps(dicts, separators=(",", ":")),
              cold=False)
        data = (scratch / "MANIFEST.json").read_bytes()
        out["manifest"] = {"bytes": len(data), "entries": len(entries),
                           "bytes_per_entry": round(len(data) / max(1, len(entries)), 1),
                           "zstd_bytes": len(_zstd(data))}
        out["hashlib_sha256_mb_per_s"] = _hash_speed()
        out["files"] = sum(1 for e in entries if e.type == "f")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def _empty_rsync(scratch: Path) -> float:
    """Wall seconds of one rsync of an empty folder (median of 20): its fixed cost."""
    empty = scratch / "empty"
    empty.mkdir()
    walls = []
    for number in range(20):
        began = time.monotonic()
        subprocess.run([*("rsync", "-a", "--numeric-ids"), f"{empty}/",
                        f"{scratch}/empty-copy-{number}/"], check=True)
        walls.append(time.monotonic() - began)
    return round(sorted(walls)[len(walls) // 2], 4)


def _zstd(data: bytes) -> bytes:
    done = subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True)
    return done.stdout


def _hash_speed() -> float:
    block = os.urandom(64 * 1024 * 1024)
    began = time.process_time()
    hashlib.sha256(block).digest()
    return round(64 / (time.process_time() - began), 0)


# ----------------------------------------------------------------------------- report


def machine(workdir_base: Path) -> dict[str, Any]:
    mount = (output_of(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T",
                        str(workdir_base)]) or "").split()
    return {
        **machine_facts(REPO),
        "hubkeeper": (output_of([str(HUBKEEPER), "--version"]) or "?").rpartition(" ")[2],
        "rsync": (output_of(["rsync", "--version"]) or "").split("\n")[0],
        "zstd": output_of(["zstd", "--version"]),
        "tar": (output_of(["tar", "--version"]) or "").split("\n")[0],
        "coreutils": (output_of(["sha256sum", "--version"]) or "").split("\n")[0],
        "filesystem": {"path": str(workdir_base), "type": mount[0] if mount else None,
                       "device": mount[1] if len(mount) > 1 else None,
                       "options": mount[2] if len(mount) > 2 else None},
    }


SUMMARY_STEPS = {  # phase -> (hubkeeper's steps, baseline's plain steps, baseline + checksums)
    "first": (("snapshot",), ("rsync", "sync"), ("rsync", "sync", "sha256sum")),
    "incr": (("snapshot",), ("rsync", "sync"), ("rsync", "sync", "sha256sum")),
    "verify": (("verify",), ("sha256sum-c",), None),
    "archive": (("archive",), ("tar-zstd", "sync"), None),
    "archive-verify": (("verify",), ("zstd-t",), None),
}


def summary(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per round and phase: both sides' wall and CPU, and hubkeeper / baseline."""
    rows = []
    for r in rounds:
        for phase, sides in r["phases"].items():
            mine_steps, plain, with_sums = SUMMARY_STEPS[phase]
            mine = total(sides["hubkeeper"], mine_steps)
            theirs = total(sides["baseline"], plain)
            row = {"round": r["round"], "phase": phase, "hubkeeper": mine, "baseline": theirs,
                   "ratio_wall": ratio(mine["wall"], theirs["wall"]),
                   "ratio_cpu": ratio(mine["cpu"], theirs["cpu"]),
                   "other_cpu": max(sides[side]["other_share"] for side in sides)}
            if with_sums:
                full = total(sides["baseline"], with_sums)
                row["baseline_with_sha256sum"] = full
                row["ratio_wall_with_sha256sum"] = ratio(mine["wall"], full["wall"])
                row["ratio_cpu_with_sha256sum"] = ratio(mine["cpu"], full["cpu"])
            rows.append(row)
    return rows


BASELINE_NAMES = {"first": "rsync -a + sync", "incr": "rsync --link-dest + sync",
                  "verify": "sha256sum -c", "archive": "tar -I 'zstd -T0' x200 + sync",
                  "archive-verify": "zstd -t"}


def print_report(report: dict[str, Any]) -> None:
    m, p = report["machine"], report["parameters"]
    print(f"\n{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
          f"{m['filesystem']['type']} on {m['filesystem']['device']}, {m['hubkeeper']} @ "
          f"{(m['hubkeeper_commit'] or '?')[:10]}")
    data = report.get("dataset", {})
    print(f"{p['homes']} homes x {p['files_per_home']} files, "
          f"{data.get('bytes', 0) / 2**30:.2f} GiB; caches dropped before each side: "
          f"{report.get('cache_dropped')}")
    print("\nwall and CPU seconds (CPU: the command and everything it waited for); "
          "ratio hubkeeper / baseline, below 1: hubkeeper faster")
    header = (f"{'round':>5} {'phase':<15} {'hk wall':>8} {'hk CPU':>8} {'baseline':<25} "
              f"{'wall':>7} {'CPU':>7} {'ratio wall':>10} {'ratio CPU':>9} "
              f"{'+sha256sum: wall':>16} {'ratio':>6} {'other CPU':>9}")
    print(header)
    print("-" * len(header))
    for row in report["summary"]:
        extra = row.get("baseline_with_sha256sum")
        tail = (f"{extra['wall']:>16.2f} {row['ratio_wall_with_sha256sum']:>6.2f}" if extra
                else f"{'':>16} {'':>6}")
        print(f"{row['round']:>5} {row['phase']:<15} {row['hubkeeper']['wall']:>8.2f} "
              f"{row['hubkeeper']['cpu']:>8.2f} {BASELINE_NAMES[row['phase']]:<25} "
              f"{row['baseline']['wall']:>7.2f} {row['baseline']['cpu']:>7.2f} "
              f"{row['ratio_wall'] or 0:>10.2f} {row['ratio_cpu'] or 0:>9.2f} {tail} "
              f"{row['other_cpu']:>9.0%}")
    for r in report["rounds"]:
        for phase in ("first", "incr"):
            sides = r["phases"].get(phase)
            if not sides:
                continue
            h, b = sides["hubkeeper"]["result"], sides["baseline"]["result"]
            print(f"  round {r['round']} {phase}: hubkeeper {h['files']} files, {h['linked']} "
                  f"hard-linked, {h['new_bytes'] / 2**20:.1f} MiB new (manifest "
                  f"{h['manifest_bytes'] / 2**20:.1f} MiB); baseline {b['files']} files, "
                  f"{b['linked']} hard-linked, {b['new_bytes'] / 2**20:.1f} MiB new")
            running = sides["hubkeeper"]["steps"]["snapshot"]["running"]
            print("    hubkeeper's time (sampled): "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in list(running.items())[:4]))
        if "archive_sizes" in r:
            sizes = r["archive_sizes"]
            print(f"  round {r['round']} archive: hubkeeper {sizes['hubkeeper'] / 2**20:.1f} "
                  f"MiB (user tars {sizes['hubkeeper_user_tars'] / 2**20:.1f}, manifest "
                  f"{sizes['hubkeeper_manifest'] / 2**20:.1f}), tar -I 'zstd -T0' "
                  f"{sizes['baseline'] / 2**20:.1f} MiB")
    if report.get("anatomy"):
        print("\nanatomy (round 1, each part alone):")
        for name, value in report["anatomy"].items():
            if isinstance(value, dict) and "wall" in value:
                print(f"  {name:<30} {value['wall']:>7.2f} s wall {value['cpu']:>7.2f} CPU-s")
            else:
                print(f"  {name:<30} {value}")


# ----------------------------------------------------------------------------- main


def remove_leftovers(base: Path) -> list[str]:
    """Work directories of earlier, crashed runs (by prefix)."""
    removed = []
    for path in base.glob(f"{PREFIX}-snapshot-*"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def preflight(base: Path) -> None:
    if os.geteuid() != 0:
        raise BenchError("needs root: it drops the page cache between runs")
    if not HUBKEEPER.exists():
        raise BenchError(f"{HUBKEEPER} is missing: run with the project's venv, "
                         ".venv/bin/python bench/snapshot.py")
    for tool in ("rsync", "zstd", "tar", "sha256sum", "xargs", "find", "sync", "findmnt"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not on PATH")
    kind = output_of(["findmnt", "-n", "-o", "FSTYPE", "-T", str(base)])
    if kind in ("tmpfs", "ramfs"):
        raise BenchError(f"{base} is on {kind}: give --dir a directory on a disk")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--homes", type=int, default=200, help="homes [200]")
    parser.add_argument("--files", type=int, default=500, help="files per home [500]")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds; the order of the sides swaps every round [2]")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="where the work directory goes (a disk, not tmpfs) [/var/tmp]")
    parser.add_argument("--changed-share", type=float, default=CHANGED_SHARE,
                        help="share of the files rewritten before each incremental "
                             f"snapshot [{CHANGED_SHARE}]")
    parser.add_argument("--no-archive", action="store_true", help="skip the archive phases")
    parser.add_argument("--no-anatomy", action="store_true", help="skip the anatomy")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                        f"{dt.date.today().isoformat()}-snapshot.json",
                        help="JSON results [bench/results/<today>-snapshot.json]")
    parser.add_argument("--quiet-wait", type=float, default=600, metavar="SECONDS",
                        help="before each timed side, wait up to this long for other work on "
                             "the machine to stop (0: do not wait) [600]")
    args = parser.parse_args(argv)
    if not 1 <= args.homes <= 999:
        parser.error("--homes must be 1..999 (names have three digits)")

    unwind_on_sigterm()
    base = args.dir.resolve()
    try:
        preflight(base)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    homes = [f"{PREFIX}{i:03d}" for i in range(1, args.homes + 1)]
    with_archive = not args.no_archive and archive_available()
    report: dict[str, Any] = {
        "benchmark": "snapshot", "started": now(), "complete": False,
        "machine": machine(base),
        "parameters": {
            "homes": args.homes, "files_per_home": args.files, "rounds": args.rounds,
            "seed": SEED, "sizes": "log-uniform 1-40 KiB (mean about 10.6 KiB)",
            "kinds": [{"folder": k[0], "suffix": k[1], "content": k[2], "weight": k[3]}
                      for k in KINDS],
            "changed_share": args.changed_share, "quiet_wait": args.quiet_wait,
            "archive": with_archive,
            "order": "per phase, hubkeeper then baseline in odd rounds, the reverse in even "
                     "ones; before each side: a quiet machine, sync, drop_caches=3",
            "cpu": "getrusage(RUSAGE_CHILDREN) delta: the command and every process it "
                   "waited for",
        },
        "rounds": [],
    }
    workdir: Path | None = None
    try:
        report["leftovers_removed"] = remove_leftovers(base)
        workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-snapshot-", dir=base))
        bench = Bench(workdir, homes, args.quiet_wait, args.changed_share)
        progress(f"work directory {workdir}; starting and stopping the hub once")
        report["hub"] = bench.start_and_stop_hub()
        files = plan_files(homes, args.files, SEED)
        progress(f"writing {len(files)} files into {len(homes)} homes")
        began = time.monotonic()
        report["dataset"] = write_files(bench.users, files, SEED)
        report["dataset"]["files"] = len(files)
        report["dataset"]["bytes"] = sum(v for k, v in report["dataset"].items()
                                         if k.endswith("_bytes"))
        report["dataset"]["seconds"] = round(time.monotonic() - began, 1)
        report["cache_dropped"] = drop_caches()
        for number in range(1, args.rounds + 1):
            progress(f"round {number}")
            report["rounds"].append(run_round(bench, number, files, with_archive))
            report["summary"] = summary(report["rounds"])
            write_json(args.out, report)
            if number == 1 and not args.no_anatomy:
                progress("anatomy of a snapshot")
                report["anatomy"] = anatomy(bench, files)
                write_json(args.out, report)
        report["complete"] = all(r["incr_check"]["ok"] for r in report["rounds"])
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        report["interrupted"] = True
    except BenchError as exc:
        progress(f"FAILED: {exc}")
        report["error"] = str(exc)
    finally:
        if workdir is not None:
            progress(f"removing {workdir}")
            shutil.rmtree(workdir, ignore_errors=True)
            report["cleanup"] = {"removed": str(workdir), "gone": not workdir.exists()}
        report["summary"] = summary(report["rounds"])
        finish(report, args.out, REPO)
    print_report(report)
    print(f"\nJSON: {args.out}")
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
