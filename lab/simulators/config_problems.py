"""Pydantic's complaints about a `simulators.toml`, said so that a supplier's engineer can fix the file without
reading code: the field's path as the file spells it (`lines[0].port`), the value found, and what is allowed,
with the field's own description and, for an unknown field, the closest known name.

One line per problem: `PATH: found VALUE; ALLOWED`, or `PATH: ALLOWED` where no single value is to blame.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

SHOWN_CHARACTERS = 60
"""A value found is shown up to this long; a whole table pasted into one line would hide the problem."""

_ALLOWED: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda _: "required",
    "greater_than_equal": lambda ctx: f"allowed: {ctx['ge']} or more",
    "greater_than": lambda ctx: f"allowed: more than {ctx['gt']}",
    "less_than_equal": lambda ctx: f"allowed: at most {ctx['le']}",
    "less_than": lambda ctx: f"allowed: less than {ctx['lt']}",
    "int_parsing": lambda _: "allowed: a whole number",
    "int_type": lambda _: "allowed: a whole number",
    "int_from_float": lambda _: "allowed: a whole number",
    "float_parsing": lambda _: "allowed: a number",
    "float_type": lambda _: "allowed: a number",
    "bool_parsing": lambda _: "allowed: true or false",
    "bool_type": lambda _: "allowed: true or false",
    "string_type": lambda _: "allowed: a string in quotes",
    "datetime_type": lambda _: "allowed: a local date-time, e.g. 2026-03-01T06:00:00",
    "datetime_parsing": lambda _: "allowed: a local date-time, e.g. 2026-03-01T06:00:00",
    "list_type": lambda _: "allowed: a list [...]",
    "dict_type": lambda _: "allowed: a table { ... }",
    "model_type": lambda _: "allowed: a table { ... }",
    "tuple_type": lambda _: "allowed: a list [...]",
    "literal_error": lambda ctx: f"allowed: {ctx['expected']}",
    "enum": lambda ctx: f"allowed: {ctx['expected']}",
    "string_pattern_mismatch": lambda ctx: f"allowed: text matching {ctx['pattern']}",
    "string_too_short": lambda ctx: f"allowed: at least {ctx['min_length']} character(s)",
    "too_short": lambda ctx: f"allowed: at least {ctx['min_length']} item(s)",
    "too_long": lambda ctx: f"allowed: at most {ctx['max_length']} item(s)",
    "union_tag_invalid": lambda ctx: f"allowed: {ctx['expected_tags']}",
    "union_tag_not_found": lambda ctx: f"give {ctx['discriminator']} (the kind of line)",
}


def explain(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem of a document validated against `root` (the config's model)."""
    problems: list[str] = []
    errors = error.errors(include_url=False)
    deeper = {item["loc"][:n] for item in errors for n in range(len(item["loc"]))}
    for item in errors:
        loc = item["loc"]
        if loc in deeper:
            continue  # a list item that failed inside: its own errors say why
        where = _dotted(loc) or "(top level)"
        kind, ctx = item["type"], item.get("ctx", {})
        if kind == "extra_forbidden":
            problems.append(f"{where}: found {_shown(item.get('input'))}; {_unknown_field(root, loc)}")
        elif kind == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.extend(f"{where}: {line}" if where != "(top level)" else line for line in message.splitlines())
        else:
            if kind == "union_tag_invalid":
                where, found = f"{where}.{ctx['discriminator'].strip(chr(39))}", repr(ctx["tag"])
            else:
                found = "nothing" if kind == "missing" else _shown(item.get("input"))
            allowed = _ALLOWED[kind](ctx) if kind in _ALLOWED else str(item["msg"])
            hint = _description(root, loc)
            if hint:
                allowed += f" ({hint})"
            problems.append(f"{where}: found {found}; {allowed}")
    return problems


def _dotted(loc: tuple[int | str, ...]) -> str:
    """`lines[0].port` for ('lines', 0, 'tcp', 'port'): the tag pydantic puts in a union's path is not in
    the file."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part not in {"rtu", "tcp"}:
            text += f".{part}" if text else part
    return text


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def _unknown_field(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    model = _model_at(root, loc[:-1])
    known = list(model.model_fields) if model is not None else []
    guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
    suggestion = f"did you mean {guess[0]!r}? " if guess else ""
    return f"unknown field; {suggestion}known fields here: {', '.join(known) or 'none'}"


def _description(root: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    if not loc or not isinstance(loc[-1], str):
        return None
    model = _model_at(root, loc[:-1])
    field = None if model is None else model.model_fields.get(loc[-1])
    return None if field is None else field.description


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class the path points into, following the fields' annotations through lists, optionals and
    the tagged line union (whose tag is the path's next part)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return None
        if isinstance(part, int) or part in {"rtu", "tcp"}:
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = current.model_fields[part].annotation
    current = _unwrap(current, None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any, part: int | str | None) -> Any:
    """Look through `list[X]` (for an index), `X | None`, and `Annotated[A | B, ...]` (for the tag `part`)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0], part)
    if origin is list and isinstance(part, int):
        return typing.get_args(annotation)[0]
    if origin in {typing.Union, types.UnionType}:
        options = [option for option in typing.get_args(annotation) if option is not type(None)]
        if isinstance(part, str):
            tagged = [option for option in options if _tag_of(option) == part]
            if tagged:
                return tagged[0]
        return options[0] if len(options) == 1 else annotation
    return annotation


def _tag_of(option: Any) -> str | None:
    field = option.model_fields.get("kind") if isinstance(option, type) and issubclass(option, BaseModel) else None
    if field is None:
        return None
    values = typing.get_args(field.annotation)
    return str(values[0]) if values else None
