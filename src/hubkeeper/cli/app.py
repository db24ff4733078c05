"""The root of the command table: the `hubkeeper` group, the options every command shares,
and how a command opens the hub it acts on.

A command parses its options, opens the hub (`Context.open`), calls its verb with it,
renders the result (`emit`) and, when the result says no, exits with `exits.FAILED`. The
commands that take no options of their own are one line each (`hub_command`); the
commands are in commands_*.py, one module per family.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from hubkeeper import __version__
from hubkeeper.base import exits
from hubkeeper.base import progress as progress_lines
from hubkeeper.base.whoami import effective_uid
from hubkeeper.cli.output import emit
from hubkeeper.config.loader import default_config_path
from hubkeeper.context.hub import Hub

F = TypeVar("F", bound=Callable)

config_option = click.option(
    "--config", "-c", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="hub.yaml to use [default: $HUBKEEPER_CONFIG, /etc/hubkeeper/hub.yaml as root, "
    "./hub.yaml]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def shared_options(*, config: bool = True, json: bool = True) -> Callable[[F], F]:
    """The options every command shares, in the order the help shows them: -c/--config
    (the hub.yaml to open), then --json (JSON instead of text). --debug belongs to
    `hubkeeper` itself, before the command."""

    def decorate(function: F) -> F:
        if json:
            function = json_option(function)
        if config:
            function = config_option(function)
        return function

    return decorate


class Context:
    """What `hubkeeper` (before the command) hands every command."""

    def __init__(self, debug: bool, config: Path | None) -> None:
        self.debug = debug
        self.config = config
        self.out = Console(soft_wrap=True)

    def config_path(self, given: Path | None) -> Path:
        """--config after the verb, else before it, else the documented default."""
        return given or self.config or default_config_path(effective_uid() == 0)

    def open(self, given: Path | None, checking: bool = False) -> Hub:
        """The hub the command acts on, opened once."""
        return Hub.open(self.config_path(given), checking=checking)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubkeeper")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@config_option
@click.pass_context
def cli(ctx: click.Context, debug: bool, config: Path | None) -> None:
    """Stand up a JupyterHub from one hub.yaml and keep it."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = Context(debug, config)


def hub_command(group: click.Group, name: str, verb: Callable[[Hub], Any], help: str, *,
                failed: Callable[[Any], bool] | None = None,
                checking: bool = False) -> click.Command:
    """A row of the table: `hubkeeper [GROUP] NAME [-c hub.yaml] [--json]` opens the hub,
    runs `verb` on it and shows the result; exits FAILED when `failed(result)`. Commands
    with options of their own are written out in commands_*.py. `checking`: the hub is
    opened for `check` (hub.yaml's cross-field problems handed to the verb)."""

    @click.pass_obj
    def command(obj: Context, config: Path | None, as_json: bool) -> None:
        result = verb(obj.open(config, checking))
        emit(result, as_json, obj.out)
        if failed is not None and failed(result):
            raise click.exceptions.Exit(exits.FAILED)

    command.__doc__ = help
    return group.command(name)(shared_options()(command))


@contextmanager
def progress_bar(quiet: bool) -> Iterator[Callable[[int, int, object], None]]:
    """A progress bar on stderr (a terminal only) for long verbs; the callback verbs report
    steps to."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  disable=quiet or not sys.stderr.isatty()) as bar:
        task = bar.add_task("", total=None)
        lines = os.environ.get(progress_lines.LINES_ENV) == "1"

        def progress(done: int, total: int, action: object) -> None:
            bar.update(task, completed=done, total=total, description=str(action)[:40])
            if lines:  # for a program that runs hubkeeper (the web page's actions)
                print(progress_lines.line(done, total, action), file=sys.stderr, flush=True)

        yield progress
