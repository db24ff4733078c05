"""`hubkeeper up`: run the hub and its proxy in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.base.locks import HubLock
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative
from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Runtime
from hubkeeper.host.preflight import preflight_problems
from hubkeeper.host.service_account import ensure_account
from hubkeeper.host.supervisor import Supervisor
from hubkeeper.lifecycle.webhelper import RunningHelper, start_helper
from hubkeeper.ops.converge import sync_hub
from hubkeeper.state.identity import WEB_ORIGIN, WEB_USER, web_account
from hubkeeper.state.migrations import migrate
from hubkeeper.state.statedir import (
    StatePaths,
    ensure_layout,
    ensure_secrets,
    protect_database,
)


@dataclass(frozen=True)
class Banner:
    """What the operator needs to know once the hub answers."""

    url: str
    hub: str
    mode: str
    public_url: str | None  # hub.url: what users open, through nginx
    state_dir: str
    log_file: str
    auth: str
    users: tuple[str, ...]
    admins: tuple[str, ...]
    shared_password: str | None
    admin_password: str | None
    password_files: tuple[str, str] | None  # where the two passwords are kept
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class UpResult:
    hub: str
    stopped_on_request: bool
    returncode: int
    stop_seconds: float | None
    killed: bool


PERSONAL_WARNING = (
    "personal mode: every user's server runs as this account ({account}); users are NOT "
    "isolated from each other. Use system mode (root) for real users."
)


def _password_file(loaded: LoadedSpec, paths: StatePaths, key: str) -> str:
    given = getattr(loaded.spec.auth, key)
    if given:
        return str(config_relative(loaded.directory, given))
    return str(paths.secret("shared-password" if key == "password_file" else "admin-password"))


def start_web(hub: Hub) -> RunningHelper | None:
    """web.enabled (system mode): the web service's own account, made once and journaled
    (JupyterHub runs the service as it), and the root helper it asks for users' files, in
    threads of this process until the hub stops (docs/web.md)."""
    if not (hub.spec.web.enabled and hub.mode == "system"):
        return None
    account = web_account(hub.spec.hub.name)
    # keyed by its account, as the roster's accounts are (retire removes it by that key)
    entry = ensure_account(hub.paths.journal, account, account, WEB_ORIGIN,
                           "hubkeeper web pages", user=WEB_USER,
                           useradd=("--system", "--no-create-home", "--home-dir",
                                    "/nonexistent"))
    config = hub.loaded.path
    return start_helper(lambda: Hub.open(config), hub.paths, entry.pw_uid, entry.pw_gid,
                        hub.spec.web.max_read)


def up(hub: Hub, on_ready: Callable[[Banner], None], output: IO[str] | None) -> UpResult:
    loaded, roster, mode, paths = hub.loaded, hub.roster, hub.mode, hub.paths
    hub.check_not_retired()
    lock = HubLock(paths)
    lock.check_free()
    migrated = migrate(paths)  # an older hubkeeper's state format, before it is read
    problems = preflight_problems(loaded, roster, mode, paths, starting=True)
    if problems:
        raise InvalidInput(problems)
    Runtime.from_hub(hub, redact=True)  # executables found before anything is created

    ensure_layout(paths)
    lock.acquire()
    try:
        protect_database(paths, create=True)
        ensure_secrets(paths)
        runtime = Runtime.from_hub(hub)
        spec = loaded.spec
        warnings: list[str] = [f"migrated {line}" for line in migrated]
        if mode == "personal":
            import pwd

            warnings.append(PERSONAL_WARNING.format(account=pwd.getpwuid(hub.euid).pw_name))
        kind = hub.auth_kind
        shared = kind == "shared-password"

        def ready(url: str) -> None:
            try:
                synced, credentials = sync_hub(loaded, roster, mode, paths)
                warnings.append(f"roster: {synced} change(s) made in the hub") if synced else None
                if credentials:
                    warnings.append(f"invite codes for native sign-up are in {credentials} "
                                    "(mode 0600): hand them out, then delete the file")
            except HubkeeperError as exc:
                warnings.append(f"the hub's users could not be put in step with the roster: "
                                f"{exc.message}; `hubkeeper apply` retries")
            on_ready(Banner(
                url=url,
                hub=spec.hub.name,
                public_url=spec.hub.url,
                mode=mode,
                state_dir=str(paths.root),
                log_file=str(paths.logs / "hub.log"),
                auth=kind,
                users=tuple(m.name for m in roster.active if not m.admin),
                admins=tuple(m.name for m in roster.active if m.admin),
                shared_password=runtime.secrets.shared_password if shared else None,
                admin_password=runtime.secrets.admin_password if shared else None,
                password_files=(_password_file(loaded, paths, "password_file"),
                                _password_file(loaded, paths, "admin_password_file"))
                if shared else None,
                warnings=tuple(warnings),
            ))

        helper = start_web(hub)
        try:
            supervisor = Supervisor(loaded, paths, ready, output, lock_fd=lock.fd)
            outcome = supervisor.run()
        finally:
            if helper is not None:
                helper.close()
    finally:
        lock.release()
    if not outcome.requested:
        raise HubkeeperError(
            f"the hub exited on its own (code {outcome.returncode})",
            hint=f"see {paths.logs / 'hub.log'}; `hubkeeper up` again adopts any server "
            "still running",
        )
    return UpResult(hub=loaded.spec.hub.name, stopped_on_request=True,
                    returncode=outcome.returncode, stop_seconds=outcome.stop_seconds,
                    killed=outcome.killed)
