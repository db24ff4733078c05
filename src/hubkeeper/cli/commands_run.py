"""Commands that run the hub and look at it: up, status, usage, capacity, prewarm, env,
materials."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console

from hubkeeper.base import exits
from hubkeeper.cli.app import Context, cli, hub_command, shared_options
from hubkeeper.cli.output import emit
from hubkeeper.verbs.capacity import capacity
from hubkeeper.verbs.env import build_envs, list_envs, prune_env, rebuild_env, rollback_env
from hubkeeper.verbs.materials import publish
from hubkeeper.verbs.prewarm import prewarm
from hubkeeper.verbs.status import status
from hubkeeper.verbs.up import up
from hubkeeper.verbs.usage import usage


@cli.command("up")
@shared_options(json=False)
@click.option("--quiet", "-q", is_flag=True, help="Do not echo the hub's log (it is kept in "
              "the state dir).")
@click.pass_obj
def up_command(obj: Context, config: Path | None, quiet: bool) -> None:
    """Run the hub and its proxy in the foreground; Ctrl-C or SIGTERM stops everything."""
    banner_console = Console(stderr=True, soft_wrap=True)
    result = up(
        obj.open(config),
        on_ready=lambda banner: emit(banner, False, banner_console),
        output=None if quiet else sys.stderr,
    )
    emit(result, False, obj.out)


@cli.command("status")
@shared_options()
@click.pass_obj
def status_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Is the hub reachable? Its users, running servers and versions (REST API)."""
    result = status(obj.open(config))
    emit(result, as_json, obj.out)
    if not result.reachable:
        click.get_current_context().exit(exits.FAILED)


hub_command(
    cli, "usage", usage,
    """Disk use of each roster user's home, largest first, and the free space left.""")


@cli.command("capacity")
@click.option("--concurrent", type=click.IntRange(min=1), default=None, metavar="N",
              help="Servers running at once (default: the whole roster, as at a class start).")
@click.option("--group", "group", default=None, metavar="GROUP",
              help="Count only this roster group's members, all running at once (a class, "
              "e.g. after `hubkeeper prewarm --group GROUP`).")
@shared_options()
@click.pass_context
def capacity_command(ctx: click.Context, concurrent: int | None, group: str | None,
                     config: Path | None, as_json: bool) -> None:
    """Do this machine's memory and CPUs suffice for the roster's limits? Exit 1 when not."""
    obj: Context = ctx.obj
    result = capacity(obj.open(config), concurrent, group)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(exits.FAILED)


@cli.command("prewarm")
@click.option("--group", "groups", multiple=True, metavar="GROUP",
              help="Start the servers of this roster group's members (repeatable).")
@click.option("--user", "users", multiple=True, metavar="USER",
              help="Start this user's server (repeatable).")
@click.option("--at", "at", metavar="HH:MM", default=None,
              help="Wait until this time today, then start them.")
@click.option("--until", "until", metavar="HH:MM", default=None,
              help="Keep them from idle culling until this time today (the end of the "
              "class); the command runs until then.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until every server is ready (or failed).")
@shared_options()
@click.pass_context
def prewarm_command(ctx: click.Context, groups: tuple[str, ...], users: tuple[str, ...],
                    at: str | None, until: str | None, wait: bool, config: Path | None,
                    as_json: bool) -> None:
    """Start servers before a class, so that login is instant. Starts wait in the hub's line
    like logins. Exit 1 when a server did not start.

    \b
    Examples:
      hubkeeper prewarm --group students
      hubkeeper prewarm --group students --at 09:55 --until 11:00
    """
    obj: Context = ctx.obj
    result = prewarm(obj.open(config), groups, users, at, until, wait)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(exits.FAILED)


@cli.group("env")
def env_group() -> None:
    """The environments of hub.yaml (environments:): build, list, rebuild, rollback, prune."""


def _pip_lines(quiet: bool) -> Callable[[str], None]:
    err = Console(stderr=True, soft_wrap=True, highlight=False)

    def show(line: str) -> None:
        if not quiet:
            err.print(line, markup=False)

    return show


@env_group.command("build")
@click.argument("name", required=False)
@click.option("--quiet", "-q", is_flag=True, help="Do not show pip's output.")
@shared_options()
@click.pass_obj
def env_build_command(obj: Context, name: str | None, quiet: bool, config: Path | None,
                      as_json: bool) -> None:
    """Build NAME (default: every environment) if hub.yaml changed it since its last build."""
    emit(build_envs(obj.open(config), name, _pip_lines(quiet or as_json)), as_json,
         obj.out)


@env_group.command("rebuild")
@click.argument("name")
@click.option("--quiet", "-q", is_flag=True, help="Do not show pip's output.")
@shared_options()
@click.pass_obj
def env_rebuild_command(obj: Context, name: str, quiet: bool, config: Path | None,
                        as_json: bool) -> None:
    """Build NAME anew (newest allowed versions); running servers keep the old build."""
    emit(rebuild_env(obj.open(config), name, _pip_lines(quiet or as_json)), as_json,
         obj.out)


@env_group.command("rollback")
@click.argument("name")
@click.option("--to", "to", metavar="BUILD", help="The build to go back to (env list; docker: "
              "an image id of at least 12 digits, or a tag). Default: the one before.")
@shared_options()
@click.pass_obj
def env_rollback_command(obj: Context, name: str, to: str | None, config: Path | None,
                         as_json: bool) -> None:
    """New servers of NAME start from the build before the current one (or --to), pinned
    until hub.yaml changes NAME or `env rebuild NAME`; running servers keep theirs."""
    emit(rollback_env(obj.open(config), name, to), as_json, obj.out)


@env_group.command("prune")
@click.argument("name")
@shared_options()
@click.pass_obj
def env_prune_command(obj: Context, name: str, config: Path | None, as_json: bool) -> None:
    """Remove NAME's old builds beyond its keep: count now (every build does it too); the
    current one and any a running server uses stay."""
    emit(prune_env(obj.open(config), name, _pip_lines(True)), as_json, obj.out)


hub_command(
    env_group, "list", list_envs,
    """Each environment: who may use it, its current build and the versions installed.""")


@cli.group("materials")
def materials_group() -> None:
    """Course material from git (materials:): publish the instructor's changes now."""


@materials_group.command("publish")
@click.option("--user", "users", multiple=True, metavar="USER",
              help="Only this user's server (repeatable). Default: every running server.")
@shared_options()
@click.pass_context
def materials_publish_command(ctx: click.Context, users: tuple[str, ...],
                              config: Path | None, as_json: bool) -> None:
    """Pull the materials now into every running server's folder, as each user (the same
    pull a start runs): new and untouched files follow the instructor, the student's edits
    win. Exit 1 when a pull failed.

    \b
    Examples:
      hubkeeper materials publish
      hubkeeper materials publish --user ada
    """
    obj: Context = ctx.obj
    result = publish(obj.open(config), users)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(exits.FAILED)
