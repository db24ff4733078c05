"""Results as text or JSON: `emit` and `text`, with every family's renderer registered."""

from __future__ import annotations

# Importing a family registers its text renderers with `text`.
from hubkeeper.cli import (  # noqa: F401
    render_doctor,
    render_lifecycle,
    render_run,
    render_setup,
    render_upgrade,
    render_users,
)
from hubkeeper.cli.render_base import emit, text, to_json

__all__ = ["emit", "text", "to_json"]
