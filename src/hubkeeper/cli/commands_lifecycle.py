"""Commands for the hub's data over its life: snapshot, restore, archive, export,
retire."""

from __future__ import annotations

from pathlib import Path

import click

from hubkeeper.base import exits
from hubkeeper.cli.app import Context, cli, progress_bar, shared_options
from hubkeeper.cli.output import emit
from hubkeeper.verbs.archive import archive
from hubkeeper.verbs.archive import verify as verify_archive
from hubkeeper.verbs.restore import restore
from hubkeeper.verbs.retire import retire
from hubkeeper.verbs.snapshot import list_snapshots, snapshot
from hubkeeper.verbs.snapshot import verify as verify_snapshot_verb
from hubkeeper.verbs.userzip import export
from hubkeeper.verbs.z2jh import export_z2jh

target_option = click.option(
    "--target", "-t", "targets", multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A snapshot target (repeatable) [default: hub.yaml's snapshots.targets].")


@cli.group("snapshot", invoke_without_command=True)
@target_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@shared_options()
@click.pass_context
def snapshot_group(ctx: click.Context, targets: tuple[Path, ...], quiet: bool,
                   config: Path | None, as_json: bool) -> None:
    """Take a snapshot of the hub on every target (list, verify: see below)."""
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj
    with progress_bar(quiet or as_json) as progress:
        result = snapshot(obj.open(config), targets, progress)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(exits.FAILED)


@snapshot_group.command("list")
@target_option
@shared_options()
@click.pass_obj
def snapshot_list_command(obj: Context, targets: tuple[Path, ...], config: Path | None,
                          as_json: bool) -> None:
    """List the snapshots on every target, newest last."""
    emit(list_snapshots(obj.open(config), targets), as_json, obj.out)


@snapshot_group.command("verify")
@click.argument("name", required=False)
@target_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@shared_options()
@click.pass_context
def snapshot_verify_command(ctx: click.Context, name: str | None, targets: tuple[Path, ...],
                            quiet: bool, config: Path | None, as_json: bool) -> None:
    """Re-read every file of snapshot NAME (default: latest on every target) and compare it
    with its manifest. Exit 1 if anything differs."""
    obj: Context = ctx.obj
    with progress_bar(quiet or as_json) as progress:
        result = verify_snapshot_verb(obj.open(config), name, targets, progress)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(exits.FAILED)


@cli.command("restore")
@click.argument("user", required=False)
@click.argument("path", required=False)
@click.option("--from", "given", metavar="SNAPSHOT",
              help="A snapshot name on the targets, a snapshot directory, or a target (its "
              "latest) [default: latest].")
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path),
              help="Restore into this directory instead of the home.")
@click.option("--all", "everything", is_flag=True,
              help="Disaster recovery: every account (same uids), home, data folder and hub "
              "file from the snapshot.")
@target_option
@shared_options()
@click.pass_obj
def restore_command(obj: Context, user: str | None, path: str | None, given: str | None,
                    to: Path | None, everything: bool, targets: tuple[Path, ...],
                    config: Path | None, as_json: bool) -> None:
    """Put back USER's home, or one PATH in it, from a snapshot. Whatever would be
    overwritten is first moved into before-restore-<time>/; nothing is deleted."""
    emit(restore(lambda: obj.open(config), user, path, given, to, everything, targets),
         as_json, obj.out)


@cli.group("archive", invoke_without_command=True)
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path),
              help="Write the archive folder in DIR [default: hub.yaml's archive.dir].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@shared_options()
@click.pass_context
def archive_group(ctx: click.Context, to: Path | None, quiet: bool, config: Path | None,
                  as_json: bool) -> None:
    """Write the end-of-course archive: one compressed tar per user, the data folders, the
    hub's own files and database, and MANIFEST.json with the SHA-256 of every file.

    \b
    Examples:
      hubkeeper archive --to /var/backups/hubkeeper
      hubkeeper archive verify /var/backups/hubkeeper/phys101-20250601T120000
    """
    if ctx.invoked_subcommand is not None:
        if to is not None:
            raise click.UsageError("--to belongs to `hubkeeper archive` itself, not to "
                                   f"`archive {ctx.invoked_subcommand}`")
        return
    obj: Context = ctx.obj
    with progress_bar(quiet or as_json) as progress:
        result = archive(obj.open(config), to, progress)
    emit(result, as_json, obj.out)


