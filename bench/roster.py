"""roster bench: `hubkeeper apply` for a 500-student class list against the seed's shell loop.

    .venv/bin/python bench/roster.py [--users 500] [--rounds 2] [--out bench/results/x.json]

Needs root: both sides create real Linux accounts. hubkeeper's side is hkr001..hkr500
(from a CSV, via `hubkeeper --config hub.yaml apply`); the baseline's is hkrb001..hkrb500
(a bash script in the style of seed 002's notes: groupadd, one `useradd -m` and
`chmod 700` per student, one `chpasswd`). Every hkr* account, group and home is deleted at
the start, before each side's first run (so each side starts from the same /etc), and at
the end in a finally.

For each round and side, in that order (A B A B with two rounds):
  first   the first run on a clean machine: 2 groups, N accounts, N passwords;
  again   the same command once more: hubkeeper must report "no changes"; the seed's loop
          prints an error per existing account and still re-sets every password.
Wall time, CPU of the child and everything it waited for (getrusage(RUSAGE_CHILDREN)
deltas), the child's own CPU (read from its zombie before it is reaped), and what was
running in its process tree, sampled every 50 ms. Results: a table and JSON; see
docs/benchmarks.md ("Roster: 500 accounts").
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import grp
import os
import pwd
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# common, not hubbench: importing hubbench would pull in jupyterhub and the test support code
from bench.common import (  # noqa: E402
    CLOCK_TICKS,
    finish,
    machine_facts,
    now,
    output_of,
    proc_table,
    progress,
    unwind_on_sigterm,
    wait_quiet,
    write_json,
)

HUBKEEPER = Path(sys.executable).parent / "hubkeeper"
PREFIX = "hkr"  # every account, group and home of this benchmark starts with it
GROUP_ALL, GROUP_TA = "hkrst", "hkrta"
TAS = 20
RUN_DEADLINE = 1800.0  # one timed command
TOOL_DEADLINE = 60.0  # one userdel/groupdel
SAMPLE_INTERVAL = 0.05
ETC_FILES = ("passwd", "shadow", "group", "gshadow", "subuid", "subgid")

BASELINE_SCRIPT = """\
#!/bin/bash
# The seed's way (seed 002's notes: useradd -m, chmod 700 the home), for a class list:
# the two groups, one useradd per student, generated passwords handed to one chpasswd.
umask 077
csv="$1"
passwords="$2"
groupadd {group_all}
groupadd {group_ta}
: > "$passwords"
while IFS=, read -r u groups name; do
    useradd -m -s /bin/bash -c "$name" -G "${{groups//;/,}}" "$u"
    chmod 700 "/home/$u"
    echo "$u:$(head -c 9 /dev/urandom | base64)" >> "$passwords"
