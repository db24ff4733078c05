"""proc/kernelfork.py (servers.warm_kernels): which kernels are forked, how parents are
shared, a parent that refuses to fork with threads, and the provisioner registered by path
in a server whose python cannot import hubkeeper. The whole path, with a real server and
kernels, is tests/component/test_warm_kernels.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubkeeper.context.runtime import SINGLEUSER
from hubkeeper.proc import kernelfork
from hubkeeper.proc.kernelfork import (
    ForkRefused,
    ParentRefused,
    WarmParent,
    WarmParents,
    fork_plan,
    parent_key,
)


def test_only_ipykernels_launcher_is_forked() -> None:
    python = "/srv/envs/base/current/bin/python"
    assert fork_plan([python, "-m", "ipykernel_launcher", "-f", "/run/k.json"]) == (
        python, "/run/k.json", [])
    assert fork_plan([python, "-m", "ipykernel_launcher", "-f", "/run/k.json",
                      "--matplotlib=inline"]) == (python, "/run/k.json", ["--matplotlib=inline"])
    # another kernel, or ipykernel started another way, starts the normal way
    assert fork_plan(["R", "--slave", "-e", "IRkernel::main()", "--args", "/run/k.json"]) is None
    assert fork_plan([python, "-m", "ipykernel", "-f", "/run/k.json"]) is None
    assert fork_plan([python, "-X", "dev", "-m", "ipykernel_launcher", "-f", "k.json"]) is None
    assert fork_plan([python, "-m", "ipykernel_launcher"]) is None


def test_kernels_share_a_parent_by_python_and_kernelspec_environment() -> None:
    assert parent_key("/py", {"A": "1", "B": "2"}) == parent_key("/py", {"B": "2", "A": "1"})
    assert parent_key("/py", {}) != parent_key("/other/py", {})
    # PYTHONPATH decides what the parent imported
    assert parent_key("/py", {}) != parent_key("/py", {"PYTHONPATH": "/home/ada/lib"})


def test_a_parent_with_a_thread_refuses_to_fork(tmp_path: Path) -> None:
    """A fork copies only the calling thread; a python that starts one at start-up (here a
    sitecustomize) gets no warm parent, and the provisioner starts its kernels normally."""
    (tmp_path / "sitecustomize.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True, name='mine').start()\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with pytest.raises(ForkRefused, match=r"refused: 2 threads after importing ipykernel "
                                          r"\(MainThread, mine\)"):
        WarmParent(sys.executable, env)
    # through the server's set of parents: refused once, not asked again
    parents = WarmParents()
    spec_env = {"PYTHONPATH": str(tmp_path)}
    for _ in range(2):
        with pytest.raises(ForkRefused, match="threads after importing"):
            parents.fork(sys.executable, spec_env, "k.json", {}, str(tmp_path), [])
    assert list(parents.refused) == [parent_key(sys.executable, spec_env)]
    assert parents.parents == {}


def test_a_parent_that_cannot_start_is_a_refusal(tmp_path: Path) -> None:
    with pytest.raises(ForkRefused, match="cannot start"):
        WarmParent(str(tmp_path / "no-python"), dict(os.environ))
    # a python that exits at once (as one without ipykernel would) refuses for good
    with pytest.raises(ParentRefused, match="exited with 1 before it was ready"):
        WarmParent("/bin/false", dict(os.environ))


def test_a_warm_parent_is_ready_and_ends_with_its_server() -> None:
    parent = WarmParent(sys.executable, dict(os.environ))
    try:
        assert parent.alive()
        cmdline = Path(f"/proc/{parent.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-P", str(kernelfork.PARENT_SCRIPT).encode()]
        assert len(os.listdir(f"/proc/{parent.pid}/task")) == 1  # no thread to fork with
    finally:
        parent.close()  # the server's end closed: the parent exits by itself
    assert parent.process.returncode == 0


def test_the_provisioner_is_registered_by_path_where_hubkeeper_cannot_be_imported() -> None:
    """An environment's python has no hubkeeper: singleuser.py loads kernelfork.py from
    beside itself and makes it the default provisioner."""
    probe = (
        "import importlib.util, sys\n"
        "sys.modules['hubkeeper'] = None  # as in an environment's python\n"
        f"spec = importlib.util.spec_from_file_location('su', {SINGLEUSER!r})\n"
        "su = importlib.util.module_from_spec(spec); spec.loader.exec_module(su)\n"
        "su.use_forked_kernels()\n"
        "from jupyter_client.provisioning.factory import KernelProvisionerFactory as F\n"
        "cls = F.instance().provisioners['hubkeeper-forked'].load()\n"
        "print(cls.__name__, sys.modules[cls.__module__].__file__, sys.argv[-1])\n")
    done = subprocess.run([sys.executable, "-P", "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    name, path, option = done.stdout.split()
    assert name == "ForkedProvisioner"
    assert Path(path) == Path(SINGLEUSER).with_name("kernelfork.py")
    assert option == "--KernelProvisionerFactory.default_provisioner_name=hubkeeper-forked"
