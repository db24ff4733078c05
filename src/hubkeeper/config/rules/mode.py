"""The mode rules: hub.mode resolved against who runs hubkeeper, and what the backend and the
login need of that mode. Every problem is placed at its line (hub.mode, backend, auth.kind,
hub.ip), and all are returned together."""

from __future__ import annotations

import ipaddress
from typing import Literal

from hubkeeper.base.errors import Problem
from hubkeeper.config.backends import backend_of
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules.spec import system_auth_rules

Mode = Literal["system", "personal"]


def effective_mode(spec: HubSpec, is_root: bool) -> Mode:
    """hub.mode with `auto` resolved: system as root, personal otherwise."""
    if spec.hub.mode == "auto":
        return "system" if is_root else "personal"
    return spec.hub.mode


def auth_kind(spec: HubSpec, mode: Mode) -> str:
    """auth.kind, or its default: PAM for Linux accounts, one shared password otherwise."""
    return spec.auth.kind or ("pam" if mode == "system" else "shared-password")


def mode_problems(loaded: LoadedSpec, is_root: bool) -> list[Problem]:
    """What hub.yaml's mode, backend and login ask that this account cannot give. Backend
    kubernetes runs nowhere here: callers treat it before (see `resolve_mode`)."""
    spec = loaded.spec
    mode = effective_mode(spec, is_root)
    problems = []
    if mode == "system" and spec.hub.mode == "auto":
        # hub.mode: system is refused at load already; `auto` becomes system only here.
        problems += [loaded.problem(where, f"{message} (hub.mode 'auto' is system mode as "
                                    "root)") for where, message in system_auth_rules(spec)]
    if mode == "system" and not is_root:
        problems.append(loaded.problem(
            ("hub", "mode"), "'system' runs servers as Linux accounts and needs root; run as "
            "root, or set hub.mode: personal to try hubkeeper as yourself"))
    # With hub.mode: personal written out, load has refused docker and slurm already.
    backend = backend_of(spec)
    if backend.needs_system_mode and mode != "system" and spec.hub.mode == "auto":
        problems.append(loaded.problem(
            ("backend",), f"{backend.name!r} {backend.system_mode_because}"))
    if auth_kind(spec, mode) == "pam" and mode != "system":
        problems.append(loaded.problem(
            ("auth", "kind"),
            "'pam' logs in Linux accounts, which needs system mode; run as root with "
            "hub.mode: system (or auto), or use auth.kind: shared-password"))
    if mode == "personal" and is_root and not ipaddress.ip_address(spec.hub.ip).is_loopback:
        problems.append(loaded.problem(
            ("hub", "ip"), f"personal mode as root would give every user a root shell on "
            f"{spec.hub.ip}; use hub.mode: system (servers run as Linux accounts), or keep "
            "hub.ip on 127.0.0.1 for a demo"))
    if spec.web.enabled and mode != "system":
        problems.append(loaded.problem(
            ("web", "enabled"), "the student's page restores files as each student's own "
            "account and runs as an account of its own, which needs system mode; run as root "
            "with hub.mode: system (or auto), or set web.enabled: false"))
    return problems
