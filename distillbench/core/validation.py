"""Turn pydantic validation errors into one short line per problem, naming the field path."""

from __future__ import annotations

import difflib
from typing import Any, Iterable, get_args

from pydantic import BaseModel, ValidationError

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
    """'unknown field' with the closest known name, or else every known name."""
    known = list(known_fields)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        return f"unknown field; did you mean {close[0]!r}?"
    return "unknown field" + (f" (known: {', '.join(known)})" if known else "")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (directly, or inside Optional / list / union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, get_args(annotation)) if m is not None), None)


def fields_at(model: type[BaseModel] | None, loc: Iterable[Any]) -> list[str]:
    """The field names of the (nested) model at an error's location, so a typo in `budget` is matched
    against the budget's fields, not the recipe's."""
    for part in loc:
        if model is None:
            return []
        if isinstance(part, str):
            field = model.model_fields.get(part)
            model = _model_in(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


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


def problems_from(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[str]:
    """One 'path: message' line per pydantic error; `model` (the validated one) names the known fields of
    an unknown one."""
    lines = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        lines.append(f"{field_path(loc, prefix)}: {describe(error, fields_at(model, loc[:-1]))}")
    return lines
