"""Atomic file writes and per-cell locks, so that kills and concurrent runs never leave half a file; the user cache.

Temporary names carry the process id, so two processes writing the same target never
share a temporary file; `os.replace` makes the final rename atomic. Cell locks are
`fcntl.flock` locks on a file per cell: the kernel releases them when a process dies,
even by `kill -9`, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import Iterator


def user_cache_dir() -> Path:
    """The user cache: $DISTILLBENCH_CACHE, else $XDG_CACHE_HOME/distillbench (~/.cache/distillbench)."""
    root = os.environ.get("DISTILLBENCH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "distillbench"
    return Path(root)


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def replace_directory(staging: Path, target: Path) -> None:
    """Move a finished directory into place (the old one, if any, is removed first)."""
    if target.exists():
        old = temporary_name(target.with_name(target.name + ".old"))
        os.replace(target, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(staging, target)


@contextlib.contextmanager
def cell_lock(path: Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive lock on `path`; yields False (without waiting) when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
