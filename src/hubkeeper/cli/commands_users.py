"""`hubkeeper users ...`: the roster from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from hubkeeper.base import exits
from hubkeeper.cli.app import Context, cli, hub_command, progress_bar, shared_options
from hubkeeper.cli.output import emit
from hubkeeper.verbs.admit import admit
from hubkeeper.verbs.users import add_user, credentials, list_users, set_locked
from hubkeeper.verbs.users_password import set_password
from hubkeeper.verbs.users_remove import remove_user


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


@users_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Archive the home, then remove the user (without "
              "it: only show what would be done).")
@click.option("--to", type=click.Path(file_okay=False, path_type=Path),
              help="The folder the user's archive goes in [default: archive.dir].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@shared_options()
@click.pass_obj
def users_remove_command(obj: Context, name: str, yes: bool, to: Path | None, quiet: bool,
                         config: Path | None, as_json: bool) -> None:
    """Remove NAME from the hub during a course: their home is archived (the same format as
    `hubkeeper archive`) and the archive verified; only then are their server, hub user,
    roster entry, processes, account and home removed. Running it again finishes a removal
    that was interrupted. Exit 1 when the archive check refuses.

    \b
    Example:
      hubkeeper users remove ann            # what it would do
      hubkeeper users remove ann --yes
      hubkeeper export ann --from /var/backups/hubkeeper/<hub>-ann-<time>
    """
    with progress_bar(quiet or as_json) as progress:
        result = remove_user(obj.open(config), name, yes, to, progress)
    emit(result, as_json, obj.out)
    if result.status == "refused":
        click.get_current_context().exit(exits.FAILED)


@users_group.command("password")
@click.argument("name")
@shared_options()
@click.pass_obj
def users_password_command(obj: Context, name: str, config: Path | None,
                           as_json: bool) -> None:
    """A new generated password for NAME (auth.kind pam: the Linux account's; native: the
    sign-up password, while the hub is stopped). Written to a 0600 CSV in the state dir, and
    shown once when the output is a terminal."""
    emit(set_password(obj.open(config), name), as_json, obj.out)


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
