"""The pure parts of host/cgroups.py: a user's limits, and the systemd scope call."""

from __future__ import annotations

from hubkeeper.context.limits import Limits, merged
from hubkeeper.host.cgroups import scope_command


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


def test_the_process_limit_merges_like_the_others_and_reaches_the_scope() -> None:
    hub = Limits(pids=1024)
    assert hub  # the default process limit alone is a limit to enforce
    assert merged(hub, [Limits(pids=4096), Limits(memory=1 << 30)]) == Limits(1 << 30, None,
                                                                              4096)
    command = scope_command("u.scope", 7, Limits(pids=512))
    assert command[9] == "2" and command[-4:] == ["TasksMax", "t", "512", "0"]


def test_v1_and_v2_groups_write_pids_max(tmp_path) -> None:
    """The files UserGroup writes, on a fake cgroup tree (the kernel's is used for real by
    tests/component/test_culling_limits.py and tests/attacks/test_exhaustion.py)."""
    from hubkeeper.host.cgroups import Enforcer, UserGroup

    for controller in ("memory", "cpu", "pids"):
        (tmp_path / "v1" / controller).mkdir(parents=True)
    v1 = UserGroup(Enforcer("cgroup1", tmp_path / "v1"), "course", "ann")
    v1.prepare(Limits(pids=300))
    assert (tmp_path / "v1/pids/hubkeeper/course/ann/pids.max").read_text() == "300"
    assert (tmp_path / "v1/memory/hubkeeper/course/ann/memory.limit_in_bytes").read_text() \
        == "-1"
    without = UserGroup(Enforcer("cgroup1", tmp_path / "v1", pids=False), "course", "bo")
    assert len(without.directories) == 2
    assert "process limit is NOT enforced" in Enforcer("cgroup1", pids=False).describe()

    (tmp_path / "v2").mkdir()
    v2 = UserGroup(Enforcer("cgroup2", tmp_path / "v2"), "course", "ann")
    v2.prepare(Limits(memory=1 << 30))
    group = tmp_path / "v2/hubkeeper/course/ann"
    assert (group / "pids.max").read_text() == "max"  # 0 or None: no limit
    assert (tmp_path / "v2/hubkeeper/cgroup.subtree_control").read_text() \
        == "+memory +cpu +pids"


def test_a_bad_process_limit_is_refused_at_its_line() -> None:
    import pytest

    from hubkeeper.base.errors import InvalidInput
    from hubkeeper.config import parse

    base = "users: {allowed: [a], groups: {big: [a]}}\nlimits:\n"
    for body, expected in (
            ("  pids: 10\n", "hub.yaml:3:9: limits.pids: 10 is too few for a "
             "JupyterLab server"),
            ("  pids: -1\n", "hub.yaml:3:9: limits.pids: input should be greater than or "
             "equal to 0"),
            ("  groups: {big: {pids: 0}}\n", "hub.yaml:3:24: limits.groups.big.pids: input "
             "should be greater than or equal to 64")):
        with pytest.raises(InvalidInput) as caught:
            parse(base + body, "hub.yaml")
        assert str(caught.value.problems[0]).startswith(expected), caught.value.problems
    assert parse(base + "  pids: 0\n", "hub.yaml").limits.pids == 0  # off
