"""Edit hub.yaml in place, keeping the operator's comments and order (ruamel round-trip).

The edited text is validated like any hub.yaml before it replaces the file (atomically, same
mode): an edit that would make the file invalid changes nothing.
"""

from __future__ import annotations

import io
import stat
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from hubkeeper.base.errors import InvalidInput
from hubkeeper.base.files import write_atomic
from hubkeeper.config.loader import SCHEMA_HINT, LoadedSpec, _parse


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def section(document: CommentedMap, *keys: str) -> CommentedMap:
    """The mapping at `keys`, created (as a block mapping) when missing."""
    node = document
    for key in keys:
        if node.get(key) is None:
            node[key] = CommentedMap()
        node = node[key]
    return node


def edit_config(path: Path, mutate: Callable[[CommentedMap], None],
                check: Callable[[LoadedSpec], None] | None = None,
                dry_run: bool = False) -> None:
    """Mutate, validate, write. `dry_run`: validate only (a verb that edits hub.yaml in the
    middle of its steps checks first that the edit will hold)."""
    yaml = _yaml()
    text = path.read_text(encoding="utf-8")
    document = yaml.load(text) or CommentedMap()
    mutate(document)
    out = io.StringIO()
    yaml.dump(document, out)
    new_text = out.getvalue()
    # Invalid, it raises InvalidInput and the file is untouched.
    spec, parsed, problems = _parse(new_text, str(path))
    if problems:
        raise InvalidInput(problems, hint=SCHEMA_HINT)
    if check is not None:
        check(LoadedSpec(spec, path.absolute(), parsed))
    if dry_run:
        return
    write_atomic(path, new_text.encode(), mode=stat.S_IMODE(path.stat().st_mode))
