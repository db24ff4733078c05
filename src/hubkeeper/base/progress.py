"""Progress as lines, for a program that runs hubkeeper and shows its progress (the web
page's actions, lifecycle/webjobs.py): with HUBKEEPER_PROGRESS_LINES=1 in its environment,
a long verb also writes `hubkeeper-progress <done> <total> <what>` to stderr at each step."""

from __future__ import annotations

import re

LINES_ENV = "HUBKEEPER_PROGRESS_LINES"
PREFIX = "hubkeeper-progress"
_LINE = re.compile(rf"^{PREFIX} (\d+) (\d+) ?(.*)$")


def line(done: int, total: int, what: object) -> str:
    return f"{PREFIX} {done} {total} {str(what)[:80]}"


def last_step(text: str) -> tuple[int, int, str] | None:
    """The last progress line in `text`: (done, total, what), or None."""
    for candidate in reversed(text.splitlines()):
        match = _LINE.match(candidate)
        if match:
            return int(match.group(1)), int(match.group(2)), match.group(3)
    return None
