"""Find the real processes behind a hub by reading /proc (no mocks: what runs, runs)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def server_pids(api_port: int) -> dict[int, str]:
    """pid -> hub user name, for single-user servers that call home to this hub's API port.

    Only the server process itself (jupyterhub-singleuser, or hubkeeper's start script
    proc/singleuser.py), not the kernels it starts.
    """
    found = {}
    needle = f"127.0.0.1:{api_port}/"
    for pid in _pids():
        env = _environ(pid)
        if needle not in env.get("JUPYTERHUB_API_URL", ""):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in cmdline for mark in (b"jupyterhub-singleuser", b"jupyterhub.singleuser",
                                            b"hubkeeper/proc/singleuser.py")):
            found[pid] = env.get("JUPYTERHUB_USER", "?")
    return found


def proxy_pids(api_port: int) -> list[int]:
    """configurable-http-proxy processes (Python or Node) serving this API port."""
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(cmdline)
        proxy = b"configurable-http-proxy" in text or b"hubkeeper.proc.proxy" in text
        if proxy and str(api_port).encode() in text:
            found.append(pid)
    return found


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def ppid_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def children_running(ppid: int, mark: bytes) -> list[int]:
    """The children of `ppid` whose command line holds `mark`."""
    found = []
    for pid in _pids():
        try:
            if mark in Path(f"/proc/{pid}/cmdline").read_bytes() and ppid_of(pid) == ppid:
                found.append(pid)
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int] | set[int], deadline: float = 15.0) -> list[int]:
    """Wait until none of `pids` runs; return the ones still running at the deadline."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def running_under(directories: list[Path]) -> dict[int, str]:
    """pid -> command line, for processes whose working directory or any argument lies in
    one of `directories` (a test's workdir): what a test left running. Not this process
    nor its ancestors."""
    roots = [str(directory) for directory in directories]
    mine = set()
    pid = os.getpid()
    while pid > 1:  # this pytest and whatever started it
        mine.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break

    def inside(text: str) -> bool:
        return any(text == root or text.startswith(root + "/") for root in roots)

    found = {}
    for pid in _pids():
        if pid in mine:
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        args = [arg.split("=", 1)[-1] for arg in argv.split("\0") if arg]
        if inside(cwd) or any(inside(arg) for arg in args):
            found[pid] = " ".join(args)[:200]
    return found
