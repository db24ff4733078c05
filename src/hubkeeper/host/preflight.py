"""Checks of hub.yaml against this machine, made before anything changes."""

from __future__ import annotations

import errno
import os
import pwd
import socket
from pathlib import Path

from hubkeeper.config.loader import LoadedSpec
from hubkeeper.errors import Problem
from hubkeeper.host.statedir import StatePaths
from hubkeeper.roster import Roster


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def account_problems(roster: Roster) -> list[Problem]:
    """System mode: every roster user must be a Linux account (`hubkeeper apply` makes them)."""
    problems = []
    for member in roster.members:
        if not _account_exists(member.account):
            problems.append(member.origin.problem(
                f"{member.account!r} has no Linux account on this machine; in system mode "
                "each hub user is one: `hubkeeper apply` creates the roster's accounts (or "
                "use hub.mode: personal)",
            ))
    return problems


def password_file_problems(loaded: LoadedSpec) -> list[Problem]:
    problems = []
    for key, minimum in (("password_file", 8), ("admin_password_file", 32)):
        value = getattr(loaded.spec.auth, key)
        if not value:
            continue
        path = loaded.directory / value
        try:
            text = path.read_text().strip()
        except OSError as exc:
            problems.append(loaded.problem(("auth", key), f"cannot read {path}: {exc.strerror}"))
            continue
        if len(text) < minimum:
            problems.append(loaded.problem(
                ("auth", key), f"{path} holds {len(text)} characters; at least {minimum} needed"))
        if path.stat().st_mode & 0o077:
            problems.append(loaded.problem(
                ("auth", key), f"{path} is readable by other users; chmod 600 {path}"))
    return problems


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _port_busy(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def port_problems(loaded: LoadedSpec, paths: StatePaths) -> list[Problem]:
    """Ports hub.yaml asks for that another program holds.

    A proxy left running by a hub that was killed is ours: the hub replaces it at start, so
    its two ports are not reported.
    """
    spec = loaded.spec
    ports = [(("hub", "api_port"), "127.0.0.1", spec.hub.api_port)]
    if not _pid_alive(paths.proxy_pid):
        ports += [(("hub", "port"), spec.hub.ip, spec.hub.port),
                  (("proxy", "api_port"), "127.0.0.1", spec.proxy.api_port)]
    return [
        loaded.problem(loc, f"port {port} on {ip} is in use by another program; choose a "
                            "free port or stop that program")
        for loc, ip, port in ports if _port_busy(ip, port)
    ]
