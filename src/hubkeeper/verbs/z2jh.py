"""`hubkeeper export z2jh`: hub.yaml as values for the Zero to JupyterHub Helm chart.

Writes one values file (no secrets, 0644) and, when asked, a secrets file (0600) from the
state dir's passwords and the GitHub app's keys. Reads hub.yaml, the roster and the hook
scripts; changes nothing else. render/z2jh.py makes the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hubkeeper import __version__
from hubkeeper.base.errors import HubkeeperError, InvalidInput
from hubkeeper.base.files import write_atomic
from hubkeeper.config.types import config_relative
from hubkeeper.context.hub import Hub
from hubkeeper.host.preflight import cluster_problems
from hubkeeper.render.z2jh import dump, z2jh_secrets, z2jh_values
from hubkeeper.state.statedir import (
    GITHUB_APP_HOW,
    read_operator_secret,
    read_secret,
)


@dataclass(frozen=True)
class Z2jhResult:
    config: str
    hub: str
    values: str  # the file written, or "-" for standard output
    secrets: str | None
    chart_version: str
    users: int
    environments: tuple[str, ...]
    text: str  # the values, for standard output


def export_z2jh(hub: Hub, output: Path | None,
                secrets_output: Path | None = None) -> Z2jhResult:
    """Write the values for `hub`'s hub.yaml to `output` (None: only return them)."""
    loaded = hub.loaded
    spec = loaded.spec
    roster = hub.roster
    problems = cluster_problems(loaded, roster)
    scripts: dict[str, str] = {}
    for phase in ("as_root", "as_user"):
        for index, hook in enumerate(getattr(spec.hooks, phase)):
            path = config_relative(loaded.directory, hook.script)
            try:
                scripts[hook.script] = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                problems.append(loaded.problem(("hooks", phase, index, "script"),
                                               f"cannot read {path}: {reason}; the export "
                                               "puts the script's text in the values"))
    for index, name in enumerate(spec.hub.extra_config):  # into hub.extraConfig, last
        path = config_relative(loaded.directory, name)
        try:
            scripts[name] = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            problems.append(loaded.problem(("hub", "extra_config", index),
                                           f"cannot read {path}: {reason}; the export puts "
                                           "the file's text in hub.extraConfig"))
    if problems:
        raise InvalidInput(problems, hint="docs/kubernetes.md: what a cluster takes from "
                           "hub.yaml")
    targets = [_target(path) for path in (output, secrets_output) if path is not None]
    if len(targets) == 2 and targets[0] == targets[1]:
        raise HubkeeperError("the values and the secrets would be the same file",
                             hint="-o values.yaml --secrets secrets.yaml")
    secrets_text = _secrets(hub) if secrets_output else None
    text = dump(z2jh_values(spec, roster, scripts, f"hubkeeper {__version__}"))
    if output is not None:
        write_atomic(output.absolute(), text.encode(), 0o644)
    if secrets_output is not None and secrets_text is not None:
        write_atomic(secrets_output.absolute(), secrets_text.encode(), 0o600)
    return Z2jhResult(
        config=str(loaded.path), hub=spec.hub.name,
        values=str(output) if output is not None else "-",
        secrets=str(secrets_output) if secrets_output is not None else None,
        chart_version=spec.kubernetes.chart_version,
        users=len(roster.active), environments=tuple(spec.environments), text=text)


def _secrets(hub: Hub) -> str:
    """The secrets file's text, from this machine's state dir (read before anything is
    written, so a missing secret leaves no half export)."""
    loaded = hub.loaded
    spec = loaded.spec
    auth = spec.auth
    if auth.kind == "native":
        raise HubkeeperError("auth.kind native keeps its passwords in the hub's database; "
                             "there is no secrets file to write",
                             hint="leave out --secrets; users sign up again on the cluster, "
                             "or move the database (docs/kubernetes.md)")
    paths = hub.paths
    found: dict[str, str] = {}
    if auth.kind == "shared-password":
        for name, given in (("shared-password", auth.password_file),
                            ("admin-password", auth.admin_password_file)):
            if given:
                path = config_relative(loaded.directory, given)
                try:
                    found[name] = path.read_text().strip()
                except OSError as exc:
                    raise HubkeeperError(f"cannot read {path}: {exc.strerror}") from None
            else:
                found[name] = read_secret(paths, name)
    else:
        for name, what in (("github-client-id", "the GitHub OAuth app's Client ID"),
                           ("github-client-secret", "a client secret of the GitHub OAuth "
                            "app")):
            found[name] = read_operator_secret(paths, name, what, GITHUB_APP_HOW)
    return dump(z2jh_secrets(spec, found))


def _target(path: Path) -> Path:
    """Where a file goes, refused before anything is written."""
    path = path.absolute()
    if path.is_dir():
        raise HubkeeperError(f"{path} is a folder", hint="give a file name, e.g. values.yaml")
    if not path.parent.is_dir():
        raise HubkeeperError(f"{path.parent} does not exist; nothing was written")
    return path
