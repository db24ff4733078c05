"""Text for running the hub: up, status, usage, capacity, prewarm, env, materials."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hubkeeper.cli.render_base import text
from hubkeeper.config.types import format_size
from hubkeeper.verbs.capacity import CapacityResult
from hubkeeper.verbs.env import (
    EnvBuildResult,
    EnvListResult,
    EnvPruneResult,
    EnvRollbackResult,
)
from hubkeeper.verbs.materials import PublishResult
from hubkeeper.verbs.prewarm import PrewarmResult
from hubkeeper.verbs.status import StatusResult
from hubkeeper.verbs.up import Banner, UpResult
from hubkeeper.verbs.usage import UsageResult


@text.register
def _(result: StatusResult, console: Console) -> None:
    if not result.reachable:
        console.print(f"{result.url}: not reachable ({result.error})", highlight=False)
        return
    console.print(
        f"{result.url}: up. JupyterHub {result.jupyterhub_version}, hubkeeper "
        f"{result.hubkeeper_version}, Python {result.python_version}\n"
        f"{len(result.users)} users, {result.running} servers running",
        highlight=False,
    )
    table = Table("user", "admin", "server", "last activity")
    for user in result.users:
        table.add_row(user.name, "yes" if user.admin else "", user.server or "-",
                      user.last_activity or "-")
    console.print(table)


@text.register
def _(result: Banner, console: Console) -> None:
    where = (f"{result.public_url} (proxy on {result.url})" if result.public_url
             else result.url)
    lines = [f"hub '{result.hub}' is up at {where}  ({result.mode} mode, {result.auth} login)"]
    if result.users:
        lines.append(f"  users:  {', '.join(result.users)}")
    if result.admins:
        lines.append(f"  admins: {', '.join(result.admins)}")
    # On a terminal the passwords are shown; in a log (systemd's journal, which the adm
    # group reads) only where they are.
    users_file, admins_file = result.password_files or ("", "")
    if result.shared_password:
        lines.append("  password for users:  " + (result.shared_password if console.is_terminal
                                                  else f"in {users_file}"))
    if result.admin_password:
        lines.append("  password for admins: " + (result.admin_password if console.is_terminal
                                                  else f"in {admins_file}"))
    lines.append(f"  state: {result.state_dir}   log: {result.log_file}")
    lines.append("  Ctrl-C stops the hub, its proxy and every user server.")
    for warning in result.warnings:
        lines.append(f"  WARNING: {warning}")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: UpResult, console: Console) -> None:
    how = "killed after the deadline" if result.killed else "cleanly"
    console.print(f"hub '{result.hub}' stopped {how} in {result.stop_seconds or 0:.1f} s",
                  highlight=False)


@text.register
def _(result: UsageResult, console: Console) -> None:
    table = Table("user", "home", "size", "files", "free on its disk", "note")
    low: list[str] = []
    for home in result.homes:
        free = "-" if home.free_bytes is None else format_size(home.free_bytes)
        if home.free_bytes is not None and home.free_bytes < result.min_free:
            free += " (LOW)"
            low.append(home.name)
        table.add_row(home.name, home.home or "-", format_size(home.bytes), str(home.files),
                      free, home.note or "")
    console.print(table)
    console.print(f"{len(result.homes)} homes, {format_size(result.total_bytes)} in all "
                  f"({result.mode} mode)", highlight=False)
    if low:
        console.print(f"WARNING: less than data.min_free ({format_size(result.min_free)}) is "
                      f"free for {', '.join(low)}: their servers will not start",
                      highlight=False, markup=False)


@text.register
def _(result: EnvBuildResult, console: Console) -> None:
    for env in result.environments:
        if not env.built:
            console.print(f"{env.name}: up to date ({env.build})", highlight=False)
            continue
        console.print(f"{env.name}: built {env.build}; new servers use it", highlight=False)
        if env.previous:
            console.print(f"  running servers keep the build they started from; "
                          f"`hubkeeper env rollback {env.name}` returns new servers to "
                          f"{env.previous} (while it is kept: env list)", highlight=False)


@text.register
def _(result: EnvRollbackResult, console: Console) -> None:
    console.print(f"{result.name}: new servers start from {result.now} (was {result.before}); "
                  "running servers keep theirs", highlight=False)
    console.print(f"  pinned: apply and env build keep it until hub.yaml changes "
                  f"{result.name} or `hubkeeper env rebuild {result.name}`", highlight=False)


@text.register
def _(result: EnvPruneResult, console: Console) -> None:
    removed = ", ".join(result.removed) or "nothing"
    console.print(f"{result.name}: removed {removed}", highlight=False)
    if result.in_use:
        console.print(f"  kept beyond keep, in use: {', '.join(result.in_use)}",
                      highlight=False)


@text.register
def _(result: EnvListResult, console: Console) -> None:
    table = Table("environment", "for", "current build", "builds", "installed")
    for env in result.environments:
        who = " ".join(env.groups) or "everyone"
        current = env.current or "NOT BUILT"
        if env.pinned:
            current += f" (pinned by env rollback, {env.pinned})"
        elif env.current and not env.up_to_date:
            current += " (hub.yaml changed: env build)"
        table.add_row(env.name + (" (default)" if env.default else ""), who, current,
                      str(len(env.builds)), "\n".join(env.locked) or "-")
    console.print(table)


@text.register
def _(result: PrewarmResult, console: Console) -> None:
    lines = [f"hub '{result.hub}': {len(result.users)} users; started "
             f"{len(result.started)}, already running {len(result.already)}"
             + (f", ready {len(result.ready)} after {result.seconds:.1f} s" if result.waited
                else " (not waiting for them)")]
    lines += [f"  {name}: NOT started: {why}" for name, why in result.failed]
    if result.until:
        lines.append(f"  kept from idle culling until {result.until}")
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: PublishResult, console: Console) -> None:
    users = sorted({pull.user for pull in result.pulls} | {u for u, _ in result.failed_users})
    servers = "server" if len(users) == 1 else "servers"
    lines = [f"hub '{result.hub}': materials published to {len(users)} running {servers}"]
    for pull in result.pulls:
        lines.append(f"  {pull.user}: {pull.report.folder}: {pull.report.describe()}")
    lines += [f"  {name}: NOT pulled: {why}" for name, why in result.failed_users]
    lines += [f"  {name}: no running server (its next start pulls)"
              for name in result.not_running]
    console.print("\n".join(lines), highlight=False, markup=False)


@text.register
def _(result: CapacityResult, console: Console) -> None:
    def verdict(ok: bool | None) -> str:
        return {True: "enough", False: "NOT ENOUGH", None: "cannot tell"}[ok]

    who = (f"group {result.group}: {result.roster} members" if result.group
           else f"roster: {result.roster}")
    console.print(f"{result.concurrent} servers at once ({who}); the "
                  "sizing rule of The Littlest JupyterHub:", highlight=False)
    no_memory = sum(1 for value in result.memory_per_user if value is None)
    if result.memory_needed is None:
        console.print(f"  memory: {verdict(None)}: {no_memory} of them have no memory limit "
                      "and may each use all of it; set limits.memory (and per group) in "
                      "hub.yaml", highlight=False)
    else:
        console.print(f"  memory: {verdict(result.memory_ok)}: needs "
                      f"{format_size(result.memory_needed)} (their limits + 128M for the hub), "
                      f"this machine has {format_size(result.memory_total)}", highlight=False)
    if result.cpu_needed is None:
        console.print(f"  CPUs:   {verdict(None)}: some have no CPU limit; set limits.cpu",
                      highlight=False)
    else:
        console.print(f"  CPUs:   {verdict(result.cpu_ok)}: needs {result.cpu_needed:g} "
                      f"(their limits + 20%), this machine has {result.cpus}", highlight=False)
    fits = "fit" if result.idle_memory <= result.memory_total else "do NOT fit"
    console.print(f"  started and idle (prewarmed, before anyone runs code) they {fits}: "
                  f"{format_size(result.idle_memory)} of {format_size(result.memory_total)}",
                  highlight=False)
    console.print(f"  limits are {result.enforcement}", highlight=False)
