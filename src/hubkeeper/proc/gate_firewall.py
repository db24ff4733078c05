"""Only the login gate may open connections to the service behind it.

The gate names the user in a header (`user_header`), and a service that takes the user from
that header (Posit Workbench's proxied authentication, a dashboard, ...) believes whoever
sends it. Sitting on loopback proves nothing: every account on the machine (every student
with a terminal) can connect to 127.0.0.1:<port> and send `X-RStudio-Username: instructor`.
So while the gate runs, the kernel refuses every connection to the service's port made by
another account than the gate's own:

    iptables  -I OUTPUT 1 -o lo -p tcp --dport <port> -m owner ! --uid-owner <gate's uid>
              -m comment --comment "hubkeeper gate <name>" -j REJECT --reject-with tcp-reset
    ip6tables (the same, for ::1 and a service listening on [::])

All local traffic, to 127.0.0.1 or to the machine's own other addresses, leaves through `lo`,
and the owner match sees the uid of the socket that connects. The rule goes in before the
service is started and comes out after it stopped; a gate killed outright leaves it in place
(closed, not open), and the next gate finds it there rather than adding a second.

This needs root (CAP_NET_ADMIN): in system mode the gate runs as root and refuses to run
without the rule. In personal mode every hub user's server runs as the hub's own account,
so no rule could tell them apart: the gate says so in the log and runs without one.
"""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("hubkeeper.gate")

XTABLES_WAIT = "5"  # seconds to wait for the xtables lock (another program changing rules)
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class FirewallError(Exception):
    pass


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


def ipv6_loopback() -> bool:
    """Whether ::1 exists here (without it, ip6tables has nothing to guard)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class PortGuard:
    """The rule that keeps every account but `uid` off the service's port on this machine."""

    name: str
    port: int
    uid: int

    @classmethod
    def for_upstream(cls, name: str, upstream: str, uid: int) -> PortGuard:
        return cls(name, urlsplit(upstream).port or 80, uid)

    def rule(self) -> list[str]:
        return ["-o", "lo", "-p", "tcp", "--dport", str(self.port),
                "-m", "owner", "!", "--uid-owner", str(self.uid),
                "-m", "comment", "--comment", f"hubkeeper gate {self.name}",
                "-j", "REJECT", "--reject-with", "tcp-reset"]

    def tools(self) -> list[str]:
        return ["iptables", "ip6tables"] if ipv6_loopback() else ["iptables"]

    def close(self, run: Runner = _run) -> None:
        """Put the rule in (once per tool); FirewallError when it cannot be."""
        for tool in self.tools():
            if run([tool, "-w", XTABLES_WAIT, "-C", "OUTPUT", *self.rule()]).returncode == 0:
                continue  # left by a gate that was killed: still in force
            # First in the chain: an ACCEPT someone put earlier must not let students by.
            done = run([tool, "-w", XTABLES_WAIT, "-I", "OUTPUT", "1", *self.rule()])
            if done.returncode != 0:
                raise FirewallError(
                    f"{tool} could not close port {self.port} to other accounts than uid "
                    f"{self.uid}: {(done.stderr or done.stdout).strip() or done.returncode}")
        log.info("%s: port %d of this machine is open to uid %d only (%s)", self.name,
                 self.port, self.uid, ", ".join(self.tools()))

    def open(self, run: Runner = _run) -> None:
        """Take the rule out again, every copy of it (-D fails once none is left)."""
        for tool in self.tools():
            for _ in range(10):  # a bounded loop: copies left by killed gates
                if run([tool, "-w", XTABLES_WAIT, "-D", "OUTPUT", *self.rule()]).returncode:
                    break
