"""Doctor check of the escape hatch: what hub.extra_config's files (and the environments'
server_config files) override of hubkeeper's own settings.

Each file is run into an empty traitlets Config, as the hub and the servers run it but
without starting anything, and the Class.trait names it sets are compared with those
hubkeeper sets: an override is the operator's choice, shown so that it is not a surprise.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from traitlets.config import Config

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.context.runtime import SERVER_CONFIG_DIR
from hubkeeper.doctor.findings import Context, Finding, error_text
from hubkeeper.host.extra_config import ExtraFile, extra_files, read_safe, run_into, settings_of

SERVER_SETTINGS_FILE = Path(SERVER_CONFIG_DIR) / "jupyter_server_config.py"


def extra_config_checks(context: Context) -> Iterable[Finding]:
    files = extra_files(context.loaded)
    if not files:
        return
    hub_files = [entry for entry in files if entry.environment is None]
    ours_hub = (context.hub_settings() if hub_files and context.hub_settings is not None
                else frozenset())
    ours_server = server_settings() if len(hub_files) < len(files) else frozenset()
    for entry in files:
        yield from _file_findings(entry, ours_hub if entry.environment is None
                                  else ours_server)


def server_settings() -> frozenset[str]:
    """What hubkeeper's own server settings set (its server config file, without any
    environment's files)."""
    source = SERVER_SETTINGS_FILE.read_text(encoding="utf-8")
    return frozenset(settings_of(_run_alone(SERVER_SETTINGS_FILE, source)))


def _run_alone(path: Path, source: str) -> Config:
    return run_into(Config(), path, source)


def _file_findings(entry: ExtraFile, ours: frozenset[str]) -> Iterable[Finding]:
    kind = ("extra_config" if entry.environment is None
            else f"server_config of environment {entry.environment!r}")
    by = "hubkeeper" if entry.environment is None else "hubkeeper's server settings"
    subject = str(entry.path)
    try:
        settings = settings_of(_run_alone(entry.path, read_safe(entry.path)))
    except HubkeeperError as exc:
        yield Finding("extra_config", "problem", subject, error_text(exc))
        return
    except OSError as exc:
        yield Finding("extra_config", "problem", subject,
                      f"{kind} {entry.path} cannot be read: {exc.strerror}. See `hubkeeper "
                      "check`.")
        return
    except (Exception, SystemExit) as exc:  # the operator's code: any error is theirs
        yield Finding("extra_config", "problem", subject,
                      f"{kind} {entry.path} fails when run: {type(exc).__name__}: {exc}. "
                      f"It runs {entry.runs}; fix it, or the start fails there too.")
        return
    overridden = sorted(settings & ours)
    for name in overridden:
        yield Finding("extra_config", "warning", subject,
                      f"{kind} {entry.path.name} overrides {name} set by {by}. That is the "
                      "operator's own choice; hubkeeper's value no longer applies.")
    if not overridden:
        names = ", ".join(sorted(settings)) or "nothing"
        yield Finding("extra_config", "ok", subject,
                      f"{kind} {entry.path.name} sets {names}; none of it is set by {by}.")
