"""Commands that move the hub between versioned installs: upgrade, rollback."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hubkeeper.base import exits
from hubkeeper.cli.app import Context, cli, shared_options
from hubkeeper.cli.output import emit
from hubkeeper.verbs.upgrade import plan, rollback, upgrade


def _progress(quiet: bool):
    def say(line: str) -> None:
        if not quiet:
            print(f"  {line}", file=sys.stderr, flush=True)
    return say


@cli.command("upgrade")
@click.option("--to", "requirements", multiple=True, metavar="REQUIREMENT",
              help="What the new install is made of, as pip takes it (repeatable): "
              "hubkeeper==0.3.0, a wheel's path, jupyterhub==6.1.1 [default: hubkeeper, the "
              "newest].")
@click.option("--name", default=None,
              help="The new install's folder under the prefix [default: <hubkeeper "
              "version>-jupyterhub<version>].")
@click.option("--plan", "only_plan", is_flag=True,
              help="Show what would change (versions, database, servers, downtime); change "
              "nothing.")
@click.option("--grace", type=click.IntRange(0, 3600), default=60, show_default=True,
              help="Seconds between the banner that warns users and the hub's stop, when "
              "servers run.")
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The installs' prefix [default: the one this hubkeeper runs from].")
@click.option("--quiet", "-q", is_flag=True, help="No step lines on stderr.")
@shared_options()
@click.pass_context
def upgrade_command(ctx: click.Context, requirements: tuple[str, ...], name: str | None,
                    only_plan: bool, grace: int, prefix: Path | None, quiet: bool,
                    config: Path | None, as_json: bool) -> None:
    """Upgrade hubkeeper and JupyterHub: a new install beside this one, the database
    upgraded on a copy, the hub restarted on it and checked by a canary; any failure puts
    everything back (docs/upgrading.md). Finishes an upgrade that was killed."""
    obj: Context = ctx.obj
    hub = obj.open(config)
    if only_plan:
        emit(plan(hub, requirements, name, prefix), as_json, obj.out)
        return
    result = upgrade(hub, requirements, name, grace, prefix, _progress(quiet or as_json))
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(exits.FAILED)


@cli.command("rollback")
@click.option("--quiet", "-q", is_flag=True, help="No step lines on stderr.")
@shared_options()
@click.pass_context
def rollback_command(ctx: click.Context, quiet: bool, config: Path | None,
                     as_json: bool) -> None:
    """Undo the last upgrade: the old install current again, the old database back byte for
    byte, the hub on the old version if it was running."""
    obj: Context = ctx.obj
    result = rollback(obj.open(config), _progress(quiet or as_json))
    emit(result, as_json, obj.out)
    if result.state != "rolled-back":
        ctx.exit(exits.FAILED)
