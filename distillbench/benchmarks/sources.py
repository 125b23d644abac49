"""Benchmark data sources: a local JSONL file, or a Hugging Face dataset id pinned to a revision.

``hf:<id>[:<config>]@<revision>`` loads through the `datasets` library (optional extra
``hf``); a hub dataset without a revision is refused, because an unpinned dataset can
change under a leaderboard. Local files are read with line-numbered errors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from distillbench.core.errors import UserInputError
from distillbench.core.inputs import absent_allowed
from distillbench.core.jsonl import read_jsonl


def check_source(source: str) -> list[str]:
    """Problems with a source string (empty when usable)."""
    if source.startswith("hf:"):
        return [] if "@" in source else [f"source: pin a revision, e.g. {source}@<commit sha>"]
    return [] if Path(source).is_file() or absent_allowed(source) else [f"source: file not found: {source}"]


def load_source(source: str, split: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    if not source.startswith("hf:"):
        return read_jsonl(source, required)
    name, _, revision = source.removeprefix("hf:").partition("@")
    name, _, config = name.partition(":")
    try:
        import datasets
    except ImportError:
        raise UserInputError(f"{source}: loading hub datasets needs the 'hf' extra (pip install distillbench[hf])") from None
    try:
        rows = datasets.load_dataset(name, config or None, split=split, revision=revision)
    except Exception as exc:  # the hub client raises many types; the user needs the message
        raise UserInputError(f"{source}: cannot load split {split!r} ({str(exc).splitlines()[0]})") from None
    records = [dict(row) for row in rows]
    missing = [field for field in required if records and field not in records[0]]
    if missing:
        raise UserInputError(f"{source}: records lack field {missing[0]!r}")
    return records


def source_fingerprint(source: str) -> str:
    if source.startswith("hf:"):
        return source
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]
