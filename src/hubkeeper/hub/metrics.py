"""hubkeeper's metrics of server starts, in the hub process's default Prometheus registry: so
JupyterHub serves them at /hub/metrics beside its own, to a token with `read:metrics`
(docs/metrics.md). The hub counts them itself as starts happen; nothing is read from a file
a user could write. Disk use and snapshots are hub/metrics_collector.py's.

Registered when the module is first imported (once per process: the spawners import it).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

# Why a start failed, as hubkeeper_failed_starts_total{reason} says it: a small fixed set.
REFUSED = "refused"  # the line of starts: waited longer than starts.queue_timeout
HOOK = "hook"  # a start-up script failed (hooks.on_failure: fail)
DISK = "disk"  # the disk guard (data.min_free): over the fair share on a full disk
SPAWN_ERROR = "spawn_error"  # anything else: environment, account, materials, the server
REASONS = (REFUSED, HOOK, DISK, SPAWN_ERROR)
_BY_REFUSAL = {"queue": REFUSED, "hook": HOOK, "disk": DISK}  # SpawnRefused.reason -> reason

# From a moment to the 15 min of the default starts.queue_timeout and beyond.
WAIT_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800, float("inf"))

START_QUEUE_WAITING = Gauge(
    "hubkeeper_start_queue_waiting",
    "Server starts waiting in the hub's line of starts now (starts: at_once are running).")
START_QUEUE_WAIT = Histogram(
    "hubkeeper_start_queue_wait_seconds",
    "Seconds a server start waited in the line of starts before it was let through, or "
    "refused after starts.queue_timeout.", buckets=WAIT_BUCKETS)
FAILED_STARTS = Counter(
    "hubkeeper_failed_starts",
    "Server starts that failed, by reason: refused (waited in the line of starts past "
    "starts.queue_timeout), hook (a start-up script failed), disk (the disk guard), "
    "spawn_error (anything else).", ["reason"])
HOOK_FAILURES = Counter(
    "hubkeeper_hook_failures",
    "Start-up scripts that failed (exit status, timeout, or could not run), by the hook's "
    "name in hub.yaml and as whom it ran (root or user), whether or not the start went on.",
    ["hook", "as"])

for _reason in REASONS:  # each reason shows 0 from the start, so rate() sees the first one
    FAILED_STARTS.labels(_reason)


def reason_of(refusal: str | None) -> str:
    """The metric's reason for a start refused with SpawnRefused(reason=refusal); None: the
    start failed with another exception."""
    return _BY_REFUSAL.get(refusal or "", SPAWN_ERROR)


def start_failed(refusal: str | None) -> None:
    FAILED_STARTS.labels(reason_of(refusal)).inc()


def hook_failed(name: str, phase: str) -> None:
    """phase: as_root or as_user, as hub.yaml's hooks: names it."""
    HOOK_FAILURES.labels(name, phase.removeprefix("as_")).inc()


def start_waited(seconds: float) -> None:
    START_QUEUE_WAIT.observe(max(0.0, seconds))


def watch_line(waiting: Callable[[], int]) -> None:
    """hubkeeper_start_queue_waiting reads `waiting()` at each scrape (the line's length)."""
    START_QUEUE_WAITING.set_function(waiting)