done < <(tail -n +2 "$csv")
chpasswd < "$passwords"
"""


class BenchError(Exception):
    """A precondition or a check failed; the message says which."""


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=TOOL_DEADLINE)


# ----------------------------------------------------------------------------- accounts


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(1, count + 1)]


def tas_of(members: list[str]) -> list[str]:
    """The TAs of the class, spread evenly (every 25th of 500)."""
    step = max(1, len(members) // TAS)
    return members[step - 1::step][:TAS]


def write_class_csv(path: Path, members: list[str]) -> None:
    tas = set(tas_of(members))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")  # as a shell loop reads it
        writer.writerow(["username", "groups", "name"])
        for name in members:
            groups = f"{GROUP_ALL};{GROUP_TA}" if name in tas else GROUP_ALL
            writer.writerow([name, groups, f"Student {name[-3:]}"])


def remove_all() -> dict[str, Any]:
    """Delete every hkr* account (userdel -r), group and leftover home or mail spool."""
    began = time.monotonic()
    warnings: list[str] = []
    accounts = [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(PREFIX)]
    for name in accounts:
        done = _tool("userdel", "-r", name)
        if done.returncode not in (0, 12):  # 12: the home could not be removed
            warnings.append(f"userdel -r {name}: exit {done.returncode} {done.stderr.strip()}")
    groups = [g.gr_name for g in grp.getgrall() if g.gr_name.startswith(PREFIX)]
    for name in groups:
        done = _tool("groupdel", name)
        if done.returncode != 0:
            warnings.append(f"groupdel {name}: exit {done.returncode} {done.stderr.strip()}")
    leftovers = [path for base in (Path("/home"), Path("/var/mail"), Path("/var/spool/mail"))
                 if base.is_dir() and not base.is_symlink()
                 for path in base.iterdir() if path.name.startswith(PREFIX)]
    for path in leftovers:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for warning in warnings[:5]:
        print(f"warning: {warning}", file=sys.stderr)
    return {"accounts": len(accounts), "groups": len(groups), "leftover_paths": len(leftovers),
            "warnings": warnings, "seconds": round(time.monotonic() - began, 1)}


def etc_lines() -> dict[str, set[str]]:
    """The hkr* lines of the account files, to see what a re-run changed."""
    lines = {}
    for name in ETC_FILES:
        path = Path("/etc") / name
        text = path.read_text(errors="replace") if path.exists() else ""
        lines[name] = {line for line in text.splitlines() if line.startswith(PREFIX)}
    return lines


def changed_lines(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, int]:
    """Per file, how many hkr* lines were changed, added or removed."""
    return {name: max(len(before[name] - after[name]), len(after[name] - before[name]))
            for name in ETC_FILES if before[name] != after[name]}


def verify(members: list[str]) -> dict[str, Any]:
    """Every account as both sides promise: home 0700 of its owner, groups, a hashed password."""
    shadow = {f[0]: f[1] for f in (line.split(":") for line in
                                   Path("/etc/shadow").read_text().splitlines()) if len(f) > 1}
    problems: list[str] = []
    for name in members:
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            problems.append(f"{name}: no account")
            continue
        try:
            info = os.stat(account.pw_dir)
        except OSError:
            problems.append(f"{name}: no home")
            continue
        if (info.st_mode & 0o777, info.st_uid) != (0o700, account.pw_uid):
            problems.append(f"{name}: home {info.st_mode & 0o777:o} uid {info.st_uid}")
        if not shadow.get(name, "").startswith("$"):
            problems.append(f"{name}: no password hash")
    for group, wanted in ((GROUP_ALL, set(members)), (GROUP_TA, set(tas_of(members)))):
        try:
            have = set(grp.getgrnam(group).gr_mem)
        except KeyError:
            have = set()
        if have != wanted:
            problems.append(f"group {group}: {len(have)} members, expected {len(wanted)}")
    hashes = Counter(shadow.get(name, "")[:3] for name in members)
    return {"ok": not problems, "problems": problems[:10], "problem_count": len(problems),
            "hash_prefixes": dict(hashes)}


# ----------------------------------------------------------------------------- load


class Sampler:
    """In a thread, every `interval` s: what runs in the child's tree (its newest descendant,
    or the child itself), and the CPU ticks of processes outside this benchmark, user space
    apart from kernel threads (a lower bound, as in hubbench: processes living less than one
    interval are missed)."""

    def __init__(self, child: int, self_label: str, interval: float = SAMPLE_INTERVAL) -> None:
        self.child, self.self_label, self.interval = child, self_label, interval
        self.root = os.getpid()
        self.running: Counter[str] = Counter()
        self.foreign_ticks = 0
        self.kernel_ticks = 0
        self.foreign_by_name: Counter[str] = Counter()
        self._previous: dict[int, tuple[int, int]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def _sample(self) -> None:
        table = proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, *_rest) in table.items():
            children.setdefault(ppid, []).append(pid)

        def tree(pid: int) -> set[int]:
            found, stack = set(), [pid]
            while stack:
                for kid in children.get(stack.pop(), ()):
                    if kid not in found:
                        found.add(kid)
                        stack.append(kid)
            return found

        if self.child in table:
            below = [pid for pid in tree(self.child) if pid in table]
            newest = max(below, key=lambda pid: table[pid][2], default=None)
            label = self.self_label if newest is None or table[newest][3] == \
                table[self.child][3] else table[newest][3]  # a fork not yet exec'd: itself
            self.running["bash (the script)" if label == "bash" else label] += 1
        mine = tree(self.root) | {self.root}
        kernel = tree(2) | {2}  # kthreadd's: writeback of our own files lands here too
        current = {pid: (ticks, start) for pid, (_, ticks, start, _) in table.items()
                   if pid not in mine}
        if self._previous is not None:
            for pid, (ticks, start) in current.items():
                before = self._previous.get(pid)
                used = ticks - before[0] if before and before[1] == start else ticks
                if pid in kernel:
                    self.kernel_ticks += used
                else:
                    self.foreign_ticks += used
                    self.foreign_by_name[table[pid][3]] += used
        self._previous = current


def quiet_machine(deadline: float) -> dict[str, Any]:
    """hubbench's wait for a quiet machine, the previous run's dirty pages flushed first, and
    the load average at its end."""
    return {**wait_quiet(deadline, progress, flush=True),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3]}


# ----------------------------------------------------------------------------- timing


def _zombie_cpu(pid: int) -> dict[str, float]:
    """CPU of an exited, not yet reaped child: its own, and that of children it waited for."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = [int(v) for v in text[text.rindex(")") + 2:].split()[11:15]]
    return {"own_cpu": round((fields[0] + fields[1]) / CLOCK_TICKS, 2),
            "children_cpu": round((fields[2] + fields[3]) / CLOCK_TICKS, 2)}


