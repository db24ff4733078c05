"""`hubkeeper render`: the JupyterHub configuration hubkeeper would run, secrets redacted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubkeeper.config.loader import load
from hubkeeper.context.runtime import Runtime
from hubkeeper.render.jupyterhub import as_plain, render


@dataclass(frozen=True)
class RenderResult:
    config: str
    mode: str
    jupyterhub: dict[str, Any]


def render_config(config: Path) -> RenderResult:
    loaded = load(config)
    runtime = Runtime.from_host(loaded, redact=True)
    return RenderResult(config=str(loaded.path), mode=runtime.mode,
                        jupyterhub=as_plain(render(loaded.spec, runtime)))
