"""Glue used inside the jupyterhub process: load hub.yaml again, observe the host, render;
then run hub.extra_config's files into the same Config."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from traitlets.config import Config

from hubkeeper.config.loader import CONFIG_ENV
from hubkeeper.config.types import config_relative
from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Runtime
from hubkeeper.host.extra_config import read_safe, run_into
from hubkeeper.hub import metrics_collector
from hubkeeper.hub.announcement import Announcement
from hubkeeper.render.jupyterhub import render

log = logging.getLogger(__name__)


def this_hub() -> Hub:
    """The hub this process runs: hub.yaml from HUBKEEPER_CONFIG."""
    return Hub.open(os.environ[CONFIG_ENV])


def config_for_this_process(hub: Hub | None = None) -> Config:
    hub = hub or this_hub()
    config = render(hub.spec, Runtime.from_hub(hub))
    # hubkeeper's metrics beside JupyterHub's at /hub/metrics (docs/metrics.md)
    metrics_collector.install(hub)
    # A callable, not a string: read at each page, so a banner needs no restart (`upgrade`).
    config.JupyterHub.template_vars = {"announcement": Announcement(str(hub.paths.announcement))}
    if hub.spec.web.enabled and hub.mode == "system":
        # hub/templates/home.html links the student's page (proc/webpage.py)
        config.JupyterHub.template_vars["hubkeeper_page"] = \
            f"{hub.spec.hub.base_url}services/hubkeeper/me/"
    return config


def run_extra_config(config: Config, get_config: Callable[[], Config],
                     hub: Hub | None = None) -> None:
    """Each hub.extra_config file, in order, run with `c` = the hub's Config: re-checked
    first, since it runs as the hub (a file someone else could change stops the start)."""
    loaded = (hub or this_hub()).loaded
    for value in loaded.spec.hub.extra_config:
        path = config_relative(loaded.directory, value)
        log.info("hub.extra_config: loading %s (the operator's own configuration)", path)
        run_into(config, path, read_safe(path), get_config)
