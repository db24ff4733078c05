"""Driving the nginx that hub.yaml's nginx.main_config belongs to: check, reload, start, and
see whether a new site is really being served."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from hubkeeper.base import procs
from hubkeeper.base.errors import HubkeeperError

log = logging.getLogger(__name__)
SBIN = "/usr/sbin:/sbin"
LIVE_DEADLINE = 15.0  # seconds for a reloaded nginx to serve the new site


def find_nginx() -> str | None:
    path = os.environ.get("PATH", "") + ":" + SBIN
    return shutil.which("nginx", path=path)


def _nginx() -> str:
    found = find_nginx()
    if not found:
        raise HubkeeperError("nginx is not installed", hint="apt-get install nginx")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run nginx; its stderr goes to a file, not a pipe: a master that daemonizes keeps the
    descriptors it was given, and a pipe would never reach end of file."""
    with tempfile.TemporaryFile("w+") as errors:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=errors, text=True, timeout=60)
        errors.seek(0)
        return subprocess.CompletedProcess(args, done.returncode, done.stdout, errors.read())


def check_config(main_config: str, must_include: str | None = None) -> None:
    """`nginx -T`: the whole configuration is valid (and includes must_include). Raises with
    nginx's own message."""
    done = _run([_nginx(), "-T", "-q", "-c", main_config])
    if done.returncode != 0:
        message = done.stderr.strip() or f"nginx -t exited with {done.returncode}"
        raise HubkeeperError(f"nginx refuses the configuration:\n{message}",
                             hint="nothing nginx serves was changed; fix hub.yaml (or the "
                             "file nginx names) and run apply again")
    if must_include and f"# configuration file {must_include}:" not in done.stdout:
        raise HubkeeperError(
            f"{main_config} does not include {must_include}",
            hint=f"add `include {Path(must_include).parent}/*.conf;` to its http block, or "
            "set nginx.conf_dir to a directory it includes")


def pid_file(main_config: str) -> Path | None:
    """The pid file nginx of this configuration writes: its `pid` directive, else the
    compiled-in default."""
    try:
        text = Path(main_config).read_text()
    except OSError:
        text = ""
    match = re.search(r"^\s*pid\s+([^;\s]+)\s*;", text, re.MULTILINE)
    if match and match.group(1).startswith("/"):
        return Path(match.group(1))
    done = _run([_nginx(), "-V"])
    match = re.search(r"--pid-path=(\S+)", done.stderr + done.stdout)
    return Path(match.group(1)) if match else None


def running_pid(main_config: str) -> int | None:
    """The master's pid when nginx of this configuration runs, else None."""
    path = pid_file(main_config)
    pid = procs.pid_in_file(path) if path else None
    if pid is None or pid <= 0 or not procs.exists(pid):
        return None
    command = procs.cmdline(pid)
    return pid if command and "nginx" in command[0] else None


def _systemd_manages_nginx(main_config: str) -> bool:
    return (Path("/run/systemd/system").is_dir() and main_config == "/etc/nginx/nginx.conf"
            and shutil.which("systemctl") is not None)


def reload_or_start(main_config: str) -> str:
    """Reload nginx of this configuration, or start it when it is not running. Returns
    what was done ("reload" or "start")."""
    master = running_pid(main_config)
    if master:
        before = _workers(master)
        done = _run([_nginx(), "-s", "reload", "-c", main_config])
        verb = "reload"
        if done.returncode == 0:
            _wait_new_workers(master, before)
    elif _systemd_manages_nginx(main_config):  # its own unit, so systemd knows it runs
        done = _run(["systemctl", "start", "nginx.service"])
        verb = "start"
    else:
        done = _run([_nginx(), "-c", main_config])
        verb = "start"
    if done.returncode != 0:
        raise HubkeeperError(f"nginx did not {verb}: {done.stderr.strip()}",
                             hint="see nginx's error log")
    log.info("nginx (%s): %s", main_config, verb)
    return verb


def _workers(master: int) -> set[int]:
    """The pids of the master's children (its workers and cache processes)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == master:
            children.add(int(entry.name))
    return children


def _accepting(workers: set[int]) -> set[int]:
    """Those of the old workers that may still accept a connection: alive and not yet told to
    stop (a worker told to stop retitles itself "... is shutting down" and closes its
    listening sockets; until then it shares them with the new workers)."""
    left = set()
    for pid in workers:
        command = procs.cmdline(pid)
        if command and "shutting down" not in " ".join(command):
            left.add(pid)
    return left


def _wait_new_workers(master: int, before: set[int], deadline: float = LIVE_DEADLINE) -> None:
    """`nginx -s reload` only signals the master; new workers are the sign that it has loaded
    the new configuration, and old workers shutting down the sign that no connection gets
    the old one any more. Not within the deadline: it kept the old one (e.g. a port held
    by another program), and says why in its error log."""
    for _ in _deadline_loop(deadline):
        if _workers(master) - before and not _accepting(before):
            return
    raise HubkeeperError(f"nginx (pid {master}) did not load the new configuration within "
                         f"{deadline:.0f} s", hint="see nginx's error log (a port another "
                         "program holds?)")


def stop(main_config: str) -> None:
    """Stop nginx of this configuration (`nginx -s quit`), if it runs."""
    if running_pid(main_config):
        _run([_nginx(), "-s", "quit", "-c", main_config])


def _deadline_loop(deadline: float):
    end = time.monotonic() + deadline
    delay = 0.05
    while True:
        yield
        if time.monotonic() >= end:
            return
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def served_certificate(port: int, host: str) -> str | None:
    """SHA-256 of the certificate nginx on 127.0.0.1:port presents for host (SNI), or None.
    Not a trust check: only which certificate is being served."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return hashlib.sha256(der).hexdigest() if der else None


def redirect_of(port: int, host: str) -> str | None:
    """The Location nginx on 127.0.0.1:port answers for http://host/ with, or None."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        return response.getheader("Location") if response.status == 301 else None
    except OSError:
        return None
    finally:
        connection.close()


def wait_served(*, http_port: int, host: str, redirect: str, https_port: int | None,
                certificate_sha256: str | None, deadline: float = LIVE_DEADLINE) -> None:
    """Wait until nginx serves the new site: the redirect on http_port and, with https_port,
    the expected certificate. A reload nginx could not apply (a port held by another program)
    shows here: `nginx -s reload` only sends a signal."""
    for _ in _deadline_loop(deadline):
        http_ok = redirect_of(http_port, host) == redirect
        served = served_certificate(https_port, host) if https_port else None
        https_ok = https_port is None or (served is not None and certificate_sha256 in (
            None, served))
        if http_ok and https_ok:
            return
    what = f"port {http_port}" + (f" and {https_port}" if https_port else "")
    raise HubkeeperError(
        f"nginx does not serve the new site for {host} on {what} within {deadline:.0f} s",
        hint="another program may hold the port, or nginx kept its old configuration: see "
        "nginx's error log")
