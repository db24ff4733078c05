"""Check the hub and its proxy: is `hubkeeper up` running, do the hub, the public address and
the proxy's API answer, and what did a killed hub leave behind (pid files, a proxy)."""

from __future__ import annotations

import json
from pathlib import Path

from hubkeeper.base.errors import HubkeeperError
from hubkeeper.base.procs import alive
from hubkeeper.context.urls import hub_api_url, public_url
from hubkeeper.doctor.findings import Context, Finding
from hubkeeper.host.hubapi import HubUnreachable, fetch
from hubkeeper.host.peer import ListenerRefused
from hubkeeper.host.running import orphan_proxy, running_hub
from hubkeeper.state.statedir import read_secret

CHECK = "hub"
PROBE_TIMEOUT = 5.0  # seconds per request; a hub that takes longer is reported as stuck


def probe(url: str, what: str, token: str | None = None) -> tuple[int | None, str]:
    """(HTTP status, body) of a GET, or (None, why it got no answer). Straight to the
    address (never an http_proxy), and only to a listener of root or the hub's account:
    a stranger on the port is the answer ("held by account ...")."""
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        answer = fetch(url, what=what, headers=headers, timeout=PROBE_TIMEOUT)
    except (HubUnreachable, ListenerRefused) as exc:
        return None, str(exc)
    body = answer.body.decode(errors="replace") if answer.status < 400 else ""
    return answer.status, body


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().strip()) or None
    except (OSError, ValueError):
        return None


def hub_checks(ctx: Context) -> list[Finding]:
    paths, spec = ctx.paths, ctx.loaded.spec
    name = f"hub '{spec.hub.name}'"
    if not paths.root.is_dir():
        return [Finding(CHECK, "warning", name, (
            f"The hub has never run here (there is no state directory {paths.root}): start "
            "it with `hubkeeper up`."))]
    holder = running_hub(paths)
    if holder is None:
        return _stopped(ctx, name)
    who = f"`hubkeeper up` (pid {holder})" if holder else "a `hubkeeper up`"
    log_file = paths.logs / "hub.log"
    findings = []
    hub_api = hub_api_url(spec) + "hub/api/"
    status, body = probe(hub_api, "the hub's API")
    if status == 200:
        try:
            version = json.loads(body).get("version", "?")
        except ValueError:
            version = "?"
        findings.append(Finding(CHECK, "ok", hub_api, (
            f"The hub runs under {who} and answers at {hub_api} (JupyterHub {version}).")))
    else:
        findings.append(Finding(CHECK, "problem", hub_api, (
            f"{who} holds {paths.lock}, but the hub does not answer at {hub_api} "
            f"({_why(status, body)}). It may still be starting (give it a minute) or be "
            f"stuck: read {log_file}; `kill -TERM {holder or '<pid>'}` stops it, then "
            "`hubkeeper up` starts it again.")))
        if (pid := _pid_in(paths.hub_pid)) is not None and not alive(pid):
            findings.append(_stale(paths.hub_pid, pid, "the hub", problem=True))
    public = public_url(spec) + "hub/api/"
    status, body = probe(public, "the hub's proxy")
    if status == 200:
        findings.append(Finding(CHECK, "ok", public, (
            f"The proxy passes users' requests: {public} answers.")))
    else:
        findings.append(Finding(CHECK, "problem", public, (
            f"The hub's public address {public} does not answer ({_why(status, body)}), so "
            f"users cannot reach the hub. The proxy may have died or hub.port be taken by "
            f"another program: read {log_file}, and restart the hub (`kill -TERM "
            f"{holder or '<pid>'}`, then `hubkeeper up`).")))
    findings.append(_proxy_api(ctx, log_file))
    return findings


def _proxy_api(ctx: Context, log_file: Path) -> Finding:
    port = ctx.loaded.spec.proxy.api_port
    url = f"http://127.0.0.1:{port}/api/routes"
    try:
        token: str | None = read_secret(ctx.paths, "proxy-token")
    except HubkeeperError:
        token = None  # not ours to read: that the port answers at all is still worth knowing
    status, body = probe(url, "the hub's proxy (its API)", token)
    if status == 200 or (status is not None and token is None):
        try:
            routes = f", with {len(json.loads(body))} routes" if status == 200 else ""
        except ValueError:
            routes = ""
        return Finding(CHECK, "ok", url, f"The proxy's API answers at {url}{routes}.")
    return Finding(CHECK, "problem", url, (
        f"The proxy's API does not answer at {url} ({_why(status, body)}), so the hub "
        f"cannot add or remove users' servers. Read {log_file}, and restart the hub."))


def _stopped(ctx: Context, name: str) -> list[Finding]:
    paths = ctx.paths
    findings = [Finding(CHECK, "warning", name, (
        f"The hub is not running (no `hubkeeper up` holds {paths.lock}): users cannot log "
        "in until it runs. Start it with `hubkeeper up` (or its systemd service)."))]
    if (pid := _pid_in(paths.hub_pid)) is not None and not alive(pid):
        findings.append(_stale(paths.hub_pid, pid, "the hub", problem=False))
    orphan = orphan_proxy(paths, ctx.loaded.spec.proxy.api_port)
    if orphan is not None:
        findings.append(Finding(CHECK, "warning", str(paths.proxy_pid), (
            f"A proxy (pid {orphan}) left by a hub that was killed still runs and holds "
            f"port {ctx.loaded.spec.hub.port}; users reaching it get errors. The next "
            f"`hubkeeper up` takes it over; to stop it now, `kill -TERM {orphan}`.")))
    elif (pid := _pid_in(paths.proxy_pid)) is not None and not alive(pid):
        findings.append(_stale(paths.proxy_pid, pid, "the proxy", problem=False))
    return findings


def _stale(path: Path, pid: int, what: str, problem: bool) -> Finding:
    if problem:
        return Finding(CHECK, "problem", str(path), (
            f"{path} names pid {pid}, which no longer runs: {what} died while `hubkeeper "
            "up` still holds the lock. Stop `hubkeeper up` and start it again."))
    return Finding(CHECK, "warning", str(path), (
        f"{path} names pid {pid}, which no longer runs: {what} was killed rather than "
        "stopped (kill -9, a crash, a power cut) and could not remove the file. Harmless: "
        "the next `hubkeeper up` writes it anew."))


def _why(status: int | None, body: str) -> str:
    return f"HTTP {status}" if status is not None else body or "no answer"
