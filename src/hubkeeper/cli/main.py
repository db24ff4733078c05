"""`hubkeeper` entry point and the one boundary that turns errors into messages."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.cli.output import emit
from hubkeeper.config.loader import default_config_path
from hubkeeper.verbs.adopt import adopt
from hubkeeper.verbs.apply import apply
from hubkeeper.verbs.archive import archive
from hubkeeper.verbs.archive import verify as verify_archive
from hubkeeper.verbs.capacity import capacity
from hubkeeper.verbs.check import check
from hubkeeper.verbs.doctor import doctor
from hubkeeper.verbs.env import build_envs, list_envs, rebuild_env
from hubkeeper.verbs.init import init
from hubkeeper.verbs.plan import plan
from hubkeeper.verbs.prewarm import prewarm
from hubkeeper.verbs.render import render_config
from hubkeeper.verbs.restore import restore
from hubkeeper.verbs.retire import retire
from hubkeeper.verbs.service import install as install_service
from hubkeeper.verbs.service import status as service_status
from hubkeeper.verbs.service import uninstall as uninstall_service
from hubkeeper.verbs.snapshot import list_snapshots, snapshot
from hubkeeper.verbs.snapshot import verify as verify_snapshot_verb
from hubkeeper.verbs.status import status
from hubkeeper.verbs.tls import tls_status
from hubkeeper.verbs.up import up
from hubkeeper.verbs.usage import usage
from hubkeeper.verbs.users import add_user, credentials, list_users, set_locked
from hubkeeper.verbs.userzip import export
from hubkeeper.verbs.z2jh import export_z2jh

INTERNAL_ERROR = 70

config_option = click.option(
    "--config", "-c", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="hub.yaml to use [default: $HUBKEEPER_CONFIG, /etc/hubkeeper/hub.yaml as root, "
    "./hub.yaml]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


class Context:
    def __init__(self, debug: bool, config: Path | None) -> None:
        self.debug = debug
        self.config = config
        self.out = Console(soft_wrap=True)

    def config_path(self, given: Path | None) -> Path:
        """--config after the verb, else before it, else the documented default."""
        return given or self.config or default_config_path()


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


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.pass_obj
def init_command(obj: Context, directory: Path) -> None:
    """Write a commented starter hub.yaml into DIRECTORY."""
    emit(init(directory), False, obj.out)


@cli.command("check")
@config_option
@json_option
@click.pass_obj
def check_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Validate hub.yaml (and its fit to this machine). Exit 0 if valid, 2 with messages."""
    emit(check(obj.config_path(config)), as_json, obj.out)


@cli.command("render")
@config_option
@json_option
@click.pass_obj
def render_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Show the JupyterHub configuration hub.yaml becomes (secrets redacted)."""
    emit(render_config(obj.config_path(config)), as_json, obj.out)


@cli.command("plan")
@config_option
@json_option
@click.pass_obj
def plan_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Show what `apply` would change: accounts, groups, passwords, locks, hub users, and
    the nginx site and certificate of hub.url."""
    emit(plan(obj.config_path(config)), as_json, obj.out)


@contextmanager
def progress_bar(quiet: bool) -> Iterator[Callable[[int, int, object], None]]:
    """A progress bar on stderr (a terminal only) for long verbs; the callback verbs report
    steps to."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True,
                  disable=quiet or not sys.stderr.isatty()) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, action: object) -> None:
            bar.update(task, completed=done, total=total, description=str(action)[:40])

        yield progress


@cli.command("apply")
@config_option
@json_option
@click.pass_obj
def apply_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Make the machine and the hub follow the roster, and nginx serve hub.url. Running it
    again changes nothing."""
    with progress_bar(as_json) as progress:
        result = apply(obj.config_path(config), progress)
    emit(result, as_json, obj.out)


@cli.group("users")
def users_group() -> None:
    """The roster from the command line (edits hub.yaml, keeping its comments, then applies)."""


