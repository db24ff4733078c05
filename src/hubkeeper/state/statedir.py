"""The state directory: hub database, secrets (0600), run files, logs, personal homes.

    <state>/                    0711: users' servers pass through to envs/, nothing else
    <state>/VERSION             {"schema": 1, "created_by": "hubkeeper 0.1.0"}; an older
                                schema is migrated forward by `up` and `apply`, a newer
                                one refused (state/migrations.py)
    <state>/jupyterhub.sqlite   the hub database (0600: ports, admins, password hashes)
    <state>/journal.json        every account, group and folder hubkeeper created (journal.py)
    <state>/secrets/            0700; cookie-secret, proxy-token, api-token (apply,
                                prewarm), status-token (read-only: status),
                                service-token (the web service's own, for OAuth),
                                metrics-token (read:metrics only: Prometheus),
                                shared-password, admin-password (each 0600); with auth.kind
                                github also github-client-id, github-client-secret (written
                                by the operator, never generated); with auth.ldap's
                                lookup_dn_search_user ldap-bind-password, with auth.kind
                                oidc oidc-client-id, oidc-client-secret (the same way)
    <state>/run/                0700; hub.lock (held while a hub runs), apply.lock,
                                snapshot.lock, archive.lock (each 0600), jupyterhub.pid,
                                proxy.pid
    <state>/logs/               0750; hub.log
    <state>/logs/hooks/         0700; <user>.log: output of the start-up hooks (hooks:)
    <state>/envs/<name>/        environments: one venv per build (<content-hash>/, 0755, with
                                requirements.lock), `current` -> the build new servers use;
                                .lock (0600) while one builds
    <state>/users/<name>/       personal mode: each hub user's directory (0700)
    <state>/RETIRED.json        written by `hubkeeper retire`; then no hub starts here again
    <state>/upgrade.json        the upgrade under way (or the last one): its steps, written
                                before each (lifecycle/upgrade.py)
    <state>/upgrade/<id>/       that upgrade's work: the database kept byte for byte, its
                                upgraded copy (0700)
    <state>/announcement.txt    the banner JupyterHub shows on every page while it exists
    <state>/snapshot-runs.json  the last snapshot run per target: when, ok or why not
                                (state/snapshot_runs.py; the hub's metrics read it)
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.files import write_atomic
from hubkeeper.base.locks import RUN_DIR_MODE, private_directory, renew
from hubkeeper.base.whoami import effective_uid
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.types import config_relative
from hubkeeper.state.migrations import STATE_SCHEMA, check_version, write_version

STATE_DIR_MODE = 0o711  # servers run as users and execute envs/<name>/current/bin/python
DATABASE_MODE = 0o600
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")

SECRET_NAMES = ("cookie-secret", "proxy-token", "service-token", "api-token", "status-token",
                "metrics-token", "shared-password", "admin-password")


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def version_file(self) -> Path:
        return self.root / "VERSION"

    @property
    def database(self) -> Path:
        return self.root / "jupyterhub.sqlite"

    @property
    def database_files(self) -> list[Path]:
        """The database and SQLite's side files next to it (journal, WAL)."""
        return [self.database] + [self.root / f"jupyterhub.sqlite{suffix}"
                                  for suffix in SQLITE_SIDE_FILES]

    @property
    def journal(self) -> Path:
        return self.root / "journal.json"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def lock(self) -> Path:
        return self.run / "hub.lock"

    @property
    def warm(self) -> Path:
        """servers.warm: the warm parents' sockets (the hub's account's, 0700)."""
        return self.run / "warm"

    @property
    def web(self) -> Path:
        """root's, group the web account's, 0750: only they reach the helper's socket."""
        return self.root / "web"

    @property
    def helper_socket(self) -> Path:
        return self.web / "helper.sock"

    @property
    def hub_pid(self) -> Path:
        return self.run / "jupyterhub.pid"

    @property
    def proxy_pid(self) -> Path:
        return self.run / "proxy.pid"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def hook_logs(self) -> Path:
        return self.logs / "hooks"

    @property
    def envs(self) -> Path:
        return self.root / "envs"

    @property
    def users(self) -> Path:
        return self.root / "users"

    @property
    def retired(self) -> Path:
        return self.root / "RETIRED.json"

    @property
    def upgrade_record(self) -> Path:
        return self.root / "upgrade.json"

    @property
    def upgrades(self) -> Path:
        return self.root / "upgrade"

    @property
    def announcement(self) -> Path:
        return self.root / "announcement.txt"

    @property
    def snapshot_runs(self) -> Path:
        """How the last snapshot went on each target (state/snapshot_runs.py)."""
        return self.root / "snapshot-runs.json"

    def secret(self, name: str) -> Path:
        return self.secrets / name

    def layout(self) -> tuple[tuple[Path, int], ...]:
        """Each folder of the state dir with its mode: nothing others may list or write
        but envs/ (servers execute the venvs there) and users/ (0700 folders inside)."""
        return ((self.root, STATE_DIR_MODE), (self.secrets, 0o700), (self.run, RUN_DIR_MODE),
                (self.logs, 0o750), (self.users, 0o755))

    def lock_files(self) -> list[Path]:
        """Every lock file hubkeeper has made here: run/*.lock and envs/<name>/.lock."""
        found = sorted(self.run.glob("*.lock")) if self.run.is_dir() else []
        return found + (sorted(self.envs.glob("*/.lock")) if self.envs.is_dir() else [])


