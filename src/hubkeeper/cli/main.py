"""`hubkeeper` entry point and the one boundary that turns errors into messages and exit
codes (base/exits.py)."""

from __future__ import annotations

import sys
import traceback

import click
from rich.console import Console

from hubkeeper.base import exits
from hubkeeper.base.errors import HubkeeperError, InvalidInput

# The command table: each family registers its commands with `cli` when imported.
from hubkeeper.cli import (  # noqa: F401
    commands_lifecycle,
    commands_ops,
    commands_run,
    commands_setup,
    commands_upgrade,
    commands_users,
)
from hubkeeper.cli.app import cli

__all__ = ["cli", "entry", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every HubkeeperError into a message, a hint and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        code = cli.main(args=argv, prog_name="hubkeeper", standalone_mode=False)
        if isinstance(code, int) and code:  # ctx.exit(n) returns n without standalone_mode
            return code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return exits.INTERRUPTED
    except HubkeeperError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"error: {exc.message}", markup=False)
        if isinstance(exc, InvalidInput):
            for problem in exc.problems:
                err.print(f"  {problem}", markup=False)
        if exc.hint:
            err.print(f"hint: {exc.hint}", markup=False)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else exits.FAILED
    except Exception as exc:  # the boundary: anything unexpected is a bug in hubkeeper
        if debug:
            traceback.print_exc()
        err.print(f"internal error: {type(exc).__name__}: {exc}", markup=False)
        err.print("hint: rerun with --debug for the traceback, and report it", markup=False)
        return exits.INTERNAL_ERROR
    return exits.OK


def entry() -> None:
    sys.exit(main())
