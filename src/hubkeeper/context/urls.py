"""The hub's addresses, derived from hub.yaml alone: one function each, used by every caller
(the rendered config, the supervisor, the REST clients, the doctor)."""

from __future__ import annotations

from hubkeeper.config.backends import backend_of
from hubkeeper.config.model import HubSpec


def _host(ip: str) -> str:
    return ip if ":" not in ip else f"[{ip}]"


def bind_url(spec: HubSpec) -> str:
    """Where the hub's proxy listens (JupyterHub.bind_url): hub.ip:hub.port with base_url."""
    return f"http://{_host(spec.hub.ip)}:{spec.hub.port}{spec.hub.base_url}"


def public_url(spec: HubSpec) -> str:
    """Where the hub's proxy answers on this machine (hub.ip:hub.port with base_url); a
    wildcard address is reached on the loopback."""
    host = _host(spec.hub.ip)
    if host in ("0.0.0.0", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{spec.hub.port}{spec.hub.base_url}"


def hub_api_ip(spec: HubSpec) -> str:
    """Where the hub's own API listens: servers call home there, on this machine or from a
    Slurm cluster's nodes."""
    return backend_of(spec).hub_api_ip(spec)


def hub_bind_url(spec: HubSpec) -> str:
    """The hub's own API address without base_url (JupyterHub.hub_bind_url)."""
    return f"http://{_host(hub_api_ip(spec))}:{spec.hub.api_port}"


def hub_api_url(spec: HubSpec) -> str:
    """The hub's own address with base_url (HubAPI adds hub/api): reached without the proxy,
    so that the roster reaches the hub even while the proxy is busy or behind nginx."""
    return f"{hub_bind_url(spec)}{spec.hub.base_url}"
