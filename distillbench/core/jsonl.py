"""JSONL files read with errors that name the file, the line and the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distillbench.core.errors import UserInputError


def read_jsonl(path: str | Path, required: tuple[str, ...] = (),
               check: Callable[[dict[str, Any]], str | None] | None = None) -> list[dict[str, Any]]:
    """Records of a JSONL file; a bad line raises UserInputError naming the file, line and field (or
    what `check` says is wrong with the record)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise UserInputError(f"{path}:{number}: expected a JSON object")
        missing = [f for f in required if f not in record]
        if missing:
            raise UserInputError(f"{path}:{number}: missing field {missing[0]!r}")
        problem = check(record) if check else None
        if problem:
            raise UserInputError(f"{path}:{number}: {problem}")
        records.append(record)
    if not records:
        raise UserInputError(f"{path}: no records")
    return records