@users_group.command("list")
@config_option
@json_option
@click.pass_obj
def users_list_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Every roster user: account, groups, admin, locked, uid, where it is declared."""
    emit(list_users(obj.config_path(config)), as_json, obj.out)


@users_group.command("add")
@click.argument("name")
@click.option("--group", "-g", "groups", multiple=True, help="A hub group (repeatable).")
@click.option("--admin", is_flag=True, help="Make the user a hub admin.")
@click.option("--name", "full_name", help="Full name.")
@click.option("--email", help="E-mail address.")
@click.option("--no-apply", is_flag=True, help="Only edit hub.yaml.")
@config_option
@json_option
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
    @config_option
    @json_option
    @click.pass_obj
    def command(obj: Context, name: str, no_apply: bool, config: Path | None,
                as_json: bool) -> None:
        with progress_bar(as_json) as progress:
            result = set_locked(obj.config_path(config), name, locked, progress,
                                run_apply=not no_apply)
        emit(result, as_json, obj.out)

    return command


@users_group.command("credentials")
@click.argument("names", nargs=-1)
@config_option
@json_option
@click.pass_obj
def users_credentials_command(obj: Context, names: tuple[str, ...], config: Path | None,
                              as_json: bool) -> None:
    """native login: new invite codes for NAMES (replacing theirs), or for every roster user
    without one; written to a 0600 CSV in the state dir."""
    emit(credentials(obj.config_path(config), names), as_json, obj.out)


users_group.command("lock", help="Lock NAME (users.locked): no login, server stopped, files "
                    "kept.")(_lock_command(True))
users_group.command("unlock", help="Unlock NAME again.")(_lock_command(False))


@cli.command("adopt")
@click.option("--yes", is_flag=True, help="Create the accounts (without it: only show them).")
@click.option("--homes", type=click.Path(file_okay=False, path_type=Path), default="/home",
              show_default=True, help="Where the homes are.")
@config_option
@json_option
@click.pass_obj
def adopt_command(obj: Context, yes: bool, homes: Path, config: Path | None,
                  as_json: bool) -> None:
    """Give homes whose accounts were lost their accounts back, with the same uid."""
    emit(adopt(obj.config_path(config), yes, homes), as_json, obj.out)


@cli.command("up")
@config_option
@click.option("--quiet", "-q", is_flag=True, help="Do not echo the hub's log (it is kept in "
              "the state dir).")
@click.pass_obj
def up_command(obj: Context, config: Path | None, quiet: bool) -> None:
    """Run the hub and its proxy in the foreground; Ctrl-C or SIGTERM stops everything."""
    banner_console = Console(stderr=True, soft_wrap=True)
    result = up(
        obj.config_path(config),
        on_ready=lambda banner: emit(banner, False, banner_console),
        output=None if quiet else sys.stderr,
    )
    emit(result, False, obj.out)


@cli.command("status")
@config_option
@json_option
@click.pass_obj
def status_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Is the hub reachable? Its users, running servers and versions (REST API)."""
    result = status(obj.config_path(config))
    emit(result, as_json, obj.out)
    if not result.reachable:
        sys.exit(1)


@cli.command("doctor")
@click.option("--fix", is_flag=True,
              help="Repair what is safe to repair (the modes of what hubkeeper made), show "
              "each change, and check again. Never touches accounts, never deletes, never "
              "recursive.")
@config_option
@json_option
@click.pass_context
def doctor_command(ctx: click.Context, fix: bool, config: Path | None, as_json: bool) -> None:
    """Check the hub and this machine and explain what is wrong: the hub and its proxy,
    the state dir and secrets, homes, shared data, the journal against the accounts, free
    disk.

    \b
    Exit codes:
      0  nothing wrong (warnings allowed)
      1  problems remain (after --fix: problems it could not repair)
      2  bad input (hub.yaml, roster, command line); nothing was checked or changed

    \b
    Examples:
      hubkeeper doctor
      hubkeeper doctor --fix
    """
    obj: Context = ctx.obj
    result = doctor(obj.config_path(config), fix)
    emit(result, as_json, obj.out)
    if result.exit_code:
        ctx.exit(result.exit_code)


@cli.command("usage")
@config_option
@json_option
@click.pass_obj
def usage_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Disk use of each roster user's home, largest first, and the free space left."""
    emit(usage(obj.config_path(config)), as_json, obj.out)


