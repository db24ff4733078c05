"""The announcement banner, read at each page: `upgrade` warns users without a restart.

JupyterHub (5 and 6) shows the template variable `announcement` at the top of every page
(page.html, `{{ announcement | safe }}`), and calls a callable value of `template_vars` with
the page's user each time it renders one. So the banner is a file in the state directory:
written by `hubkeeper upgrade` before servers are restarted, removed after.
"""

from __future__ import annotations

import html
from typing import Any

MAX_BYTES = 2000  # a banner, not a page


class Announcement:
    """`template_vars["announcement"]`: the escaped text of `path`, or "" when there is none."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, user: Any = None) -> str:
        try:
            with open(self.path, "rb") as handle:
                text = handle.read(MAX_BYTES).decode(errors="replace")
        except OSError:
            return ""
        return html.escape(text.strip())
