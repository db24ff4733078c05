"""Rules of auth.github that span fields: admin teams inside the organisations that may log
in. Run by config/rules/spec.py when auth.kind is github."""

from __future__ import annotations

from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules import Found


def _admitted(team: str, organizations: list[str]) -> bool:
    """Whether members of 'org:team' may log in through `organizations` (GitHub names are
    case-insensitive): the team itself or its whole organisation is listed."""
    org = team.partition(":")[0].lower()
    listed = {entry.lower() for entry in organizations}
    return team.lower() in listed or org in listed


def github_problems(spec: HubSpec) -> Found:
    """auth.github's rules across fields, each at the field to change."""
    problems: Found = []
    github = spec.auth.github
    seen: dict[str, int] = {}
    for index, team in enumerate(github.admin_teams):
        key = team.lower()
        if key in seen:
            problems.append((("auth", "github", "admin_teams", index),
                             f"{team!r} is listed twice (first at item {seen[key] + 1})"))
            continue
        seen[key] = index
        if not _admitted(team, github.organizations):
            org = team.partition(":")[0]
            problems.append(
                (("auth", "github", "admin_teams", index),
                 f"{team!r} is neither in auth.github.organizations nor a team of an "
                 f"organisation listed there, so its members could not log in to be admins; "
                 f"add {team!r} (or {org!r}) to organizations, or remove it here"))
    return problems
