"""`hubkeeper render`: the JupyterHub configuration hubkeeper would run, secrets redacted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Runtime
from hubkeeper.render.jupyterhub import as_plain, render


@dataclass(frozen=True)
class RenderResult:
    config: str
    mode: str
    jupyterhub: dict[str, Any]


def render_config(hub: Hub) -> RenderResult:
    runtime = Runtime.from_hub(hub, redact=True)
    return RenderResult(config=str(hub.path), mode=runtime.mode,
                        jupyterhub=as_plain(render(hub.spec, runtime)))
