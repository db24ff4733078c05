"""Glue used inside the jupyterhub process: load hub.yaml again, observe the host, render."""

from __future__ import annotations

import os

from traitlets.config import Config

from hubkeeper.config.loader import CONFIG_ENV, load
from hubkeeper.context.runtime import Runtime
from hubkeeper.render.jupyterhub import render


def config_for_this_process() -> Config:
    loaded = load(os.environ[CONFIG_ENV])
    return render(loaded.spec, Runtime.from_host(loaded))
