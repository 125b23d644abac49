"""Turn pydantic validation errors into one short line per problem, naming the field path."""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from pydantic import ValidationError

_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def field_path(loc: Iterable[Any], prefix: str = "") -> str:
    """('methods', 2, 'beta') -> 'methods[2].beta'."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def unknown_field(name: str, known_fields: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known_fields), n=1, cutoff=0.5)
    return "unknown field" + (f"; did you mean {close[0]!r}?" if close else "")


def describe(error: dict[str, Any], known_fields: Iterable[str] = ()) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {bound:g}" if isinstance(bound, (int, float)) else f"must be {_BOUNDS[kind]} {bound}"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return unknown_field(str(error["loc"][-1]), known_fields)
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    message = error["msg"]
    return message[0].lower() + message[1:] if message else kind


def problems_from(exc: ValidationError, prefix: str = "", known_fields: Iterable[str] = ()) -> list[str]:
    """One 'path: message' line per pydantic error."""
    lines = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        lines.append(f"{field_path(loc, prefix)}: {describe(error, known_fields)}")
    return lines
