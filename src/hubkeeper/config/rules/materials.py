"""Rules of `materials:` that span fields: the environments a material names exist, and no
two materials are pulled into one folder."""

from __future__ import annotations

from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules import Found


def materials_problems(spec: HubSpec) -> Found:
    problems: Found = []
    known = list(spec.environments)
    # (environment or "" for the home, target) -> the first material pulled there
    places: dict[tuple[str, str], int] = {}
    for index, material in enumerate(spec.materials):
        for position, name in enumerate(material.environments):
            if name not in spec.environments:
                valid = (f"environments of this hub: {', '.join(known)}" if known
                         else "this hub has no environments, so leave environments out "
                         "(the material goes into each home)")
                problems.append((("materials", index, "environments", position),
                                 f"there is no environment {name!r}; {valid}"))
        for where in material.environments or known or [""]:
            first = places.setdefault((where, material.target), index)
            if first != index:
                folder = f"~/{where}/{material.target}" if where else f"~/{material.target}"
                problems.append((("materials", index, "target"),
                                 f"{folder} already receives materials[{first}] "
                                 f"({spec.materials[first].repo}); give this one another "
                                 "target"))
                break
    return problems
