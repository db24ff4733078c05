"""config/rules: hub.yaml against its roster's groups (one wording wherever a group is
named), and what the first `apply` will create (host/preflight.to_make)."""

from __future__ import annotations

from pathlib import Path

from hubkeeper.config import load
from hubkeeper.config.rules.roster import group_folder_problems, roster_problems
from hubkeeper.host.accounts import Account, Group, HostUsers
from hubkeeper.host.preflight import to_make
from hubkeeper.roster import build_roster

HUB_YAML = """\
backend: slurm
auth: {kind: pam}
users:
  allowed: [ann, bob]
  groups: {lab: [ann]}
environments:
  py: {groups: [lab, envx]}
limits:
  groups: {limx: {memory: 1G}}
servers:
  groups: {srvx: {env: {A: b}}}
services:
  - {name: r, url: 'http://127.0.0.1:8787', hub_login: true, gate_port: 8788, groups: [svcx]}
schedule:
  - {group: schx, start: '09:00', end: '10:00'}
slurm:
  groups: {slx: {partition: debug}}
data:
  group_folders:
    - {path: /srv/projects/x, group: gfx}
"""


def test_every_group_hub_yaml_names_is_checked_against_the_roster(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(HUB_YAML)
    loaded = load(path)
    roster = build_roster(loaded)
    problems = roster_problems(loaded, roster.groups) + group_folder_problems(loaded,
                                                                              roster.groups)
    assert [(p.line, p.field) for p in problems] == [
        (7, "environments.py.groups[1]"), (9, "limits.groups.limx"),
        (11, "servers.groups.srvx"), (13, "services[0].groups[0]"), (15, "schedule[0].group"),
        (17, "slurm.groups.slx"), (20, "data.group_folders[0].group")]
    for problem, name in zip(problems, ("envx", "limx", "srvx", "svcx", "schx", "slx", "gfx"),
                             strict=True):
        assert problem.message == f"{name!r} is not a roster group (roster groups: lab)"
    assert roster_problems(loaded, ("lab", "envx", "limx", "srvx", "svcx", "schx",
                                    "slx")) == []


def test_what_the_first_apply_will_create(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("auth: {kind: pam}\nusers:\n  account_prefix: c-\n  allowed: [ann, bob]\n"
                    "  groups: {lab: [ann], tas: [bob]}\n")
    roster = build_roster(load(path))
    nobody = HostUsers(accounts={}, groups={}, uids=frozenset())
    making = to_make(roster, nobody)
    assert (making.accounts, making.groups) == (("c-ann", "c-bob"), ("c-lab", "c-tas"))
    assert str(making) == "apply will create 2 accounts, 2 groups"
    made = HostUsers(accounts={"c-ann": Account("c-ann", 1500, 1500, "/home/c-ann", False)},
                     groups={"c-lab": Group("c-lab", 1600, frozenset({"c-ann"}))},
                     uids=frozenset({1500}))
    assert str(to_make(roster, made)) == "apply will create 1 account, 1 group"
