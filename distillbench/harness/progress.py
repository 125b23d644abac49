"""Progress bars (rich) that stay quiet when output is not a terminal, e.g. in CI logs."""

from __future__ import annotations

import contextlib
import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task):
        self._progress, self._task = progress, task

    def advance(self, amount: int = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=amount, **fields)


@contextlib.contextmanager
def progress(total: int, description: str):
    if not sys.stderr.isatty():
        yield _Bar(None, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total, info="")
        yield _Bar(bar, task)