def state_paths(loaded: LoadedSpec, is_root: bool) -> StatePaths:
    """Where this hub keeps its state (hub.state_dir, or the documented default)."""
    configured = loaded.spec.hub.state_dir
    if configured:
        return StatePaths(config_relative(loaded.directory, configured))
    if is_root:
        return StatePaths(Path("/var/lib/hubkeeper") / loaded.spec.hub.name)
    return StatePaths(config_relative(loaded.directory, ".hubkeeper"))


@dataclass(frozen=True)
class Secrets:
    """The hub's secrets. `redacted()` gives placeholders for showing a configuration."""

    cookie_secret_file: str
    proxy_token: str
    service_token: str  # the web service's (`hubkeeper`) own token: OAuth, no scopes
    shared_password: str
    admin_password: str
    github_client_id: str = ""  # only read with auth.kind github
    github_client_secret: str = ""
    status_token: str = ""  # the read-only token of `hubkeeper status`
    api_token: str = ""  # apply's and prewarm's (service `hubkeeper-api`)
    metrics_token: str = ""  # Prometheus's: /hub/metrics only (docs/metrics.md)
    ldap_bind_password: str = ""  # only read with auth.ldap.lookup_dn_search_user
    oidc_client_id: str = ""  # only read with auth.kind oidc
    oidc_client_secret: str = ""

    @classmethod
    def redacted(cls, paths: StatePaths) -> Secrets:
        hidden = "<redacted>"
        return cls(str(paths.secret("cookie-secret")), hidden, hidden, hidden, hidden,
                   github_client_id=hidden, github_client_secret=hidden,
                   status_token=hidden, api_token=hidden, metrics_token=hidden,
                   ldap_bind_password=hidden,
                   oidc_client_id=hidden, oidc_client_secret=hidden)


def _generate(name: str) -> bytes:
    if name == "cookie-secret":
        return secrets.token_hex(32).encode()  # JupyterHub reads a hex-encoded key
    if name == "admin-password":
        return secrets.token_urlsafe(24).encode()  # JupyterHub wants >= 32 characters
    if name == "shared-password":
        return secrets.token_urlsafe(9).encode()  # 12 characters, easy to type in a class
    return secrets.token_hex(32).encode()


def ensure_layout(paths: StatePaths) -> list[str]:
    """Create the state directory and its version file, once. Returns what was created."""
    check_not_retired(paths)
    created: list[str] = []
    if not paths.root.exists():
        created.append(str(paths.root))
    for directory, mode in paths.layout():
        private_directory(directory, mode)  # also narrows what an older hubkeeper made
    for lock in paths.lock_files():
        renew(lock)  # an older hubkeeper's 0644 lock file, maybe held open by a student
    protect_database(paths)
    if not paths.version_file.exists():
        write_version(paths, STATE_SCHEMA, f"hubkeeper {__version__}")
        created.append(str(paths.version_file))
    else:
        check_state_version(paths)
    return created


def protect_database(paths: StatePaths, create: bool = False) -> None:
    """The hub database 0600 (JupyterHub would create it with its umask, 0644: every
    account could read server ports, the admins, native login's password hashes): made
    empty and 0600 before the hub's first start (SQLite takes an empty file for a new
    database and gives its journal files the database's mode: `create`, by `up`), and
    narrowed if wider (every ensure_layout: up, apply, adopt, service install)."""
    for path in paths.database_files:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        if create and path == paths.database:
            flags |= os.O_CREAT
        try:
            fd = os.open(path, flags, DATABASE_MODE)
        except FileNotFoundError:
            continue
        try:
            info = os.fstat(fd)
            if (stat.S_ISREG(info.st_mode) and info.st_uid == effective_uid()
                    and stat.S_IMODE(info.st_mode) != DATABASE_MODE):
                os.fchmod(fd, DATABASE_MODE)
        finally:
            os.close(fd)


def ensure_secrets(paths: StatePaths) -> list[str]:
    """Generate each missing secret (0600), once; later starts reuse them."""
    created: list[str] = []
    for name in SECRET_NAMES:
        path = paths.secret(name)
        if not path.exists():
            write_atomic(path, _generate(name), mode=0o600)
            created.append(str(path))
    return created


