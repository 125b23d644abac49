"""Progress: rich bars on a terminal; elsewhere (CI logs, pipes) a plain line every 10%."""

from __future__ import annotations

import contextlib
import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task, total: int, description: str):
        self._progress, self._task = progress, task
        self._total, self._description = total, description
        self._done, self._next_report, self._started = 0, 0.1, time.perf_counter()

    def advance(self, amount: int = 1, **fields) -> None:
        self._done += amount
        if self._progress is not None:
            self._progress.update(self._task, advance=amount, **fields)
        elif self._total and self._done / self._total >= self._next_report:
            while self._done / self._total >= self._next_report:
                self._next_report += 0.1
            info = f" {fields['info']}" if fields.get("info") else ""
            print(f"{self._description}: {self._done}/{self._total} "
                  f"({time.perf_counter() - self._started:.0f}s){info}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def progress(total: int, description: str):
    if not sys.stderr.isatty():
        yield _Bar(None, None, total, description)
        return
    # markup=False: a description such as "train kd[temperature=1.0] seed 0" is text, not rich markup
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[info]}", markup=False))
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(description, total=total, info="")
        yield _Bar(bar, task, total, description)
