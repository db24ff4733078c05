"""servers.warm: the field and its rule, what it renders, the warm parent's request checks,
and the spawner's handle on a server it did not start (a pidfd of a real process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from hubkeeper.hub.warm import WarmProcess, reopen, start_time
from hubkeeper.proc.warmparent import Refused, checked_fork_request
from tests.unit.test_render import COURSE, rendered
from tests.unit.test_schema import problems_of


def test_warm_renders_the_parents_folder_and_script() -> None:
    c = rendered(COURSE + "servers: {warm: true}\n")
    assert c.LocalSpawner.warm is True
    assert c.LocalSpawner.warm_folder == "/var/lib/hubkeeper/course/run/warm"
    assert c.LocalSpawner.warm_script.endswith("/hubkeeper/proc/warmparent.py")
    assert "warm" not in rendered(COURSE).LocalSpawner  # off by default


@pytest.mark.parametrize("body, expected", [
    ("backend: slurm\nauth: {kind: pam}\nusers: {allowed: [a]}\nservers: {warm: true}\n",
     "hub.yaml:4:17: servers.warm: only used with backend: local, not 'slurm' (servers "
     "forked from a warm parent on this machine); remove it, or set backend: local"),
    ("backend: docker\nhub: {mode: system}\nauth: {kind: pam}\nusers: {allowed: [a]}\n"
     "environments: {py: {image: 'a:1'}}\nservers:\n  warm: true\n",
     "hub.yaml:7:9: servers.warm: only used with backend: local, not 'docker' (servers "
     "forked from a warm parent on this machine); remove it, or set backend: local"),
    ("users: {allowed: [a]}\nservers: {warm: sometimes}\n",
     "hub.yaml:2:17: servers.warm: input should be a valid boolean"),
])
def test_warm_is_refused_where_it_cannot_run(body: str, expected: str) -> None:
    problems = problems_of(body)
    assert any(problem.startswith(expected) for problem in problems), problems


REQUEST = {"uid": os.geteuid(), "gid": os.getegid(), "groups": [], "cwd": "/tmp",
           "env": {"JUPYTERHUB_USER": "ann"}, "argv": ["singleuser.py"], "cgroup_procs": [],
           "as_root": os.geteuid() == 0}


@pytest.mark.parametrize("change, why", [
    ({"uid": -1}, "uid and gid must be a list of ids"),
    ({"gid": True}, "uid and gid must be a list of ids"),
    ({"groups": "0"}, "groups must be a list of ids"),
    ({"env": {"A=B": "x"}}, "env must map names to strings"),
    ({"env": {"A": 1}}, "env must map names to strings"),
    ({"argv": []}, "argv must be a list of strings"),
    ({"cwd": "home"}, "cwd must be an absolute path"),
    ({"cgroup_procs": ["/home/ann/cgroup.procs"]}, "cgroup_procs must be cgroup.procs"),
    ({"cgroup_procs": ["/sys/fs/cgroup/../../etc/cgroup.procs"]}, "cgroup_procs must be"),
    ({"env": {"JUPYTERHUB_SINGLEUSER_APP": "notebook"}}, "JUPYTERHUB_SINGLEUSER_APP is read"),
])
def test_the_parent_checks_each_field_of_a_fork(change: dict, why: str) -> None:
    with pytest.raises(Refused, match=why.replace("(", r"\(")):
        checked_fork_request({**REQUEST, **change})


def test_a_well_formed_fork_is_accepted() -> None:
    job = checked_fork_request(REQUEST)
    assert job["env"] == {"JUPYTERHUB_USER": "ann"} and job["procs"] == []


def test_root_is_refused_unless_asked_for() -> None:
    if os.geteuid() != 0:
        with pytest.raises(Refused, match="only root can start a server as another"):
            checked_fork_request({**REQUEST, "uid": os.geteuid() + 1})
        return
    with pytest.raises(Refused, match="a server as root only when asked for"):
        checked_fork_request({**REQUEST, "uid": 0, "as_root": False})


def test_a_server_is_polled_and_signalled_through_its_pidfd() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    process = WarmProcess(child.pid, os.pidfd_open(child.pid), "/nonexistent.sock")
    try:
        assert process.poll() is None
        assert process.send_signal(0) is True
        started = start_time(child.pid)
        assert started is not None
        again = reopen(child.pid, started, "")
        assert again is not None  # the same process: adopted after a hub restart
        again.close()
        assert reopen(child.pid, started + 1, "") is None  # another start time: not ours
        assert process.send_signal(signal.SIGTERM) is True
        child.wait(timeout=30)
        assert process.poll() == 0  # the parent cannot be asked here: 0, as JupyterHub does
        assert process.send_signal(signal.SIGTERM) is False  # gone: nobody else is signalled
    finally:
        child.kill()
        child.wait()
        with process:
            pass
    assert process.pidfd == -1
