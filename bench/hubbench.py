"""hubbench: spawn latency and a login storm against hubkeeper (both proxies) and stock JupyterHub.

    .venv/bin/python bench/hubbench.py [--quick] [--out bench/results/latest.json]

Needs root: every target runs in system mode, so servers run as real Linux accounts
(hkb01..hkb30, or --prefix P: P01..P30; created here and deleted again at the end).
Everything listens on 127.0.0.1.

For each target, in one run:
  warm-up   one journey (login, spawn, open /lab, 1+1, stop) that is not counted, so the
            first target does not pay alone for cold disk caches;
  sequential  N users one after another: journey(), then stop_server;
  storm     M users arriving uniformly at random (fixed seed) over a 10 s window, all running
            journey() concurrently; servers stay up until every journey ended, then all stop.
Every home is reset to a fresh copy of /etc/skel before the sequential phase and before the
storm, so each target sees the same "first login of the term" homes.

Results: a table on stdout and JSON (--out), see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import jupyterhub  # noqa: E402

import hubkeeper  # noqa: E402
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
from tests.support.hubproc import (  # noqa: E402
    _answers,
    free_ports,
    journaled,
    start_hub,
    write_config,
)
from tests.support.simuser import SimUser  # noqa: E402

VENV_BIN = Path(sys.executable).parent
NODE_PROXY = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
PYTHON_PROXY = VENV_BIN / "configurable-http-proxy"
SINGLEUSER = VENV_BIN / "jupyterhub-singleuser"

ACCOUNT_PREFIX = "hkb"
ACCOUNT_PATTERN = re.compile(rf"^{ACCOUNT_PREFIX}\d+$")
ACCOUNTS = tuple(f"{ACCOUNT_PREFIX}{i:02d}" for i in range(1, 31))
WARMUP_USER = ACCOUNTS[-1]
WORKDIR_PREFIX = "hubbench"  # hub state in /tmp/<this>-<target>-*
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9]{1,9}$")
SKEL = Path("/etc/skel")

STORM_WINDOW = 10.0  # seconds over which storm arrivals are spread
SEED = 20261123
HUB_START_DEADLINE = 120.0
HUB_STOP_DEADLINE = 60.0
JOURNEY_DEADLINE = 400.0  # outer bound; SimUser's own steps have shorter deadlines
STOP_DEADLINE = 90.0  # stop_server waits up to 60 s itself
PROCESS_EXIT_DEADLINE = 20.0


class BenchError(Exception):
    """A precondition is not met; the message says how to fix it."""


def use_prefix(prefix: str) -> None:
    """Name the accounts <prefix>01..<prefix>30 and the work directories /tmp/<prefix>-*, so
    that two runs (or a run and a test suite) on one machine do not touch each other's."""
    global ACCOUNT_PREFIX, ACCOUNT_PATTERN, ACCOUNTS, WARMUP_USER, WORKDIR_PREFIX
    if not PREFIX_PATTERN.match(prefix):
        raise BenchError(f"prefix {prefix!r}: 2-10 lower-case letters and digits, starting "
                         "with a letter (accounts are <prefix>01..<prefix>30)")
    ACCOUNT_PREFIX = prefix
    ACCOUNT_PATTERN = re.compile(rf"^{prefix}\d+$")
    ACCOUNTS = tuple(f"{prefix}{i:02d}" for i in range(1, 31))
    WARMUP_USER = ACCOUNTS[-1]
    WORKDIR_PREFIX = prefix


