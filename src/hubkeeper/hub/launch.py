"""Glue used inside the jupyterhub process: load hub.yaml again, observe the host, render."""

from __future__ import annotations

import os

from traitlets.config import Config

from hubkeeper.config.loader import load
from hubkeeper.hub.render import render
from hubkeeper.hub.runtime import Runtime

CONFIG_ENV = "HUBKEEPER_CONFIG"


def config_for_this_process() -> Config:
    loaded = load(os.environ[CONFIG_ENV])
    return render(loaded.spec, Runtime.from_host(loaded))