@cli.command("capacity")
@click.option("--concurrent", type=click.IntRange(min=1), default=None, metavar="N",
              help="Servers running at once (default: the whole roster, as at a class start).")
@click.option("--group", "group", default=None, metavar="GROUP",
              help="Count only this roster group's members, all running at once (a class, "
              "e.g. after `hubkeeper prewarm --group GROUP`).")
@config_option
@json_option
@click.pass_context
def capacity_command(ctx: click.Context, concurrent: int | None, group: str | None,
                     config: Path | None, as_json: bool) -> None:
    """Do this machine's memory and CPUs suffice for the roster's limits? Exit 1 when not."""
    obj: Context = ctx.obj
    result = capacity(obj.config_path(config), concurrent, group)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(1)


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
@config_option
@json_option
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
    result = prewarm(obj.config_path(config), groups, users, at, until, wait)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(1)


@cli.group("env")
def env_group() -> None:
    """The Python environments of hub.yaml (environments:): build, list, rebuild."""


def _pip_lines(quiet: bool) -> Callable[[str], None]:
    err = Console(stderr=True, soft_wrap=True, highlight=False)

    def show(line: str) -> None:
        if not quiet:
            err.print(line, markup=False)

    return show


@env_group.command("build")
@click.argument("name", required=False)
@click.option("--quiet", "-q", is_flag=True, help="Do not show pip's output.")
@config_option
@json_option
@click.pass_obj
def env_build_command(obj: Context, name: str | None, quiet: bool, config: Path | None,
                      as_json: bool) -> None:
    """Build NAME (default: every environment) if hub.yaml changed it since its last build."""
    emit(build_envs(obj.config_path(config), name, _pip_lines(quiet or as_json)), as_json,
         obj.out)


@env_group.command("rebuild")
@click.argument("name")
@click.option("--quiet", "-q", is_flag=True, help="Do not show pip's output.")
@config_option
@json_option
@click.pass_obj
def env_rebuild_command(obj: Context, name: str, quiet: bool, config: Path | None,
                        as_json: bool) -> None:
    """Build NAME anew (newest allowed versions); running servers keep the old build."""
    emit(rebuild_env(obj.config_path(config), name, _pip_lines(quiet or as_json)), as_json,
         obj.out)