def check_not_retired(paths: StatePaths) -> None:
    """Refuse a state directory `hubkeeper retire` ended (or began to end)."""
    try:
        record = json.loads(paths.retired.read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        record = {}
    if record.get("state") == "retired":
        archive = (record.get("archive") or {}).get("path", "?")
        raise HubkeeperError(
            f"hub {record.get('hub', '?')!r} was retired on {record.get('finished', '?')}: "
            f"{paths.retired} records what was removed; its archive is {archive}",
            hint="a new hub needs a new hub.state_dir (or delete that record first)")
    raise HubkeeperError(
        f"a retirement of the hub in {paths.root} began and did not finish ({paths.retired})",
        hint="finish it with `hubkeeper retire --yes`")


def check_state_version(paths: StatePaths) -> None:
    """Refuse a retired state dir, and one of another schema than this hubkeeper's (an
    older one names `up`/`apply`, which migrate it; a newer one the hubkeeper that wrote
    it)."""
    check_not_retired(paths)
    check_version(paths, STATE_SCHEMA)


def read_secret(paths: StatePaths, name: str) -> str:
    path = paths.secret(name)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise HubkeeperError(
            f"secret {path} is missing", hint="`hubkeeper up` creates it on first start"
        ) from None
    except PermissionError:
        raise HubkeeperError(
            f"cannot read {path}", hint="run as the account that runs the hub (root?)"
        ) from None


def read_operator_secret(paths: StatePaths, name: str, what: str, how: str) -> str:
    """A secret the operator saves into the secrets directory (hubkeeper cannot make it)."""
    path = paths.secret(name)
    create = (f"save {what} alone in that file, readable only by the account that runs the "
              f"hub: `install -d -m 700 {paths.secrets}`, then `(umask 077; cat > {path})`, "
              "paste it and press Ctrl-D")
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except FileNotFoundError:
        raise HubkeeperError(f"secret {path} is missing: it holds {what}",
                             hint=f"{how}; {create}") from None
    except PermissionError:
        raise HubkeeperError(
            f"cannot read {path}", hint="run as the account that runs the hub (root?)"
        ) from None
    if not text:
        raise HubkeeperError(f"secret {path} is empty: it should hold {what}",
                             hint=f"{how}; {create}")
    if mode & 0o077:
        raise HubkeeperError(f"secret {path} is readable by other users",
                             hint=f"chmod 600 {path}")
    return text


GITHUB_APP_HOW = ("register an OAuth app at https://github.com/settings/applications/new "
                  "(or under your organisation's settings) with auth.github.callback_url as "
                  "its 'Authorization callback URL'")


LDAP_BIND_SECRET = "ldap-bind-password"
LDAP_BIND_WHAT = "the password of auth.ldap.lookup_dn_search_user"
LDAP_BIND_HOW = ("ask the directory's administrators for a search account (its DN is "
                 "auth.ldap.lookup_dn_search_user) and its password")


def read_ldap_bind_password(paths: StatePaths) -> str:
    """The password of the account that searches the directory, saved by the operator."""
    return read_operator_secret(paths, LDAP_BIND_SECRET, LDAP_BIND_WHAT, LDAP_BIND_HOW)


OIDC_CLIENT_HOW = ("register a client (confidential, authorization code flow) with your "
                   "OpenID Connect provider, with auth.oidc.callback_url as its redirect URI "
                   "(docs/users.md)")


OIDC_SECRETS = (("oidc-client-id", "the OpenID Connect client's ID"),
                ("oidc-client-secret", "the OpenID Connect client's secret"))


def read_oidc_client(paths: StatePaths) -> tuple[str, str]:
    """The OpenID Connect client's ID and secret, saved by the operator."""
    client_id, secret = (read_operator_secret(paths, name, what, OIDC_CLIENT_HOW)
                         for name, what in OIDC_SECRETS)
    return client_id, secret


def read_secrets(paths: StatePaths, password_file: Path | None = None,
                 admin_password_file: Path | None = None, github: bool = False,
                 ldap_bind: bool = False, oidc: bool = False) -> Secrets:
    def from_file(path: Path | None, fallback: str) -> str:
        if path is None:
            return read_secret(paths, fallback)
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise HubkeeperError(f"cannot read password file {path}: {exc.strerror}") from None

    oidc_client = read_oidc_client(paths) if oidc else ("", "")
    return Secrets(
        cookie_secret_file=str(paths.secret("cookie-secret")),
        proxy_token=read_secret(paths, "proxy-token"),
        service_token=read_secret(paths, "service-token"),
        status_token=read_secret(paths, "status-token"),
        api_token=read_secret(paths, "api-token"),
        metrics_token=read_secret(paths, "metrics-token"),
        shared_password=from_file(password_file, "shared-password"),
        admin_password=from_file(admin_password_file, "admin-password"),
        github_client_id=read_operator_secret(
            paths, "github-client-id", "the GitHub OAuth app's Client ID", GITHUB_APP_HOW)
        if github else "",
        github_client_secret=read_operator_secret(
            paths, "github-client-secret", "a client secret of the GitHub OAuth app "
            "('Generate a new client secret' on the app's page)", GITHUB_APP_HOW)
        if github else "",
        ldap_bind_password=read_ldap_bind_password(paths) if ldap_bind else "",
        oidc_client_id=oidc_client[0],
        oidc_client_secret=oidc_client[1],
    )

