"""servers.warm_kernels: a real hub and server whose IPython kernels are forked from a warm
parent (proc/kernelfork.py), driven over the kernels' websockets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.hubproc import write_config
from tests.support.procs import wait_gone
from tests.support.simuser import SimUser, SimUserError

pytestmark = pytest.mark.component

PARENT = "kernelfork_parent.py"
# (pid, parent's pid, uid, is the parent a warm parent, the parent's parent)
WHO = ("import os; (os.getpid(), os.getppid(), os.getuid(), "
       f"{PARENT!r} in open(f'/proc/{{os.getppid()}}/cmdline').read(), "
       "int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1]))")
SOCKETS = """
import os
def sockets():
    found = set()
    for fd in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:  # the listing's own descriptor
            continue
        if target.startswith('socket:'):
            found.add(target)
    return sorted(found)
sockets()
"""
# A user's own kernelspec whose python starts a thread at start-up (sitecustomize): a warm
# parent must not fork with it, so its kernels start the normal way.
THREADED_KERNEL = """
import json, os, sys
site = os.path.join(os.environ['HOME'], 'threaded-site')
os.makedirs(site, exist_ok=True)
open(os.path.join(site, 'sitecustomize.py'), 'w').write(
    'import threading, time\\n'
    'threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\\n')
folder = os.path.join(os.environ['HOME'], '.local/share/jupyter/kernels/threaded')
os.makedirs(folder, exist_ok=True)
json.dump({'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
           'display_name': 'threaded', 'language': 'python', 'env': {'PYTHONPATH': site}},
          open(os.path.join(folder, 'kernel.json'), 'w'))
'ok'
"""


def test_kernels_forked_from_a_warm_parent(workdir: Path, hubs) -> None:
    hub = hubs.start(write_config(workdir, extra="servers:\n  warm_kernels: true\n"))

    async def visit() -> list[int]:
        async with SimUser(hub.url, "student1", hub.password) as user:
            await user.login()
            await user.start_server()
            await user.open_server()
            first, second = await user.start_kernel(), await user.start_kernel()
            # each kernel is a fork of the same warm parent, not the server's child, and runs
            # as the server's account (personal mode: the account that runs the hub)
            one = eval(await user.execute(first, WHO))
            two = eval(await user.execute(second, WHO))
            server = eval(await user.execute(first, "import os; os.getuid()"))
            assert one[2] == two[2] == server
            assert one[3] and two[3], (one, two)
            assert one[1] == two[1] and one[0] != two[0]

            # state, random sequences and zmq contexts are each kernel's own
            assert await user.execute(first, "x = 1; x") == "1"
            with pytest.raises(SimUserError, match="name 'x' is not defined"):
                await user.execute(second, "x")
            draw = "import random; random.random()"
            assert await user.execute(first, draw) != await user.execute(second, draw)
            sockets = SOCKETS
            assert not set(eval(await user.execute(first, sockets))) & set(
                eval(await user.execute(second, sockets)))

            # an interrupt reaches the forked kernel; a restart forks a new one
            looping = hub.state / "users" / "student1" / "looping"  # the kernel's folder
            with pytest.raises(SimUserError, match="KeyboardInterrupt"):
                await user.execute(first, "open('looping', 'w').close()\nwhile True: pass",
                                   during=interrupt(user, first, looping))
            assert await user.execute(first, "x") == "1"
            await user.kernel_action(first, "restart")
            with pytest.raises(SimUserError, match="name 'x' is not defined"):
                await user.execute(first, "x")
            again = eval(await user.execute(first, WHO))
            assert again[0] != one[0] and again[1] == one[1] and again[3]

            # fallback: a kernel python that starts a thread is not forked; its kernel starts
            # the normal way, as the server's child, and the server logs why
            assert await user.execute(second, THREADED_KERNEL) == "'ok'"
            threaded = await user.start_kernel("threaded")
            normal = eval(await user.execute(threaded, WHO, kernel_name="threaded"))
            assert not normal[3] and normal[1] != one[1]
            assert one[4] == normal[1]  # the warm parent is the server's child
            for kernel in (first, second, threaded):
                await user.delete_kernel(kernel)
            await user.stop_server()
            return [one[1], two[0], again[0]]

    # the server stopped: its warm parent and kernels are gone with it
    assert wait_gone(asyncio.run(visit()), deadline=30) == []
    hub.wait_logged("started the normal way, not forked: the warm parent refused")
    assert "threads after importing ipykernel" in hub.log()


async def interrupt(user: SimUser, kernel: str, looping: Path) -> None:
    """Interrupt `kernel` once it has begun its loop (it made `looping` first)."""
    end = time.monotonic() + 30
    while not looping.exists() and time.monotonic() < end:
        await asyncio.sleep(0.05)
    assert looping.exists(), "the loop never began"
    await user.kernel_action(kernel, "interrupt")

