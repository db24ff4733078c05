"""`hubkeeper users ...`: the roster from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from hubkeeper.cli.app import Context, cli, hub_command, progress_bar, shared_options
from hubkeeper.cli.output import emit
from hubkeeper.verbs.admit import admit
from hubkeeper.verbs.users import add_user, credentials, list_users, set_locked


@cli.group("users")
def users_group() -> None:
    """The roster from the command line (edits hub.yaml, keeping its comments, then applies)."""


hub_command(
    users_group, "list", list_users,
    """Every roster user: account, groups, admin, locked, uid, where it is declared.""")


@users_group.command("add")
@click.argument("name")
@click.option("--group", "-g", "groups", multiple=True, help="A hub group (repeatable).")
@click.option("--admin", is_flag=True, help="Make the user a hub admin.")
@click.option("--name", "full_name", help="Full name.")
@click.option("--email", help="E-mail address.")
@click.option("--no-apply", is_flag=True, help="Only edit hub.yaml.")
@shared_options()
@click.pass_obj
def users_add_command(obj: Context, name: str, groups: tuple[str, ...], admin: bool,
                      full_name: str | None, email: str | None, no_apply: bool,
                      config: Path | None, as_json: bool) -> None:
    """Add NAME to the roster (an inline entry in hub.yaml) and apply."""
    with progress_bar(as_json) as progress:
        result = add_user(obj.config_path(config), name, groups=groups, admin=admin,
                          full_name=full_name, email=email, progress=progress,
                          run_apply=not no_apply)
    emit(result, as_json, obj.out)


def _lock_command(locked: bool):
    @click.argument("name")
    @click.option("--no-apply", is_flag=True, help="Only edit hub.yaml.")
    @shared_options()
    @click.pass_obj
    def command(obj: Context, name: str, no_apply: bool, config: Path | None,
                as_json: bool) -> None:
        with progress_bar(as_json) as progress:
            result = set_locked(obj.open(config), name, locked, progress,
                                run_apply=not no_apply)
        emit(result, as_json, obj.out)

    return command


@users_group.command("credentials")
@click.argument("names", nargs=-1)
@shared_options()
@click.pass_obj
def users_credentials_command(obj: Context, names: tuple[str, ...], config: Path | None,
                              as_json: bool) -> None:
    """native login: new invite codes for NAMES (replacing theirs), or for every roster user
    without one; written to a 0600 CSV in the state dir."""
    emit(credentials(obj.open(config), names), as_json, obj.out)


users_group.command("lock", help="Lock NAME (users.locked): no login, server stopped, files "
                    "kept.")(_lock_command(True))
users_group.command("unlock", help="Unlock NAME again.")(_lock_command(False))


@users_group.command("admit", hidden=True)
@click.argument("name")
@click.option("--provider", required=True, help="The identity provider (auth.kind).")
@click.option("--subject", required=True, help="The provider's stable id for the person.")
@click.option("--group", "-g", "groups", multiple=True, help="A hub group (repeatable).")
@click.option("--admin", is_flag=True, help="The provider makes them an admin.")
@shared_options()
@click.pass_obj
def users_admit_command(obj: Context, name: str, provider: str, subject: str,
                        groups: tuple[str, ...], admin: bool, config: Path | None,
                        as_json: bool) -> None:
    """Make the account of NAME, admitted by the identity provider at their first login
    (users.accounts: first_login). The hub runs this; operators need not."""
    emit(admit(obj.open(config), name, provider=provider, subject=subject, groups=groups,
               admin=admin), as_json, obj.out)
