"""The pure parts of host/cgroups.py: a user's limits, and the systemd scope call."""

from __future__ import annotations

from hubkeeper.host.cgroups import Limits, merged, scope_command


def test_a_group_replaces_the_hub_wide_value_and_the_largest_group_wins() -> None:
    hub = Limits(memory=2 << 30, cpu=1.0)
    assert merged(hub, []) == hub
    assert merged(hub, [Limits(memory=4 << 30)]) == Limits(4 << 30, 1.0)
    assert merged(hub, [Limits(cpu=0.5), Limits(cpu=2.0)]) == Limits(2 << 30, 2.0)
    # A group may also lower the hub-wide value: it replaces, it does not add.
    assert merged(hub, [Limits(memory=1 << 30)]) == Limits(1 << 30, 1.0)
    assert not Limits()


def test_systemd_scope_call_names_the_pid_and_the_limits() -> None:
    """systemd does not run as PID 1 on the machines this suite runs on, so the call is
    checked as a command line; the cgroup paths are tested for real in
    tests/component/test_culling_limits.py."""
    command = scope_command("hubkeeper-course-ann.scope", 4242, Limits(2 << 30, 1.5))
    assert command[:6] == ["busctl", "call", "org.freedesktop.systemd1",
                           "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                           "StartTransientUnit"]
    assert command[6:] == ["ssa(sv)a(sa(sv))", "hubkeeper-course-ann.scope", "fail", "3",
                           "PIDs", "au", "1", "4242", "MemoryMax", "t", str(2 << 30),
                           "CPUQuotaPerSecUSec", "t", "1500000", "0"]
    assert scope_command("u.scope", 1, Limits(cpu=1.0))[9] == "2"
