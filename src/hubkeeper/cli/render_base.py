"""The one renderer of results: `emit` prints a verb's result as text or JSON; `text` is
registered per result type by the render_* modules (one per family of verbs)."""

from __future__ import annotations

import dataclasses
import json
from functools import singledispatch
from typing import Any

from rich.console import Console

from hubkeeper.verbs.capacity import CapacityResult
from hubkeeper.verbs.doctor import DoctorResult
from hubkeeper.verbs.prewarm import PrewarmResult
from hubkeeper.verbs.tls import TlsStatusResult
from hubkeeper.verbs.usage import UsageResult
from hubkeeper.verbs.users_password import PasswordResult

LIST_AT_MOST = 40  # longer plans are summarised per kind; --json has every action


def to_json(result: Any) -> str:
    body = dataclasses.asdict(result)
    if isinstance(result, UsageResult):
        body["total_bytes"] = result.total_bytes
    if isinstance(result, CapacityResult):
        body["ok"] = result.ok
    if isinstance(result, DoctorResult):
        body["exit_code"] = result.exit_code
        body["counts"] = {status: result.count(status) for status in
                          ("ok", "warning", "problem")}
    if isinstance(result, (TlsStatusResult, PrewarmResult)):
        body["ok"] = result.ok
    if isinstance(result, PasswordResult):  # in the 0600 file; JSON goes to logs and pipes
        del body["password"]
    return json.dumps(body, indent=2, sort_keys=True)


def emit(result: Any, as_json: bool, console: Console) -> None:
    if as_json:
        console.print_json(to_json(result)) if console.is_terminal else print(to_json(result))
    else:
        text(result, console)


@singledispatch
def text(result: Any, console: Console) -> None:
    raise TypeError(f"no text renderer for {type(result).__name__}")