@dataclass
class Measured:
    """One command run to its end (or killed at the deadline: `code` None)."""

    code: int | None
    wall: float
    user: float  # CPU of the command and everything it waited for (RUSAGE_CHILDREN)
    system: float
    own: dict[str, float]  # the command's own CPU, and its children's (empty when killed)
    sampler: Sampler


def measured_run(command: list[str], cwd: Path, env: dict[str, str], out: Path, err: Path,
                 self_label: str, deadline: float) -> Measured:
    """Run `command` in its own session, output to `out` and `err`, sampling what runs; a
    command still running at `deadline` (or on Ctrl-C) is killed with its whole tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        began = time.monotonic()
        child = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout,
                                 stderr=stderr, env=env, start_new_session=True)
        pidfd = os.pidfd_open(child.pid)
        try:
            with Sampler(child.pid, self_label) as sampler:
                ready, _, _ = select.select([pidfd], [], [], deadline)
                wall = time.monotonic() - began
            own = _zombie_cpu(child.pid) if ready else {}
            code = child.wait(timeout=30) if ready else None
        finally:
            os.close(pidfd)
            if child.poll() is None:  # a deadline or Ctrl-C: its own session, only its tree
                os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout=30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Measured(code, wall, after.ru_utime - before.ru_utime,
                    after.ru_stime - before.ru_stime, own, sampler)


def timed(command: list[str], workdir: Path, label: str, self_label: str,
          quiet_wait: float) -> dict[str, Any]:
    """Run `command` once, after a quiet machine, and measure it."""
    quiet = quiet_machine(quiet_wait) if quiet_wait > 0 else None
    out, err = workdir / f"{label}.stdout", workdir / f"{label}.stderr"
    run = measured_run(command, workdir, {**os.environ, "LC_ALL": "C.UTF-8"}, out, err,
                       self_label, RUN_DEADLINE)
    if run.code is None:
        raise BenchError(f"{label}: still running after {RUN_DEADLINE:.0f} s; killed")
    code, wall, user, system, own, sampler = (run.code, run.wall, run.user, run.system,
                                              run.own, run.sampler)
    samples = sum(sampler.running.values()) or 1
    stdout_text, stderr_text = out.read_text(errors="replace"), err.read_text(errors="replace")
    error_lines = [line for line in stderr_text.splitlines() if line.strip()]
    nproc = len(os.sched_getaffinity(0))
    foreign = sampler.foreign_ticks / CLOCK_TICKS
    return {
        "command": " ".join(command), "exit": code, "wall": round(wall, 3),
        "cpu": round(user + system, 3), "cpu_user": round(user, 3),
        "cpu_system": round(system, 3), **own,
        "running": {name: round(wall * count / samples, 2)
                    for name, count in sampler.running.most_common()},
        "samples": sum(sampler.running.values()),
        "stdout_lines": len(stdout_text.splitlines()),
        "stdout_head": stdout_text.splitlines()[:3],
        "stderr_lines": len(error_lines),
        "stderr_kinds": dict(Counter(re.sub(rf"{PREFIX}b?\d+|{PREFIX}\w+", "<name>", line)
                                     for line in error_lines).most_common(5)),
        "foreign_cpu_seconds": round(foreign, 2),
        "foreign_cpu_share": round(foreign / (wall * nproc), 3) if wall else None,
        "foreign_top": {name: round(ticks / CLOCK_TICKS, 2)
                        for name, ticks in sampler.foreign_by_name.most_common(5)},
        "kernel_threads_cpu_seconds": round(sampler.kernel_ticks / CLOCK_TICKS, 2),
        "quiet_wait": quiet,
    }


# ----------------------------------------------------------------------------- sides


def hubkeeper_side(workdir: Path, users: int, quiet_wait: float) -> dict[str, Any]:
    members = names(PREFIX, users)
    write_class_csv(workdir / "class.csv", members)
    config = workdir / "hub.yaml"
    config.write_text(
        "hub: {name: rosterbench, mode: system, state_dir: state}\n"
        "auth: {kind: pam}\n"
        "users:\n"
        "  roster: {csv: class.csv}\n")
    command = [str(HUBKEEPER), "--config", str(config), "apply"]
    result: dict[str, Any] = {"accounts": f"{members[0]}..{members[-1]}"}
    progress(f"  hubkeeper apply, first run ({users} users)")
    result["first"] = first = timed(command, workdir, "hubkeeper-first",
                                    "hubkeeper (python)", quiet_wait)
    first["verified"] = verify(members)
    credentials = list((workdir / "state" / "credentials").glob("*.csv"))
    first["credentials_rows"] = sum(len(p.read_text().splitlines()) - 1 for p in credentials)
    match = re.match(r"applied (\d+) change", (first["stdout_head"] or [""])[0])
    first["changes"] = int(match.group(1)) if match else None
    progress(f"    {first['wall']:.1f} s wall, {first['cpu']:.1f} CPU-s, exit {first['exit']}, "
             f"{first['changes']} changes, verified: {first['verified']['ok']}")
    etc = etc_lines()
    progress("  hubkeeper apply, again")
    result["again"] = again = timed(command, workdir, "hubkeeper-again",
                                    "hubkeeper (python)", quiet_wait)
    again["no_changes"] = any(line.startswith("no changes") for line in again["stdout_head"])
    again["etc_lines_changed"] = changed_lines(etc, etc_lines())
    progress(f"    {again['wall']:.2f} s wall, {again['cpu']:.2f} CPU-s, exit {again['exit']}, "
             f"no changes: {again['no_changes']}")
    return result


def baseline_side(workdir: Path, users: int, quiet_wait: float) -> dict[str, Any]:
    members = names(PREFIX + "b", users)
    write_class_csv(workdir / "class.csv", members)
    script = workdir / "seed-way.sh"
    script.write_text(BASELINE_SCRIPT.format(group_all=GROUP_ALL, group_ta=GROUP_TA))
    command = ["bash", str(script), "class.csv", "passwords.txt"]
    result: dict[str, Any] = {"accounts": f"{members[0]}..{members[-1]}"}
    progress(f"  the seed's way, first run ({users} users)")
    result["first"] = first = timed(command, workdir, "baseline-first", "bash (the script)",
                                    quiet_wait)
    first["verified"] = verify(members)
    progress(f"    {first['wall']:.1f} s wall, {first['cpu']:.1f} CPU-s, exit {first['exit']}, "
             f"{first['stderr_lines']} error lines, verified: {first['verified']['ok']}")
    etc = etc_lines()
    progress("  the seed's way, again")
    result["again"] = again = timed(command, workdir, "baseline-again", "bash (the script)",
                                    quiet_wait)
    again["etc_lines_changed"] = changed_lines(etc, etc_lines())
    again["verified"] = verify(members)
    progress(f"    {again['wall']:.1f} s wall, {again['cpu']:.1f} CPU-s, exit {again['exit']}, "
             f"{again['stderr_lines']} error lines")
    return result


def run_round(number: int, users: int, quiet_wait: float) -> dict[str, Any]:
    result: dict[str, Any] = {"round": number}
    for side, run in (("hubkeeper", hubkeeper_side), ("baseline", baseline_side)):
        result[f"{side}_cleanup_before"] = remove_all()
        workdir = Path(tempfile.mkdtemp(prefix=f"hkr-roster-{side}-"))
        os.chmod(workdir, 0o755)
        try:
            result[side] = run(workdir, users, quiet_wait)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


# ----------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    login_defs = Path("/etc/login.defs").read_text()
    encrypt = re.search(r"^ENCRYPT_METHOD\s+(\S+)", login_defs, re.M)
    pam = re.search(r"^password\s+(?:\[[^]]*\]|\S+)\s+pam_unix\.so(.*)$",
                    Path("/etc/pam.d/common-password").read_text(), re.M)
    return {
        **machine_facts(REPO),
        "hubkeeper": (output_of([str(HUBKEEPER), "--version"]) or "?").rpartition(" ")[2],
        "shadow_utils": output_of(["dpkg-query", "-W", "-f", "${Version}", "passwd"]),
        "bash": output_of(["bash", "-c", "echo $BASH_VERSION"]),
        # chpasswd hashes through PAM here, so pam_unix's method wins over login.defs'
        "login_defs_encrypt_method": encrypt.group(1) if encrypt else None,
        "pam_unix_password_options": pam.group(1).strip() if pam else None,
        "accounts_on_machine": sum(1 for _ in pwd.getpwall()),
    }


def startup_floor(quiet_wait: float) -> dict[str, Any]:
    """What any hubkeeper command costs before it does anything: `hubkeeper --version`."""
    if quiet_wait > 0:
        quiet_machine(quiet_wait)
    walls = []
    for _ in range(5):
        began = time.monotonic()
        output_of([str(HUBKEEPER), "--version"])
        walls.append(round(time.monotonic() - began, 3))
    return {"hubkeeper_version_wall": walls, "median": sorted(walls)[len(walls) // 2]}


def ratios(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """hubkeeper / baseline for each round (below 1: hubkeeper is faster or cheaper)."""
    out = []
    for r in rounds:
        h, b = r.get("hubkeeper", {}), r.get("baseline", {})
        row: dict[str, Any] = {"round": r["round"]}
        for run in ("first", "again"):
            for metric in ("wall", "cpu"):
                mine, theirs = h.get(run, {}).get(metric), b.get(run, {}).get(metric)
                row[f"{run}.{metric}"] = round(mine / theirs, 3) if mine and theirs else None
        out.append(row)
    return out


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"\n{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
          f"shadow-utils {m['shadow_utils']}, {m['hubkeeper']} @ "
          f"{(m['hubkeeper_commit'] or '?')[:10]}")
    users = report["parameters"]["users"]
    print(f"\n{users} accounts: wall and CPU seconds (CPU = the command and all it waited for)")
    header = (f"{'round':>5} {'side':<10} {'run':<6} {'wall':>8} {'CPU':>8} {'own CPU':>8} "
              f"{'exit':>4} {'stderr':>6} {'other CPU':>9}  result")
    print(header)
    print("-" * len(header))
    for r in report["rounds"]:
        for side in ("hubkeeper", "baseline"):
            for run in ("first", "again"):
                x = r.get(side, {}).get(run)
                if not x:
                    continue
                if side == "hubkeeper":
                    what = (f"{x.get('changes')} changes" if run == "first"
                            else "no changes" if x.get("no_changes") else "CHANGES")
                else:
                    what = f"{x['stderr_lines']} errors printed"
                if "verified" in x:
                    what += ", verified" if x["verified"]["ok"] else ", VERIFY FAILED"
                if run == "again":
                    changed = sum(x.get("etc_lines_changed", {}).values())
                    what += f", {changed} hkr* lines of /etc changed"
                share = x.get("foreign_cpu_share")
                print(f"{r['round']:>5} {side:<10} {run:<6} {x['wall']:>8.2f} {x['cpu']:>8.2f} "
                      f"{x['own_cpu']:>8.2f} {x['exit']:>4} {x['stderr_lines']:>6} "
                      f"{'-' if share is None else f'{share:.0%}':>9}  {what}")
    print("\nhubkeeper / baseline (below 1: hubkeeper faster)")
    print(f"{'round':>5} {'first wall':>11} {'first CPU':>10} {'again wall':>11} {'again CPU':>10}")
    for row in report["ratios"]:
        cells = [row.get(k) for k in ("first.wall", "first.cpu", "again.wall", "again.cpu")]
        widths = (11, 10, 11, 10)
        print(f"{row['round']:>5} " + " ".join(
            f"{'-' if c is None else f'{c:.3f}':>{w}}" for c, w in zip(cells, widths, strict=True)))
    print("\nwhat ran (sampled every 50 ms; seconds of wall time), first runs:")
    for r in report["rounds"]:
        for side in ("hubkeeper", "baseline"):
            x = r.get(side, {}).get("first")
            if x:
                top = ", ".join(f"{k} {v:.1f}" for k, v in list(x["running"].items())[:5])
                print(f"  round {r['round']} {side}: {top}")


# ----------------------------------------------------------------------------- main


def preflight() -> None:
    if os.geteuid() != 0:
        raise BenchError("needs root: both sides create real Linux accounts")
    if not HUBKEEPER.exists():
        raise BenchError(f"{HUBKEEPER} is missing: run with the project's venv, "
                         ".venv/bin/python bench/roster.py")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "chpasswd", "bash"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not on PATH")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=500, help="accounts per side [500]")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of (hubkeeper, baseline), A B A B with 2 [2]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                        f"{dt.date.today().isoformat()}-roster.json",
                        help="JSON results [bench/results/<today>-roster.json]")
    parser.add_argument("--quiet-wait", type=float, default=1800, metavar="SECONDS",
                        help="before each timed run, wait up to this long for other work on "
                             "the machine to stop (0: do not wait) [1800]")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 999:
        parser.error("--users must be 1..999 (names have three digits)")

    unwind_on_sigterm()
    try:
        preflight()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    report: dict[str, Any] = {
        "benchmark": "roster", "started": now(), "complete": False, "machine": machine(),
        "parameters": {
            "users": args.users, "tas": min(TAS, args.users), "rounds": args.rounds,
            "order": "per round: hubkeeper (first, again), then baseline (first, again); "
                     "all hkr* accounts deleted before each side's first run",
            "quiet_wait": args.quiet_wait, "sample_interval": SAMPLE_INTERVAL,
            "cpu": "getrusage(RUSAGE_CHILDREN) delta: the command and every process it "
                   "waited for; own_cpu: the command's process alone (hubkeeper's Python, "
                   "or bash)",
            "baseline_script": BASELINE_SCRIPT.format(group_all=GROUP_ALL, group_ta=GROUP_TA),
        },
        "rounds": [],
    }
    try:
        removed = remove_all()
        if removed["accounts"] or removed["groups"] or removed["leftover_paths"]:
            progress(f"removed leftovers: {removed['accounts']} accounts, "
                     f"{removed['groups']} groups, {removed['leftover_paths']} paths")
        report["leftovers_removed"] = removed
        report["startup"] = startup_floor(args.quiet_wait)
        progress(f"`hubkeeper --version` takes {report['startup']['median']:.2f} s")
        for number in range(1, args.rounds + 1):
            progress(f"round {number}")
            report["rounds"].append(run_round(number, args.users, args.quiet_wait))
            report["ratios"] = ratios(report["rounds"])
            write_json(args.out, report)
        report["complete"] = all(
            r[side][run]["exit"] == 0 for r in report["rounds"]
            for side in ("hubkeeper", "baseline") for run in ("first",)) and all(
            r["hubkeeper"]["again"]["no_changes"] for r in report["rounds"])
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        report["interrupted"] = True
    except BenchError as exc:
        progress(f"FAILED: {exc}")
        report["error"] = str(exc)
    finally:
        progress("deleting every hkr* account, group and home")
        report["cleanup"] = removed = remove_all()
        progress(f"deleted {removed['accounts']} accounts, {removed['groups']} groups "
                 f"in {removed['seconds']:.0f} s")
        report["ratios"] = ratios(report["rounds"])
        finish(report, args.out, REPO)
    print_report(report)
    print(f"\nJSON: {args.out}")
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