# ----------------------------------------------------------------------------- statistics


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), None when empty."""
    xs = sorted(values)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def stats(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r["error"] is None]
    failed = [r for r in records if r["error"] is not None]
    errors = Counter(_error_kind(r["error"]) for r in failed)
    return {
        "users": len(records),
        "ok": len(ok),
        "failures": len(failed),
        "stop_failures": sum(1 for r in records if r.get("stop_error")),
        "spawn": stats([r["spawn"] for r in ok]),
        "first_result": stats([r["first_result"] for r in ok]),
        "login": stats([r["login"] for r in ok]),
        "first_errors": [f"{r['user']}: {r['error']}" for r in failed[:5]],
        "error_kinds": dict(errors.most_common()),
    }


def _error_kind(error: str) -> str:
    """An error text with its variable parts (numbers, user names, ids) blanked, for counting."""
    text = re.sub(rf"{ACCOUNT_PREFIX}\d+", "<user>", error)
    text = re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{32}", "<id>", text)
    text = re.sub(r"\d+(\.\d+)?", "#", text)
    return text[:160]


# ----------------------------------------------------------------------------- accounts


def bench_accounts() -> list[pwd.struct_passwd]:
    return sorted((p for p in pwd.getpwall() if ACCOUNT_PATTERN.match(p.pw_name)),
                  key=lambda p: p.pw_name)


def processes_of(uids: set[int]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid in uids:
                pids.append(int(entry.name))
        except FileNotFoundError:
            continue
    return pids


def end_processes_of(uids: set[int], grace: float = PROCESS_EXIT_DEADLINE) -> list[int]:
    """Wait up to `grace` s for the accounts' processes (all started by this benchmark's hubs)
    to exit, then SIGTERM and finally SIGKILL the stragglers by pid. Returns those signalled."""
    end = time.monotonic() + grace
    while processes_of(uids) and time.monotonic() < end:
        time.sleep(0.2)
    stragglers = processes_of(uids)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_of(uids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        end = time.monotonic() + 5
        while processes_of(uids) and time.monotonic() < end:
            time.sleep(0.1)
    return stragglers


def delete_accounts() -> list[str]:
    """Delete every hkbNN account (this run's and leftovers of a crashed one), homes too."""
    accounts = bench_accounts()
    if not accounts:
        return []
    end_processes_of({p.pw_uid for p in accounts}, grace=2)
    for account in accounts:
        done = subprocess.run(["userdel", "-r", account.pw_name], capture_output=True,
                              text=True, timeout=60)
        # exit 12: the home could not be removed; the account itself is gone
        if done.returncode not in (0, 12):
            print(f"warning: userdel -r {account.pw_name}: {done.stderr.strip()}",
                  file=sys.stderr)
    return [p.pw_name for p in accounts]


def create_accounts(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            pwd.getpwnam(name)
            continue
        except KeyError:
            pass
        subprocess.run(["useradd", "-m", "-K", "HOME_MODE=0700", name], check=True,
                       capture_output=True, timeout=60)


def reset_homes(names: tuple[str, ...]) -> list[int]:
    """Give each account a fresh home (a copy of /etc/skel, 0700), as on its first login."""
    accounts = [pwd.getpwnam(name) for name in names]
    stragglers = end_processes_of({a.pw_uid for a in accounts})
    for account in accounts:
        home = Path(account.pw_dir)
        if home.name != account.pw_name or len(home.parts) < 3:
            raise BenchError(f"refusing to reset unexpected home {home} of {account.pw_name}")
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(SKEL, home, symlinks=True)
        for root, dirs, files in os.walk(home):
            for item in (root, *(os.path.join(root, d) for d in dirs),
                         *(os.path.join(root, f) for f in files)):
                os.lchown(item, account.pw_uid, account.pw_gid)
        home.chmod(0o700)
    return stragglers


# ----------------------------------------------------------------------------- other load

class ForeignLoad:
    """CPU time used by processes outside this benchmark's process tree (another test run, a
    build...), sampled every second in a thread. A lower bound: processes that live less than
    a second between two samples are missed."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.root = os.getpid()
        self.ticks = 0
        self._previous: dict[int, tuple[int, int]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ForeignLoad:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def seconds(self) -> float:
        return self.ticks / CLOCK_TICKS

    def counters(self) -> dict[str, int]:
        """More CPU tick counters a subclass keeps (name -> ticks so far); each phase
        records how much each grew as <name>_cpu_seconds."""
        return {}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        table = proc_table()
        mine: dict[int, bool] = {self.root: True}

        def is_mine(pid: int) -> bool:
            chain = []
            while pid not in mine:
                chain.append(pid)
                parent = table.get(pid, (0, 0, 0, ""))[0]
                if parent <= 1:
                    mine[pid] = False
                    break
                pid = parent
            verdict = mine[pid]
            for link in chain:
                mine[link] = verdict
            return verdict

        current = {pid: (ticks, start) for pid, (_, ticks, start, _) in table.items()
                   if not is_mine(pid)}
        if self._previous is not None:
            for pid, (ticks, start) in current.items():
                before = self._previous.get(pid)
                if before is not None and before[1] == start:
                    self.ticks += ticks - before[0]
                else:
                    self.ticks += ticks  # started since the last sample
        self._previous = current


def cpu_ticks(pids: dict[str, int]) -> dict[str, int]:
    """user+system CPU ticks of each named process (its own threads, not its children)."""
    ticks = {}
    for name, pid in pids.items():
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        ticks[name] = int(fields[11]) + int(fields[12])
    return ticks


# ----------------------------------------------------------------------------- targets


@dataclass
class RunningTarget:
    url: str
    password: str
    stop: Callable[[], float]
    logs: list[Path]
    pid_files: list[Path] = field(default_factory=list)
    pids: Callable[[], dict[str, int]] = dict  # "hub"/"proxy" -> pid, for their CPU time


def start_hubkeeper(workdir: Path, proxy: str, name: str = "hubbench", extra: str = "",
                    prepare: Callable[[Path], None] | None = None) -> RunningTarget:
    """`hubkeeper up` in system mode for ACCOUNTS; `extra`: more hub.yaml sections;
    `prepare(config)` runs before `up` (e.g. `hubkeeper env build`).

    System mode refuses a shared password (anyone could log in as anyone) and runs a hub
    user only as an account in hubkeeper's journal: the accounts are recorded there as
    `adopt` would, and log in with PAM, every one with the same generated password."""
    config = write_config(workdir, name=name, mode="system", auth="pam", admins=(),
                          allowed=ACCOUNTS, proxy=proxy, extra=extra)
    journaled(config, *ACCOUNTS)
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input="".join(f"{a}:{password}\n" for a in ACCOUNTS),
                   text=True, check=True, timeout=60)
    if prepare is not None:
        prepare(config)
    hub = start_hub(config, deadline=HUB_START_DEADLINE)

    def stop() -> float:
        return hub.stop(deadline=HUB_STOP_DEADLINE)

    # The hub writes its log into the state dir; up.log has hubkeeper's own messages too.
    return RunningTarget(hub.url, password, stop, [hub.state / "logs" / "hub.log",
                                                       hub.output],
                         [hub.state / "run" / "proxy.pid"],
                         lambda: {"hub": hub.hub_pid(), "proxy": hub.proxy_pid()})


STOCK_CONFIG = """\
# A minimal jupyterhub_config.py, as a user would write it for the same setup.
c.JupyterHub.bind_url = "http://127.0.0.1:{port}/"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/jupyterhub_cookie_secret"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = "{password}"
c.Authenticator.allowed_users = {allowed!r}
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ["{singleuser}"]
c.Spawner.default_url = "/lab"
"""


def _stock_child_setup() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def start_stock(workdir: Path) -> RunningTarget:
    port, hub_port, proxy_api_port = free_ports(3)
    password = "bench-" + os.urandom(8).hex()
    config = workdir / "jupyterhub_config.py"
    config.write_text(STOCK_CONFIG.format(
        port=port, hub_port=hub_port, proxy_api_port=proxy_api_port, workdir=workdir,
        password=password, allowed=set(ACCOUNTS), singleuser=SINGLEUSER))
    log = workdir / "jupyterhub.log"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_stock_child_setup,
        )
    url = f"http://127.0.0.1:{port}/"
    proxy_pid_file = workdir / "jupyterhub-proxy.pid"  # jupyterhub's default, in its cwd

    def stop() -> float:
        began = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=HUB_STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                raise BenchError(f"jupyterhub did not exit within {HUB_STOP_DEADLINE} s; "
                                 "killed") from None
        return time.monotonic() - began

    end = time.monotonic() + HUB_START_DEADLINE
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise BenchError(f"jupyterhub exited with {proc.returncode}:\n"
                             f"{log.read_text(errors='replace')[-4000:]}")
        if _answers(url):
            return RunningTarget(url, password, stop, [log], [proxy_pid_file],
                                 lambda: {"hub": proc.pid,
                                          "proxy": int(proxy_pid_file.read_text().strip())})
        time.sleep(0.2)
    with contextlib.suppress(BenchError):
        stop()
    raise BenchError(f"jupyterhub did not answer within {HUB_START_DEADLINE} s:\n"
                     f"{log.read_text(errors='replace')[-4000:]}")


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    start: Callable[[Path], RunningTarget]


TARGETS = (
    Target("hubkeeper-python", "hubkeeper, proxy.kind python",
           lambda d: start_hubkeeper(d, "python")),
    Target("hubkeeper-node", "hubkeeper, proxy.kind node", lambda d: start_hubkeeper(d, "node")),
    Target("stock", "stock JupyterHub", start_stock),
)
STOCK = "stock"


def end_leftover_proxy(pid_file: Path) -> bool:
    """If a hub died without stopping its proxy, stop that proxy (by the pid it recorded)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    if b"configurable-http-proxy" not in cmdline and b"hubkeeper.proc.proxy" not in cmdline:
        return False
    os.kill(pid, signal.SIGTERM)
    return True


# ----------------------------------------------------------------------------- phases


def _record(user: SimUser, **extra: Any) -> dict[str, Any]:
    t = user.timings
    return {"user": user.name, "login": t.login, "spawn": t.spawn,
            "first_result": t.first_result, "error": t.error, **extra}


async def run_journey(user: SimUser) -> None:
    """journey() with an outer deadline; anything unexpected is recorded as an error too."""
    try:
        await asyncio.wait_for(user.journey(), JOURNEY_DEADLINE)
    except asyncio.TimeoutError:
        user.timings.error = f"journey not done within {JOURNEY_DEADLINE:.0f} s"
    except Exception as exc:  # a bug or a surprise: keep measuring the others
        user.timings.error = f"{type(exc).__name__}: {exc}"
    if user.timings.error is None and user.timings.first_result is None:
        user.timings.error = "journey ended without a result"


async def run_stop(user: SimUser) -> tuple[float | None, str | None]:
    if user.timings.login is None:
        return None, None  # never logged in: nothing to stop
    began = time.monotonic()
    try:
        await asyncio.wait_for(user.stop_server(), STOP_DEADLINE)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return time.monotonic() - began, None


async def sequential(url: str, password: str, names: tuple[str, ...],
                     progress: Callable[[str], None]) -> list[dict[str, Any]]:
    records = []
    for name in names:
        async with SimUser(url, name, password) as user:
            await run_journey(user)
            stop_seconds, stop_error = await run_stop(user)
        records.append(_record(user, stop=stop_seconds, stop_error=stop_error))
        r = records[-1]
        progress(f"  {name}: spawn {_fmt(r['spawn'])} s, first result "
                 f"{_fmt(r['first_result'])} s" + (f", ERROR {r['error']}" if r["error"] else "")
                 + (f", STOP ERROR {stop_error}" if stop_error else ""))
    return records


async def storm(url: str, password: str, names: tuple[str, ...], window: float, seed: int,
                progress: Callable[[str], None]) -> dict[str, Any]:
    rng = random.Random(seed)
    arrivals = sorted(rng.uniform(0, window) for _ in names)
    users = [SimUser(url, name, password) for name in names]
    try:
        began = time.monotonic()

        async def arrive(user: SimUser, at: float) -> None:
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            await run_journey(user)
            t = user.timings
            progress(f"  {user.name} (t+{at:4.1f} s): first result {_fmt(t.first_result)} s"
                     + (f", ERROR {t.error}" if t.error else ""))

        await asyncio.gather(*(arrive(u, a) for u, a in zip(users, arrivals, strict=True)))
        journeys_done = time.monotonic() - began
        stop_began = time.monotonic()
        stops = await asyncio.gather(*(run_stop(u) for u in users))
        stop_wall = time.monotonic() - stop_began
    finally:
        for user in users:
            await user.session.close()
    records = [_record(u, arrival=a, stop=s, stop_error=e)
               for u, a, (s, e) in zip(users, arrivals, stops, strict=True)]
    return {"records": records, "wall": journeys_done, "stop_wall": stop_wall}


# ----------------------------------------------------------------------------- one target


def scan_log(path: Path) -> dict[str, Any]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    errors = [line for line in lines if line.startswith("[E ")]
    return {"lines": len(lines), "error_lines": len(errors),
            "warning_lines": sum(1 for line in lines if line.startswith("[W ")),
            "first_error_lines": [line[:300] for line in errors[:10]]}


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def run_target(target: Target, n_seq: int, n_storm: int, seed: int, quiet_deadline: float,
               foreign: ForeignLoad, keep_logs: Path | None,
               progress: Callable[[str], None]) -> dict[str, Any]:
    result: dict[str, Any] = {"label": target.label, "started": now()}
    workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}-{target.key}-"))
    running: RunningTarget | None = None
    nproc = len(os.sched_getaffinity(0))

    def measured(name: str, run: Callable[[], Any]) -> Any:
        """Run one phase once the machine is quiet; note how busy others kept it meanwhile."""
        before = wait_quiet(quiet_deadline, progress) if quiet_deadline > 0 else None
        load = loadavg()
        assert running is not None
        try:
            pids = running.pids()
        except (OSError, ValueError):
            pids = {}
        own_before = cpu_ticks(pids)
        counted_before = foreign.counters()
        ticks, began, began_unix = foreign.ticks, time.monotonic(), time.time()
        outcome = run()
        wall = time.monotonic() - began
        own_after = cpu_ticks(pids)
        counted_after = foreign.counters()
        seconds = (foreign.ticks - ticks) / CLOCK_TICKS
        result.setdefault("machine_load", {})[name] = {
            "quiet_wait": before, "loadavg_before": load, "wall": round(wall, 1),
            "began_unix": round(began_unix, 3),
            "foreign_cpu_seconds": round(seconds, 1),
            "foreign_cpu_share": round(seconds / (wall * nproc), 3) if wall else None,
            **{f"{key}_cpu_seconds": round((own_after[key] - own_before[key]) / CLOCK_TICKS, 2)
               for key in own_before if key in own_after},
            **{f"{key}_cpu_seconds":
               round((counted_after[key] - counted_before[key]) / CLOCK_TICKS, 2)
               for key in counted_before if key in counted_after},
        }
        if seconds > 0.05 * wall * nproc:
            progress(f"  note: other processes used {seconds:.0f} CPU-s during {name} "
                     f"({seconds / (wall * nproc):.0%} of the machine)")
        return outcome

    try:
        reset_homes((WARMUP_USER,))
        began = time.monotonic()
        running = target.start(workdir)
        result["hub_start"] = time.monotonic() - began
        progress(f"{target.label}: up at {running.url} in {result['hub_start']:.1f} s")
        url, password = running.url, running.password

        progress("  warm-up (not counted)")
        warm = measured("warmup", lambda: asyncio.run(
            sequential(url, password, (WARMUP_USER,), progress)))
        result["warmup"] = warm[0]

        seq_names = ACCOUNTS[:n_seq]
        result["sequential_home_stragglers"] = reset_homes(seq_names + (WARMUP_USER,))
        progress(f"  sequential: {n_seq} users")
        records = measured("sequential", lambda: asyncio.run(
            sequential(url, password, seq_names, progress)))
        result["sequential"] = {**summarize(records), "records": records}

        storm_names = ACCOUNTS[:n_storm]
        result["storm_home_stragglers"] = reset_homes(storm_names)
        progress(f"  storm: {n_storm} users over {STORM_WINDOW:.0f} s")
        outcome = measured("storm", lambda: asyncio.run(
            storm(url, password, storm_names, STORM_WINDOW, seed, progress)))
        result["storm"] = {**summarize(outcome["records"]), "wall": outcome["wall"],
                           "stop_wall": outcome["stop_wall"], "records": outcome["records"]}
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        progress(f"  FAILED: {result['error']}")
    finally:
        if running is not None:
            try:
                result["hub_stop"] = running.stop()
            except (AssertionError, BenchError) as exc:
                result["hub_stop_error"] = str(exc)
            for pid_file in running.pid_files:
                if end_leftover_proxy(pid_file):
                    result["leftover_proxy"] = str(pid_file)
            result["hub_log"] = scan_log(running.logs[0])
            if keep_logs is not None:
                keep_logs.mkdir(parents=True, exist_ok=True)
                for log in running.logs:
                    with contextlib.suppress(OSError):
                        shutil.copy(log, keep_logs / f"{target.key}-{log.name}")
        result["leftover_processes"] = end_processes_of(
            {pwd.getpwnam(n).pw_uid for n in ACCOUNTS}, grace=10)
        shutil.rmtree(workdir, ignore_errors=True)
        result["finished"] = now()
    return result


# ----------------------------------------------------------------------------- machine


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    facts = machine_facts(REPO)
    node_proxy = None
    if NODE_PROXY.exists():
        node_proxy = output_of([str(NODE_PROXY), "--version"])
    modified = facts["hubkeeper_src_modified"]
    return {
        **facts,
        # a bool here, as in the results recorded so far (roster.py keeps the lines)
        "hubkeeper_src_modified": bool(modified) if modified is not None else None,
        "jupyterhub": jupyterhub.__version__,
        "jupyterlab": _version("jupyterlab"),
        "jupyter_server": _version("jupyter_server"),
        "hubkeeper": hubkeeper.__version__,
        "python_proxy": _version("configurable-http-proxy"),
        "node_proxy": node_proxy,
        "node": output_of(["node", "--version"]),
        "aiohttp": _version("aiohttp"),
    }


# ----------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(targets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """hubkeeper / stock for p50 and p95 of each measured time (below 1: hubkeeper faster)."""
    stock = targets.get(STOCK, {})
    out: dict[str, Any] = {}
    for key, result in targets.items():
        if key == STOCK:
            continue
        out[key] = {}
        for phase, metric in (("sequential", "spawn"), ("sequential", "first_result"),
                              ("storm", "first_result"), ("storm", "spawn")):
            for p in ("p50", "p95"):
                mine = result.get(phase, {}).get(metric, {}).get(p)
                theirs = stock.get(phase, {}).get(metric, {}).get(p)
                out[key][f"{phase}.{metric}.{p}"] = _ratio(mine, theirs)
    return out


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=150)
    m = report["machine"]
    console.print(f"\n{m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, "
                  f"Linux {m['kernel']}, Python {m['python']}, JupyterHub {m['jupyterhub']}, "
                  f"hubkeeper {m['hubkeeper']} @ {(m['hubkeeper_commit'] or '?')[:10]}")
    params = report["parameters"]
    seq = Table(title=f"Sequential: {params['sequential_users']} users one after another "
                      "(seconds)")
    storm_table = Table(title=f"Login storm: {params['storm_users']} users over "
                              f"{params['storm_window']:.0f} s (seconds)")
    for table in (seq, storm_table):
        table.add_column("target")
        table.add_column("ok", justify="right")
    for name in ("spawn p50", "p95", "max", "first result p50", "p95", "max"):
        seq.add_column(name, justify="right")
    for name in ("first result p50", "p95", "max", "spawn p50", "p95"):
        storm_table.add_column(name, justify="right")
    for table in (seq, storm_table):
        table.add_column("other CPU", justify="right")  # share used by processes not ours
    storm_table.add_column("first error")

    def other(result: dict[str, Any], phase: str) -> str:
        share = result.get("machine_load", {}).get(phase, {}).get("foreign_cpu_share")
        return "-" if share is None else f"{share:.0%}"

    for key, result in report["targets"].items():
        s = result.get("sequential")
        if s:
            seq.add_row(key, f"{s['ok']}/{s['users']}",
                        *(_fmt(s["spawn"][p]) for p in ("p50", "p95", "max")),
                        *(_fmt(s["first_result"][p]) for p in ("p50", "p95", "max")),
                        other(result, "sequential"))
        else:
            seq.add_row(key, "-", *["-"] * 7)
        st = result.get("storm")
        if st:
            storm_table.add_row(key, f"{st['ok']}/{st['users']}",
                                *(_fmt(st["first_result"][p]) for p in ("p50", "p95", "max")),
                                *(_fmt(st["spawn"][p]) for p in ("p50", "p95")),
                                other(result, "storm"),
                                (st["first_errors"] or [""])[0][:70])
        else:
            storm_table.add_row(key, "-", *["-"] * 6, result.get("error", "")[:70])
    console.print(seq)
    console.print(storm_table)
    ratio_table = Table(title="hubkeeper / stock (below 1: hubkeeper faster)")
    ratio_table.add_column("target")
    columns = ("sequential.spawn", "sequential.first_result", "storm.first_result")
    for column in columns:
        ratio_table.add_column(f"{column} p50", justify="right")
        ratio_table.add_column("p95", justify="right")
    for key, values in report["ratios"].items():
        ratio_table.add_row(key,
                            *(_fmt(values.get(f"{c}.{p}")) for c in columns
                              for p in ("p50", "p95")))
    console.print(ratio_table)


