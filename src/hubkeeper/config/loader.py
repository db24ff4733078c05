"""Load hub.yaml: parse with positions, validate completely, report every problem at its line."""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
)

from hubkeeper.base.errors import InvalidInput, Problem
from hubkeeper.base.whoami import effective_uid
from hubkeeper.config.model import HubSpec
from hubkeeper.config.rules.spec import spec_problems
from hubkeeper.config.types import PATTERN_WORDS

Loc = Sequence[str | int]

CONFIG_ENV = "HUBKEEPER_CONFIG"  # the hub.yaml a command or the hub process uses


@dataclass(frozen=True)
class LoadedSpec:
    """A validated hub.yaml and where it came from."""

    spec: HubSpec
    path: Path
    document: CommentedMap | None = None

    def problem(self, loc: Loc, message: str) -> Problem:
        """A Problem positioned at `loc` in this file (for checks made after loading)."""
        if self.document is None:
            return Problem(str(self.path), None, None, _field_name(loc), message)
        return _located(str(self.path), self.document, loc, message, key=False)

    @property
    def directory(self) -> Path:
        return self.path.parent


def default_config_path(is_root: bool | None = None) -> Path:
    """Where hub.yaml is when `--config` is not given."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    if is_root is None:
        is_root = effective_uid() == 0
    system = Path("/etc/hubkeeper/hub.yaml")
    if is_root and system.exists():
        return system
    return Path("hub.yaml")


def load(path: str | os.PathLike[str]) -> LoadedSpec:
    """Read and validate `path`. Raises InvalidInput naming every problem; changes nothing."""
    loaded, problems = load_for_check(path)
    if problems:
        raise InvalidInput(problems, hint=SCHEMA_HINT)
    return loaded


def load_for_check(path: str | os.PathLike[str]) -> tuple[LoadedSpec, list[Problem]]:
    """`load` that hands back the problems of rules spanning fields instead of raising them,
    so that `check` reports them with the problems of the roster, the mode and the machine.
    A file that cannot be read or is off the schema still raises: there is no model."""
    path = Path(path).absolute()
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(
            [Problem(shown, None, None, "", "no such file")],
            hint="create a starter file with `hubkeeper init`, or pass --config PATH",
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            [Problem(shown, None, None, "", f"not UTF-8 text (byte {exc.start})")]
        ) from None
    except OSError as exc:
        raise InvalidInput([Problem(shown, None, None, "", exc.strerror or str(exc))]) from None
    spec, document, problems = _parse(text, shown)
    return LoadedSpec(spec=spec, path=path, document=document), problems


def parse(text: str, filename: str = "hub.yaml") -> HubSpec:
    """Validate hub.yaml text. Pure: raises InvalidInput listing every problem with its line."""
    spec, _document, problems = _parse(text, filename)
    if problems:
        raise InvalidInput(problems, hint=SCHEMA_HINT)
    return spec


# hub.yaml's deepest field is five levels down; a document far deeper than that is not a
# hub.yaml, and would exhaust the recursion of the YAML composer and of validation.
MAX_DEPTH = 32
# Values after aliases are expanded: a few lines of anchors can stand for billions of values.
MAX_VALUES = 100_000


def _parse(text: str, filename: str) -> tuple[HubSpec, CommentedMap, list[Problem]]:
    """The model, its document, and the problems of the rules that span fields (sorted)."""
    yaml = YAML(typ="rt")
    try:
        _check_shape(yaml, text, filename)
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = " ".join(filter(None, [exc.context, exc.problem])) or "not valid YAML"
        raise InvalidInput(
            [Problem(filename, line, column, "", f"not valid YAML: {reason}")]
        ) from None
    except YAMLError as exc:  # e.g. the reader's "unacceptable character": no mark
        raise InvalidInput([_unmarked_problem(filename, text, exc)]) from None
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise InvalidInput(
            [Problem(filename, 1, 1, "", "hub.yaml must be a mapping of sections "
                     "(hub:, auth:, users:, ...)")]
        )
    plain = _plain(document)
    for key, field in HubSpec.model_fields.items():  # `auth:` with only comments: defaults
        if plain.get(key, ...) is None and isinstance(field.annotation, type) \
                and issubclass(field.annotation, BaseModel):
            plain[key] = {}
    try:
        spec = HubSpec.model_validate(plain)
    except ValidationError as exc:
        problems = [_problem(filename, document, error) for error in exc.errors()]
        raise InvalidInput(_sorted(problems), hint=SCHEMA_HINT) from None
    problems = spec_problems(
        spec, lambda loc, message: _located(filename, document, loc, message, key=False))
    return spec, document, _sorted(problems)


def _check_shape(yaml: YAML, text: str, filename: str) -> None:
    """Refuse, at its line, a document nested deeper than MAX_DEPTH or whose aliases expand
    to more than MAX_VALUES values, before anything recursive reads it. The YAML event stream
    is produced without recursion, so this pass is safe on any input."""
    counts: list[int] = [0]  # values inside each open collection, aliases expanded
    anchors: list[str | None] = []
    sizes: dict[str, int] = {}
    for event in yaml.parse(text):
        if isinstance(event, CollectionStartEvent):
            counts.append(0)
            anchors.append(event.anchor)
            if len(anchors) > MAX_DEPTH:
                raise InvalidInput([_event_problem(
                    filename, event, f"nested more than {MAX_DEPTH} levels deep; hub.yaml's "
                    "sections are at most a few levels deep")])
            continue
        if isinstance(event, CollectionEndEvent):
            size = counts.pop() + 1
            anchor = anchors.pop()
        elif isinstance(event, AliasEvent):
            size, anchor = sizes.get(event.anchor, 1), None
        elif isinstance(event, NodeEvent):  # a scalar
            size, anchor = 1, event.anchor
        else:
            continue
        if anchor:
            sizes[anchor] = size
        counts[-1] += size
        if counts[-1] > MAX_VALUES:
            raise InvalidInput([_event_problem(
                filename, event, f"with its aliases (*name) expanded, the document holds "
                f"more than {MAX_VALUES} values; write the values out instead")])


def _event_problem(filename: str, event: NodeEvent | CollectionEndEvent,
                   message: str) -> Problem:
    mark = event.start_mark
    return Problem(filename, mark.line + 1 if mark else None,
                   mark.column + 1 if mark else None, "", message)


def _unmarked_problem(filename: str, text: str, exc: YAMLError) -> Problem:
    """A YAML error without a mark (the reader's): its position turned into a line."""
    position = getattr(exc, "position", None)
    character = getattr(exc, "character", None)
    if isinstance(position, int):
        before = text[:position]
        line, column = before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1
    else:
        line = column = None
    if isinstance(character, int):
        what = (f"the control character U+{character:04X}" if character < 32 or
                0x7F <= character < 0xA0 else f"the character U+{character:04X}")
        message = f"not valid YAML: {what} is not allowed in YAML text; remove it"
    else:
        message = f"not valid YAML: {exc}"
    return Problem(filename, line, column, "", message)


SCHEMA_HINT = "see docs/reference.md for every field, or `hubkeeper init` for a commented example"


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers as plain dicts and lists (pydantic wants those)."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    return node


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0, p.field))


