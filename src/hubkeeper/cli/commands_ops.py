"""Commands that check and install the hub's operation: doctor, service, tls."""

from __future__ import annotations

from pathlib import Path

import click

from hubkeeper.cli.app import Context, cli, hub_command, shared_options
from hubkeeper.cli.output import emit
from hubkeeper.verbs.doctor import doctor
from hubkeeper.verbs.service import install as install_service
from hubkeeper.verbs.service import status as service_status
from hubkeeper.verbs.service import uninstall as uninstall_service
from hubkeeper.verbs.tls import tls_status


@cli.command("doctor")
@click.option("--fix", is_flag=True,
              help="Repair what is safe to repair (the modes of what hubkeeper made), show "
              "each change, and check again. Never touches accounts, never deletes, never "
              "recursive.")
@shared_options()
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
    result = doctor(obj.open(config), fix)
    emit(result, as_json, obj.out)
    if result.exit_code:
        ctx.exit(result.exit_code)


@cli.group("service")
def service_group() -> None:
    """The hub as a systemd service: hubkeeper-<hub.name>.service in service.unit_dir."""


hub_command(
    service_group, "install", install_service,
    """Write the hub's unit and, where systemd runs, enable and start it.

    The unit is journaled: a file hubkeeper did not write, or one changed by hand, is left
    alone. Run again, it changes nothing.""")


hub_command(
    service_group, "uninstall", uninstall_service,
    """Stop and disable the hub's unit and remove it, if it is as hubkeeper wrote it.""")


hub_command(
    service_group, "status", service_status,
    """Is the unit as hubkeeper writes it? Where systemd runs: is it active and enabled?""")


@cli.group("tls")
def tls_group() -> None:
    """The certificate nginx serves for hub.url."""


hub_command(
    tls_group, "status", tls_status,
    """The certificate of hub.url: file, names, issuer, validity, days left, whether it
    covers hub.url's host, and where it comes from (letsencrypt or files).

    \b
    Exit codes:
      0  the certificate is fine
      1  it is missing, not yet valid, expired, expires within 14 days, or does not
         cover hub.url's host
      2  hub.yaml is invalid or has no hub.url
    """,
    failed=lambda result: not result.ok)
