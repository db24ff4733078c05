"""Glue used inside the jupyterhub process: load hub.yaml again, observe the host, render."""

from __future__ import annotations

import os

from traitlets.config import Config

from hubkeeper.config.loader import CONFIG_ENV
from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Runtime
from hubkeeper.hub.announcement import Announcement
from hubkeeper.render.jupyterhub import render


def config_for_this_process() -> Config:
    hub = Hub.open(os.environ[CONFIG_ENV])
    config = render(hub.spec, Runtime.from_hub(hub))
    # A callable, not a string: read at each page, so a banner needs no restart (`upgrade`).
    config.JupyterHub.template_vars = {"announcement": Announcement(str(hub.paths.announcement))}
    return config