def _field_name(loc: Loc) -> str:
    name = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for an error in a mapping's key
            name += " (key)"
        elif isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name


def _position(document: CommentedMap, loc: Loc, key: bool) -> tuple[int | None, int | None]:
    """1-based (line, column) of the value at `loc` (or of its key), or of its nearest parent."""
    node: Any = document
    line, column = 1, 1
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            pos = node.lc.key(part) if (key and last) else node.lc.value(part)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            pos = node.lc.item(part)
            node = node[part]
        else:
            break
        line, column = pos[0] + 1, pos[1] + 1
    return line, column


def _located(
    filename: str, document: CommentedMap, loc: Loc, message: str, key: bool
) -> Problem:
    if loc and loc[-1] == "[key]":  # the error is in a mapping's key: point at the key
        line, column = _position(document, loc[:-1], key=True)
    else:
        line, column = _position(document, loc, key)
    return Problem(filename, line, column, _field_name(loc), message)


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at `loc`, to list its valid keys."""
    model: type[BaseModel] | None = HubSpec
    item: type[BaseModel] | None = None  # the model of a list's items (hooks.as_root[0])
    for part in loc:
        if isinstance(part, int):
            model, item = item, None
            continue
        if model is None:
            return None
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        model = _as_model(annotation)
        args = typing.get_args(annotation) if typing.get_origin(annotation) is list else ()
        item = _as_model(args[0]) if args else None
    return model


def _as_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(
        annotation, BaseModel) else None


def _problem(filename: str, document: CommentedMap, error: Any) -> Problem:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        valid = sorted(parent.model_fields) if parent else []
        unknown = str(loc[-1])
        message = f"unknown key {unknown!r}"
        close = difflib.get_close_matches(unknown, valid, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
        if valid:
            message += f"{'' if close else '.'} Valid keys here: {', '.join(valid)}"
        return _located(filename, document, loc, message, key=True)
    message = _describe(error)
    return _located(filename, document, loc, message, key=False)


def _describe(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if isinstance(value, (dict, list)):
        got = f"got a {type(value).__name__}"
    else:
        got = f"got {value!r}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        message = f"{value!r} is not valid; use {PATTERN_WORDS.get(pattern, pattern)}"
        if isinstance(value, str) and value.lower() != value:
            message += f" (did you mean {value.lower()!r}?)"
        return message
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}; {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of keys; {got}"
    if kind == "list_type":
        return f"must be a list (one '- item' per line); {got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"input should be a valid boolean, true or false; {got}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}; {got}"
