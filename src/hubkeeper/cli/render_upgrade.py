"""Text for upgrade and rollback."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from hubkeeper.cli.render_base import text
from hubkeeper.verbs.upgrade import UpgradePlan, UpgradeResult


@text.register
def _(result: UpgradePlan, console: Console) -> None:
    console.print(f"upgrade of {result.hub}: {result.current} -> {result.target} "
                  f"(in {result.prefix})")
    if result.unfinished:
        console.print(f"  an earlier upgrade ({result.unfinished}) did not finish: "
                      "`hubkeeper upgrade` finishes it, `hubkeeper rollback` undoes it")
    for change in result.changes:
        console.print(f"  {change.package}: {change.old or '-'} -> {change.new or '-'}")
    if not result.changes:
        console.print("  no package changes version")
    db = result.database_revision or "none yet"
    if not result.schema_may_change:
        console.print(f"  database: revision {db}; the new JupyterHub runs on it: no schema "
                      "change")
    else:
        head = result.database_head or "unknown (its wheel could not be read)"
        console.print(f"  database: revision {db} -> {head}: `jupyterhub upgrade-db` runs on "
                      "a copy, the database is kept for rollback")
    console.print(f"  state format: schema {result.state_schema}")
    if result.servers_restart:
        console.print(f"  servers: {result.servers_running} running; they stop with the "
                      "hub and users start them again (a banner warns them first)")
    else:
        console.print("  servers: none running")
    console.print(f"  downtime: {result.downtime}")
    console.print(f"  run: hubkeeper upgrade {' '.join('--to ' + r for r in result.requirements)}",
                  markup=False)


@text.register
def _(result: UpgradeResult, console: Console) -> None:
    for line in result.steps:
        console.print(f"  {escape(line)}")
    if result.ok:
        console.print(f"upgraded {result.hub} to {result.target}")
    elif result.state == "rolled-back" and result.error:
        console.print(f"upgrade to {result.target} FAILED at step {result.failed_step}: "
                      f"{escape(result.error)}")
        console.print(f"everything was put back: {result.current} is current, the database "
                      f"is the old one (record: {result.record})")
    elif result.state == "rolled-back":
        console.print(f"rolled back: {result.current} is current (record: {result.record})")
    else:
        console.print(f"upgrade {result.state}: {escape(result.error or '')}; see "
                      f"{result.record}")
