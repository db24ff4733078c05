"""Commands that set a hub up: init, check, render, plan, apply, adopt."""

from __future__ import annotations

from pathlib import Path

import click

from hubkeeper.cli.app import Context, cli, hub_command, progress_bar, shared_options
from hubkeeper.cli.output import emit
from hubkeeper.verbs.adopt import adopt
from hubkeeper.verbs.apply import apply, replace_roster, with_roster
from hubkeeper.verbs.check import check
from hubkeeper.verbs.init import init
from hubkeeper.verbs.plan import plan
from hubkeeper.verbs.render import render_config


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.pass_obj
def init_command(obj: Context, directory: Path) -> None:
    """Write a commented starter hub.yaml into DIRECTORY."""
    emit(init(directory), False, obj.out)


hub_command(
    cli, "check", check,
    """Validate hub.yaml (and its fit to this machine). Exit 0 if valid, 2 with messages.""",
    checking=True)


hub_command(
    cli, "render", render_config,
    """Show the JupyterHub configuration hub.yaml becomes (secrets redacted).""")


roster_option = click.option(
    "--roster-csv", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None, help="A new roster CSV in place of the one users.roster.csv names (apply "
    "puts it there, keeping the old one as <name>.previous).")


@cli.command("plan")
@roster_option
@shared_options()
@click.pass_obj
def plan_command(obj: Context, roster_csv: Path | None, config: Path | None,
                 as_json: bool) -> None:
    """Show what `apply` would change: accounts, groups, passwords, locks, hub users, and
    the nginx site and certificate of hub.url."""
    hub = obj.open(config)
    emit(plan(with_roster(hub, roster_csv) if roster_csv else hub), as_json, obj.out)


@cli.command("apply")
@roster_option
@shared_options()
@click.pass_obj
def apply_command(obj: Context, roster_csv: Path | None, config: Path | None,
                  as_json: bool) -> None:
    """Make the machine and the hub follow the roster, and nginx serve hub.url. Running it
    again changes nothing."""
    hub = obj.open(config)
    if roster_csv:
        hub = replace_roster(hub, roster_csv)
    with progress_bar(as_json) as progress:
        result = apply(hub, progress)
    emit(result, as_json, obj.out)


@cli.command("adopt")
@click.option("--yes", is_flag=True, help="Create the accounts (without it: only show them).")
@click.option("--homes", type=click.Path(file_okay=False, path_type=Path), default="/home",
              show_default=True, help="Where the homes are.")
@shared_options()
@click.pass_obj
def adopt_command(obj: Context, yes: bool, homes: Path, config: Path | None,
                  as_json: bool) -> None:
    """Give homes whose accounts were lost their accounts back, with the same uid."""
    emit(adopt(obj.open(config), yes, homes), as_json, obj.out)
