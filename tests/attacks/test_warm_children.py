"""servers.warm: a student's code runs in a child of the warm parent, a root process that
forks every student's server. From her own kernel (a descendant of that child, as any
notebook's code is) ann tries to reach bob's server and the parent's privileges: signal
bob's server (kill and pidfd), ptrace it and the parent, read its memory and environment,
connect to the parent's socket, get root back (setuid, setresuid, a setuid-root program),
find bob's token in the memory her own server inherited from the parent.
Everything fails.

A real system-mode hub (PAM, real accounts), real servers forked from the real parent.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCOUNT_PREFIX
from tests.support.hubproc import apply_accounts, write_config
from tests.support.procs import ppid_of
from tests.support.simuser import SimUser

pytestmark = [pytest.mark.attack, pytest.mark.root]

PASSWORD = "Correct-Horse-7"
ANN, BOB = f"{TEST_ACCOUNT_PREFIX}1", f"{TEST_ACCOUNT_PREFIX}2"

# Run in ann's kernel with (bob's server, the warm parent, the parent's socket, a setuid-root
# copy of `id`); every attempt's outcome: "done" (it worked) or the errno it failed with.
ATTACKS = """
import ctypes, errno, json, os, signal, socket, subprocess
BOB, PARENT, SOCK, SUID, BOB_TOKEN = {args}
libc = ctypes.CDLL(None, use_errno=True)
tried = {{}}

def attempt(name, action):
    try:
        action()
        tried[name] = "done"
    except OSError as exc:
        tried[name] = errno.errorcode.get(exc.errno, str(exc.errno))

def ptrace(pid):
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace")
    libc.ptrace(17, pid, None, None)  # detach if it ever worked

def read(path):
    with open(path, "rb") as file:
        file.read(64)

def by_pidfd():
    signal.pidfd_send_signal(os.pidfd_open(BOB), signal.SIGTERM)

def connect():
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(SOCK)

attempt("kill bob", lambda: os.kill(BOB, signal.SIGTERM))
attempt("kill parent", lambda: os.kill(PARENT, signal.SIGTERM))
attempt("pidfd bob", by_pidfd)
attempt("ptrace bob", lambda: ptrace(BOB))
attempt("ptrace parent", lambda: ptrace(PARENT))
attempt("mem bob", lambda: read(f"/proc/{{BOB}}/mem"))
attempt("environ bob", lambda: read(f"/proc/{{BOB}}/environ"))
attempt("mem parent", lambda: read(f"/proc/{{PARENT}}/mem"))
attempt("socket", connect)
attempt("setuid", lambda: os.setuid(0))
attempt("setresuid", lambda: os.setresuid(0, 0, 0))
attempt("setgroups", lambda: os.setgroups([0]))
tried["suid id"] = subprocess.run([SUID], capture_output=True, text=True).stdout.strip()
tried["ids"] = [os.getresuid(), os.getresgid()]

def memory_holds(pid, needle):
    with open(f"/proc/{{pid}}/maps") as maps, open(f"/proc/{{pid}}/mem", "rb", 0) as mem:
        for line in maps:
            where, perms = line.split()[:2]
            start, end = (int(x, 16) for x in where.split("-"))
            if "r" not in perms or end - start > 1 << 28:
                continue
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except OSError:
                continue
    return False

# her own server is hers to read (as today); it was forked after bob's, from the same parent
tried["my token in my server"] = memory_holds(
    os.getppid(), os.environ["JUPYTERHUB_API_TOKEN"].encode())
tried["bob's token in my server"] = memory_holds(os.getppid(), BOB_TOKEN[::-1].encode())
json.dumps(tried)
"""


async def in_kernel(url: str, name: str, code: str) -> str:
    async with SimUser(url, name, PASSWORD) as user:
        await user.login()
        await user.start_server()
        await user.open_server()
        return ast.literal_eval(await user.run_code(code))


def test_a_warm_child_cannot_reach_another_child_or_the_parent(workdir: Path, hubs,
                                                                 clean_accounts) -> None:
    config = write_config(workdir, name=f"{TEST_ACCOUNT_PREFIX}wattk", mode="system",
                          auth="pam", admins=(), allowed=(ANN, BOB),
                          extra="servers: {warm: true}\n")
    apply_accounts(config, PASSWORD, (ANN, BOB))
    # a setuid-root program the students may run: it says euid=0 when setuid works
    suid = workdir / "suid-id"
    shutil.copy("/usr/bin/id", suid)
    os.chmod(suid, 0o4755)
    ann = pwd.getpwnam(ANN)
    control = subprocess.run(["setpriv", f"--reuid={ann.pw_uid}", f"--regid={ann.pw_gid}",
                              "--clear-groups", str(suid)], capture_output=True, text=True)
    assert "euid=0" in control.stdout, control  # without no_new_privs it does give root
    hub = hubs.start(config)
    try:
        hub.wait_logged(": ready at ", deadline=60)
        bob_server, bob_token = json.loads(asyncio.run(in_kernel(
            hub.url, BOB, "import os, json; json.dumps([os.getppid(), "
            "os.environ['JUPYTERHUB_API_TOKEN']])")))
        parent = ppid_of(bob_server)
        assert b"warmparent.py" in Path(f"/proc/{parent}/cmdline").read_bytes()
        (socket_path,) = (hub.state / "run" / "warm").glob("*.sock")
        # reversed: the code itself passes through ann's server, the token must not
        args = repr((bob_server, parent, str(socket_path), str(suid), bob_token[::-1]))
        tried = json.loads(asyncio.run(in_kernel(hub.url, ANN, ATTACKS.format(args=args))))
        assert "forking from the warm parent" in hub.log()
        assert tried.pop("ids") == [[ann.pw_uid] * 3, [ann.pw_gid] * 3]
        # the parent never read bob's request: nothing of it is in what ann's server inherited
        assert tried.pop("my token in my server") is True  # the search finds a token
        assert tried.pop("bob's token in my server") is False
        suid_output = tried.pop("suid id")
        assert "euid=0" not in suid_output and f"uid={ann.pw_uid}" in suid_output
        assert tried == {
            "kill bob": "EPERM", "kill parent": "EPERM", "pidfd bob": "EPERM",
            "ptrace bob": "EPERM", "ptrace parent": "EPERM",
            "mem bob": "EACCES", "environ bob": "EACCES", "mem parent": "EACCES",
            "socket": "EACCES", "setuid": "EPERM", "setresuid": "EPERM",
            "setgroups": "EPERM"}, tried
        assert Path(f"/proc/{bob_server}").exists() and Path(f"/proc/{parent}").exists()
    finally:
        hub.stop()
        suid.unlink(missing_ok=True)