# ----------------------------------------------------------------------------- main


def preflight(selected: list[Target]) -> None:
    if os.geteuid() != 0:
        raise BenchError("hubbench needs root: servers run as real Linux accounts "
                         "(system mode), which it creates and deletes")
    if sys.prefix == sys.base_prefix:
        raise BenchError("run hubbench with the project's venv: .venv/bin/python "
                         "bench/hubbench.py")
    for tool in ("useradd", "userdel"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not on PATH")
    if not PYTHON_PROXY.exists() or not SINGLEUSER.exists():
        raise BenchError(f"{PYTHON_PROXY} or {SINGLEUSER} is missing; reinstall the venv")
    if any(t.key == "hubkeeper-node" for t in selected) and not NODE_PROXY.exists():
        raise BenchError(
            f"the npm configurable-http-proxy is not installed at {NODE_PROXY}; install it "
            f"with: npm install --prefix {sys.prefix} configurable-http-proxy "
            "(or leave the node target out with --targets)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: 3 sequential and 6 storm users")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "latest.json",
                        help="where to write the JSON results [bench/results/latest.json]")
    parser.add_argument("--targets", default=",".join(t.key for t in TARGETS),
                        help="comma-separated subset of: "
                             + ", ".join(t.key for t in TARGETS))
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the storm arrivals")
    parser.add_argument("--quiet-wait", type=float, default=1800, metavar="SECONDS",
                        help="before each phase, wait up to this long for other work on the "
                             "machine to stop (0: do not wait) [1800]")
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR",
                        help="copy each target's hub log into DIR")
    parser.add_argument("--prefix", default=ACCOUNT_PREFIX,
                        help="accounts <prefix>01..<prefix>30 and work directories "
                             f"/tmp/<prefix>-* [{ACCOUNT_PREFIX}]")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.targets.split(",") if k.strip()]
    unknown = set(keys) - {t.key for t in TARGETS}
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    selected = [t for t in TARGETS if t.key in keys]
    n_seq, n_storm = (3, 6) if args.quick else (10, 30)

    unwind_on_sigterm()
    try:
        use_prefix(args.prefix)
        preflight(selected)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    report: dict[str, Any] = {
        "benchmark": "hubbench",
        "started": now(),
        "complete": False,
        "machine": machine(),
        "parameters": {"quick": args.quick, "sequential_users": n_seq, "storm_users": n_storm,
                       "storm_window": STORM_WINDOW, "seed": args.seed,
                       "percentiles": "linear interpolation between closest ranks, over "
                                      "users that got a result",
                       "homes": "reset to /etc/skel before each phase",
                       "quiet_wait": args.quiet_wait},
        "targets": {},
    }
    try:
        removed = delete_accounts()
        if removed:
            progress(f"removed {len(removed)} leftover accounts: {', '.join(removed)}")
        create_accounts(ACCOUNTS)
        progress(f"accounts {ACCOUNTS[0]}..{ACCOUNTS[-1]} ready")
        with ForeignLoad() as foreign:
            for target in selected:
                report["targets"][target.key] = run_target(
                    target, n_seq, n_storm, args.seed, args.quiet_wait, foreign,
                    args.keep_logs, progress)
                report["ratios"] = ratios(report["targets"])
                write_json(args.out, report)
                time.sleep(5)  # let the machine settle between targets
        report["complete"] = all("error" not in t for t in report["targets"].values())
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        report["interrupted"] = True
    finally:
        deleted = delete_accounts()
        progress(f"deleted {len(deleted)} accounts")
        report["ratios"] = ratios(report["targets"])
        finish(report, args.out, REPO)
    print_report(report)
    print(f"\nJSON: {args.out}")
    return 0 if report["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
