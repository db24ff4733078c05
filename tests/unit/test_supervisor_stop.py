"""A hub killed at the stop deadline leaves its proxy behind; a requested stop ends it too
(host/supervisor.py `stop_orphaned_proxy`). Real processes stand in for the proxy."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hubkeeper.host.supervisor import stop_orphaned_proxy

# A process whose command line reads like hubkeeper's proxy serving API port 59309.
STAND_IN = "import time; time.sleep(60)"


def _start(*args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", STAND_IN, *args])
    # Until it has exec'd, the child's command line is still pytest's.
    end = time.monotonic() + 10
    while args[0].encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
        assert time.monotonic() < end, "the stand-in did not start"
        time.sleep(0.01)
    return proc


def test_the_orphaned_proxy_of_this_hub_is_stopped(tmp_path: Path) -> None:
    proxy = _start("hubkeeper.proc.proxy", "--api-port", "59309")
    pid_file = tmp_path / "proxy.pid"
    pid_file.write_text(f"{proxy.pid}\n")
    try:
        assert stop_orphaned_proxy(pid_file, 59309) == proxy.pid
        assert proxy.wait(timeout=10) is not None
    finally:
        proxy.kill()


def test_another_process_under_the_pid_is_left_alone(tmp_path: Path) -> None:
    other_port = _start("hubkeeper.proc.proxy", "--api-port", "12345")  # another hub's
    stranger = _start("something-else", "59309")  # the pid was reused
    try:
        for proc in (other_port, stranger):
            (tmp_path / "proxy.pid").write_text(f"{proc.pid}\n")
            assert stop_orphaned_proxy(tmp_path / "proxy.pid", 59309) is None
            assert proc.poll() is None
        assert stop_orphaned_proxy(tmp_path / "missing.pid", 59309) is None
    finally:
        for proc in (other_port, stranger):
            proc.kill()
            proc.wait()
