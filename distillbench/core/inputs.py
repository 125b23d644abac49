"""Local inputs a recipe names (data files and folders, model folders): a run stops when one is missing;
`distillbench run --check` lists the missing ones as what the run needs here, so a recipe written for
another machine (CIFAR-100 and converted teachers on a GPU host) still validates and plans."""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

_ABSENT: ContextVar[list[str] | None] = ContextVar("absent_inputs", default=None)


@contextlib.contextmanager
def absent_inputs_allowed() -> Iterator[list[str]]:
    """Within this block a missing local input is noted in the yielded list instead of being a problem."""
    noted: list[str] = []
    token = _ABSENT.set(noted)
    try:
        yield noted
    finally:
        _ABSENT.reset(token)


def absent_allowed(path: str | Path) -> bool:
    """Whether a missing local input `path` may pass (inside `absent_inputs_allowed`, which notes it); when
    False, the caller reports it missing."""
    noted = _ABSENT.get()
    if noted is None:
        return False
    if str(path) not in noted:
        noted.append(str(path))
    return True


# What a cell key records of an absent input: `--check` plans without its files (a run stops before keying).
ABSENT_FINGERPRINT = "absent"


def input_absent(path: str | Path) -> bool:
    """Whether `path` is missing but allowed to be (see `absent_allowed`): checks that read it skip."""
    return not Path(path).exists() and absent_allowed(path)
