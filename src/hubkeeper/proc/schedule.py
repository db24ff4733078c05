"""The hub's `hubkeeper-schedule` service (`python -m hubkeeper.proc.schedule`, for hub.yaml's
`schedule:`): a separate process JupyterHub starts with its API URL and token. Each round
it starts the servers of each class whose window has begun and keeps them active until it
ends (host/prewarm.py); what it did goes to its output, which is the hub's log.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hubkeeper.host.hubapi import HubAPI, HubUnreachable
from hubkeeper.host.peer import ListenerRefused
from hubkeeper.host.prewarm import Outcome, keep_active, start_servers
from hubkeeper.render.schedule import in_window


def run_schedule(api: HubAPI, windows: list[dict[str, Any]], every: float,
                 now: Callable[[], datetime] = datetime.now,
                 sleep: Callable[[float], None] = time.sleep,
                 rounds: int | None = None) -> None:
    """Forever (or `rounds` times): start the servers of each class whose window has begun
    (once per day and window), and keep them active until it ends."""
    prewarmed: set[tuple[int, str]] = set()
    while rounds is None or rounds > 0:
        try:
            _schedule_round(api, windows, now(), prewarmed)
        except HubUnreachable as exc:  # the hub restarts; try again next round
            print(f"schedule: the hub does not answer: {exc}", file=sys.stderr, flush=True)
        except ListenerRefused as exc:  # someone holds the hub's port: nothing was sent
            print(f"schedule: {exc}", file=sys.stderr, flush=True)
        sleep(every)
        if rounds is not None:
            rounds -= 1


def _schedule_round(api: HubAPI, windows: list[dict[str, Any]], moment: datetime,
                    prewarmed: set[tuple[int, str]]) -> None:
    for index, window in enumerate(windows):
        if not in_window(window, moment):
            continue
        key = (index, moment.date().isoformat())
        if key not in prewarmed:
            outcome = Outcome()
            start_servers(api, window["users"], outcome)
            prewarmed.add(key)
            print(f"schedule: class of {window['group']} ({window['start']}-"
                  f"{window['end']}): started {len(outcome.started)}, already running "
                  f"{len(outcome.already)}, refused {len(outcome.failed)}", flush=True)
            for name, why in outcome.failed:
                print(f"schedule: {name}: {why}", file=sys.stderr, flush=True)
        keep_active(api, window["users"])


def main() -> None:
    """The `hubkeeper-schedule` service: JupyterHub gives it its API URL and token."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    api_url = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    base = api_url.removesuffix("/hub/api")
    api = HubAPI(base, os.environ["JUPYTERHUB_API_TOKEN"])
    windows = json.loads(os.environ["HUBKEEPER_SCHEDULE"])
    run_schedule(api, windows, float(os.environ.get("HUBKEEPER_KEEPALIVE", "60")))


if __name__ == "__main__":
    main()
