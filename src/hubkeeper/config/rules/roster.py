"""Rules of hub.yaml against its roster: every group hub.yaml names is a group of the roster
(or one the identity provider fills at login). The roster is passed as its group names, so
that config needs nothing of the roster package."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from hubkeeper.base.errors import Problem
from hubkeeper.config.access import provider_groups
from hubkeeper.config.loader import LoadedSpec
from hubkeeper.config.rules.cluster import kubernetes_problems


def not_a_group(loaded: LoadedSpec, where: Sequence[str | int], name: str,
                groups: Collection[str]) -> Problem:
    """The one wording of a group hub.yaml names that the roster does not have."""
    known = ", ".join(sorted(groups)) or "none"
    return loaded.problem(where, f"{name!r} is not a roster group (roster groups: {known})")


def environment_group_problems(loaded: LoadedSpec, groups: Collection[str]) -> list[Problem]:
    """environments[].groups are roster groups (teams do not count: the choice is made from
    the roster before a first login)."""
    return [not_a_group(loaded, ("environments", name, "groups", index), group, groups)
            for name, env in loaded.spec.environments.items()
            for index, group in enumerate(env.groups) if group not in groups]


def group_reference_problems(loaded: LoadedSpec, groups: Collection[str]) -> list[Problem]:
    """limits.groups, servers.groups, services[].groups, schedule[].group and slurm.groups
    name roster groups, or groups the identity provider's groups fill at login (a typo would
    silently give its members the hub-wide limits, or lock everyone out of a service)."""
    spec = loaded.spec
    known = set(groups) | set(provider_groups(spec.auth)[0].values())
    named: list[tuple[tuple[str | int, ...], str]] = [
        (("limits", "groups", name), name) for name in spec.limits.groups]
    named += [(("servers", "groups", name), name) for name in spec.servers.groups]
    named += [(("services", index, "groups", position), group)
              for index, service in enumerate(spec.services)
              for position, group in enumerate(service.groups)]
    named += [(("schedule", index, "group"), window.group)
              for index, window in enumerate(spec.schedule)]
    if spec.backend == "slurm":
        named += [(("slurm", "groups", name), name) for name in spec.slurm.groups]
    return [not_a_group(loaded, where, name, known) for where, name in named
            if name not in known]


def roster_problems(loaded: LoadedSpec, groups: Collection[str]) -> list[Problem]:
    """Every rule of hub.yaml against its roster's groups."""
    return (environment_group_problems(loaded, groups)
            + group_reference_problems(loaded, groups))


def group_folder_problems(loaded: LoadedSpec, groups: Collection[str]) -> list[Problem]:
    """data.group_folders[].group is a roster group (`apply` refuses it too, when it plans the
    folders)."""
    return [not_a_group(loaded, ("data", "group_folders", index, "group"), folder.group, groups)
            for index, folder in enumerate(loaded.spec.data.group_folders)
            if folder.group not in groups]


def cluster_rule_problems(loaded: LoadedSpec, groups: Collection[str]) -> list[Problem]:
    """Backend kubernetes (and `export z2jh`): what the cluster cannot take, and the groups
    hub.yaml names, group folders included, that are not roster groups."""
    problems = [loaded.problem(where, message)
                for where, message in kubernetes_problems(loaded.spec)]
    return problems + roster_problems(loaded, groups) + group_folder_problems(loaded, groups)