@archive_group.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@shared_options(config=False)
@click.pass_context
def archive_verify_command(ctx: click.Context, directory: Path, quiet: bool,
                           as_json: bool) -> None:
    """Re-read every tar and every file in it and compare them with MANIFEST.json. Exit 1,
    naming each damaged, missing or unlisted file, if anything differs.

    \b
    Example:
      hubkeeper archive verify /var/backups/hubkeeper/phys101-20250601T120000
    """
    obj: Context = ctx.obj
    with progress_bar(quiet or as_json) as progress:
        result = verify_archive(directory, progress)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(exits.FAILED)


@cli.command("export")
@click.argument("user")
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the zip in DIR.  [default: .]")
@click.option("--from", "from_archive", type=click.Path(file_okay=False, path_type=Path),
              metavar="ARCHIVE_DIR", help="Take the files from this archive (checked against "
              "its MANIFEST.json) instead of the live home.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="z2jh: write the values to FILE (0644) [default: standard "
              "output].")
@click.option("--secrets", "secrets_output", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="z2jh: also write the shared passwords or the GitHub app's "
              "keys from the state dir to FILE (0600).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@shared_options()
@click.pass_obj
def export_command(obj: Context, user: str, to: Path | None, from_archive: Path | None,
                   output: Path | None, secrets_output: Path | None, quiet: bool,
                   config: Path | None, as_json: bool) -> None:
    """Give USER their own work as a zip: <DIR>/<user>-<hub>-<time>.zip (0600). Symlinks and
    special files are left out and listed.

    `export z2jh` instead writes hub.yaml as values for the Zero to JupyterHub Helm chart
    (Kubernetes; docs/kubernetes.md). No user is called z2jh.

    \b
    Examples:
      hubkeeper export alice --to /tmp/zips
      hubkeeper export alice --from /var/backups/hubkeeper/phys101-20250601T120000
      hubkeeper export z2jh -o values.yaml --secrets secrets.yaml
    """
    if user == "z2jh":
        for name, value in (("--to", to), ("--from", from_archive)):
            if value is not None:
                raise click.UsageError(f"{name} is for a user's zip, not for z2jh")
        emit(export_z2jh(obj.open(config), output, secrets_output), as_json, obj.out)
        return
    for name, value in (("--output", output), ("--secrets", secrets_output)):
        if value is not None:
            raise click.UsageError(f"{name} is for `export z2jh`, not for a user's zip")
    with progress_bar(quiet or as_json) as progress:
        result = export(None if from_archive else obj.open(config), user,
                        to or Path("."), from_archive, progress)
    emit(result, as_json, obj.out)


@cli.command("retire")
@click.option("--yes", is_flag=True, help="Stop the hub and remove what the plan lists "
              "(without it: only show the plan and the archive check).")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The archive that must hold every home and data folder [default: the "
              "newest one `hubkeeper archive` wrote].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@shared_options()
@click.pass_obj
def retire_command(obj: Context, yes: bool, archive_dir: Path | None, quiet: bool,
                   config: Path | None, as_json: bool) -> None:
    """End the hub: remove exactly the accounts, groups, homes, data folders, environments
    and state hubkeeper's journal lists, once a verified archive holds every home and data
    folder unchanged. Exit 1 when the archive check refuses.

    \b
    Example:
      hubkeeper archive --to /var/backups/hubkeeper
      hubkeeper retire            # the plan and the archive check
      hubkeeper retire --yes
    """
    with progress_bar(quiet or as_json) as progress:
        result = retire(obj.open(config), yes, archive_dir, progress)
    emit(result, as_json, obj.out)
    if result.status == "refused":
        click.get_current_context().exit(exits.FAILED)