@env_group.command("list")
@config_option
@json_option
@click.pass_obj
def env_list_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Each environment: who may use it, its current build and the versions installed."""
    emit(list_envs(obj.config_path(config)), as_json, obj.out)

target_option = click.option(
    "--target", "-t", "targets", multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A snapshot target (repeatable) [default: hub.yaml's snapshots.targets].")


@cli.group("snapshot", invoke_without_command=True)
@target_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@config_option
@json_option
@click.pass_context
def snapshot_group(ctx: click.Context, targets: tuple[Path, ...], quiet: bool,
                   config: Path | None, as_json: bool) -> None:
    """Take a snapshot of the hub on every target (list, verify: see below)."""
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj
    with progress_bar(quiet or as_json) as progress:
        result = snapshot(obj.config_path(config), targets, progress)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(1)


@snapshot_group.command("list")
@target_option
@config_option
@json_option
@click.pass_obj
def snapshot_list_command(obj: Context, targets: tuple[Path, ...], config: Path | None,
                          as_json: bool) -> None:
    """List the snapshots on every target, newest last."""
    emit(list_snapshots(obj.config_path(config), targets), as_json, obj.out)


@snapshot_group.command("verify")
@click.argument("name", required=False)
@target_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@config_option
@json_option
@click.pass_context
def snapshot_verify_command(ctx: click.Context, name: str | None, targets: tuple[Path, ...],
                            quiet: bool, config: Path | None, as_json: bool) -> None:
    """Re-read every file of snapshot NAME (default: latest on every target) and compare it
    with its manifest. Exit 1 if anything differs."""
    obj: Context = ctx.obj
    with progress_bar(quiet or as_json) as progress:
        result = verify_snapshot_verb(obj.config_path(config), name, targets, progress)
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(1)


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
@config_option
@json_option
@click.pass_obj
def restore_command(obj: Context, user: str | None, path: str | None, given: str | None,
                    to: Path | None, everything: bool, targets: tuple[Path, ...],
                    config: Path | None, as_json: bool) -> None:
    """Put back USER's home, or one PATH in it, from a snapshot. Whatever would be
    overwritten is first moved into before-restore-<time>/; nothing is deleted."""
    emit(restore(obj.config_path(config), user, path, given, to, everything, targets),
         as_json, obj.out)


@cli.group("archive", invoke_without_command=True)
@click.option("--to", "to", type=click.Path(file_okay=False, path_type=Path),
              help="Write the archive folder in DIR [default: hub.yaml's archive.dir].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@config_option
@json_option
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
        result = archive(obj.config_path(config), to, progress)
    emit(result, as_json, obj.out)


@archive_group.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@json_option
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
        ctx.exit(1)


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
@config_option
@json_option
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
        emit(export_z2jh(obj.config_path(config), output, secrets_output), as_json, obj.out)
        return
    for name, value in (("--output", output), ("--secrets", secrets_output)):
        if value is not None:
            raise click.UsageError(f"{name} is for `export z2jh`, not for a user's zip")
    with progress_bar(quiet or as_json) as progress:
        result = export(None if from_archive else obj.config_path(config), user,
                        to or Path("."), from_archive, progress)
    emit(result, as_json, obj.out)


@cli.command("retire")
@click.option("--yes", is_flag=True, help="Stop the hub and remove what the plan lists "
              "(without it: only show the plan and the archive check).")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The archive that must hold every home and data folder [default: the "
              "newest one `hubkeeper archive` wrote].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@config_option
@json_option
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
        result = retire(obj.config_path(config), yes, archive_dir, progress)
    emit(result, as_json, obj.out)
    if result.status == "refused":
        sys.exit(1)


@cli.group("service")
def service_group() -> None:
    """The hub as a systemd service: hubkeeper-<hub.name>.service in service.unit_dir."""


@service_group.command("install")
@config_option
@json_option
@click.pass_obj
def service_install_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Write the hub's unit and, where systemd runs, enable and start it.

    The unit is journaled: a file hubkeeper did not write, or one changed by hand, is left
    alone. Run again, it changes nothing."""
    emit(install_service(obj.config_path(config)), as_json, obj.out)


@service_group.command("uninstall")
@config_option
@json_option
@click.pass_obj
def service_uninstall_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Stop and disable the hub's unit and remove it, if it is as hubkeeper wrote it."""
    emit(uninstall_service(obj.config_path(config)), as_json, obj.out)


@service_group.command("status")
@config_option
@json_option
@click.pass_obj
def service_status_command(obj: Context, config: Path | None, as_json: bool) -> None:
    """Is the unit as hubkeeper writes it? Where systemd runs: is it active and enabled?"""
    emit(service_status(obj.config_path(config)), as_json, obj.out)


@cli.group("tls")
def tls_group() -> None:
    """The certificate nginx serves for hub.url."""


@tls_group.command("status")
@config_option
@json_option
@click.pass_context
def tls_status_command(ctx: click.Context, config: Path | None, as_json: bool) -> None:
    """The certificate of hub.url: file, names, issuer, validity, days left, whether it
    covers hub.url's host, and where it comes from (letsencrypt or files).

    \b
    Exit codes:
      0  the certificate is fine
      1  it is missing, not yet valid, expired, expires within 14 days, or does not
         cover hub.url's host
      2  hub.yaml is invalid or has no hub.url
    """
    obj: Context = ctx.obj
    result = tls_status(obj.config_path(config))
    emit(result, as_json, obj.out)
    if not result.ok:
        ctx.exit(1)


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
        return 130
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
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # the boundary: anything unexpected is a bug in hubkeeper
        if debug:
            traceback.print_exc()
        err.print(f"internal error: {type(exc).__name__}: {exc}", markup=False)
        err.print("hint: rerun with --debug for the traceback, and report it", markup=False)
        return INTERNAL_ERROR
    return 0


def entry() -> None:
    sys.exit(main())
