"""`hubkeeper render`: the JupyterHub configuration hubkeeper would run, secrets redacted,
then the operator's own files that run after it (hub.extra_config, each environment's
server_config), each as it is now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubkeeper.context.hub import Hub
from hubkeeper.context.runtime import Runtime
from hubkeeper.host.extra_config import extra_files
from hubkeeper.render.jupyterhub import as_plain, render


@dataclass(frozen=True)
class ExtraSource:
    path: str
    runs: str  # "hub" or "server:<environment>"
    text: str | None  # None: it cannot be read (`check` says why)


@dataclass(frozen=True)
class RenderResult:
    config: str
    mode: str
    jupyterhub: dict[str, Any]
    extra_config: tuple[ExtraSource, ...] = ()


def render_config(hub: Hub) -> RenderResult:
    runtime = Runtime.from_hub(hub, redact=True)
    return RenderResult(config=str(hub.path), mode=runtime.mode,
                        jupyterhub=as_plain(render(hub.spec, runtime)),
                        extra_config=tuple(_source(entry.path, entry.environment)
                                           for entry in extra_files(hub.loaded)))


def _source(path: Any, environment: str | None) -> ExtraSource:
    try:
        text: str | None = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = None
    runs = "hub" if environment is None else f"server:{environment}"
    return ExtraSource(path=str(path), runs=runs, text=text)
