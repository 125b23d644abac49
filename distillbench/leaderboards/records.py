"""A board's per-item records, compressed beside it, so its paired tests rerun without the run directory.

`<board>.items.csv.gz` (in a run directory `leaderboard.items.csv.gz`, beside `leaderboard.json`)
is gzip CSV with the columns cell, bench, item, metric, value: one line per value
`Store.item_scores` returns (an item scored with no value at all keeps one line with metric and value
empty), and lines with bench and item empty for each cell's numeric cost figures (metric
`cost/<field>`, or `cost/<group>/<name>` inside a group such as `final_measures`), which the claims
read. Gzip CSV rather than Parquet: `pandas.read_csv` reads it as it is, and writing and reading it
here need neither pandas nor pyarrow, which distillbench does not depend on. Floats are written as
Python's shortest round-trip form, so the numbers read back are the store's, bit for bit.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import os
import zlib
from pathlib import Path
from typing import Any, Iterator

from distillbench.core.errors import UserInputError
from distillbench.core.files import temporary_name
from distillbench.core.store import Store

COLUMNS = ["cell", "bench", "item", "metric", "value"]
COST = "cost/"


def board_file(path: Path) -> Path:
    """The leaderboard JSON a path names: itself, or a run directory's leaderboard.json."""
    return path / "leaderboard.json" if path.is_dir() else path


def records_path(board: Path) -> Path:
    """The records file of a board file: leaderboard.json -> leaderboard.items.csv.gz."""
    return board.with_suffix(".items.csv.gz")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cost_lines(cell: str, cost: dict[str, Any]) -> Iterator[list]:
    for field, value in sorted(cost.items()):
        if isinstance(value, dict):
            yield from ([cell, "", "", f"{COST}{field}/{name}", v] for name, v in sorted(value.items()) if _number(v))
        elif _number(value):  # a text figure would not read back as a number; none is one today
            yield [cell, "", "", f"{COST}{field}", value]


def _lines(store: Store, board: dict[str, Any]) -> Iterator[list]:
    """The board's cells' cost figures and item values, in the board's order, items and metrics sorted."""
    for row in board["rows"]:
        for cell in row.get("cells", []):
            yield from _cost_lines(cell, (store.cell(cell) or {}).get("cost") or {})
            for bench in (protocol["key"] for protocol in board["protocols"].values()):
                for item, scores in sorted(store.item_scores(cell, bench).items()):
                    yield from ([cell, bench, item, metric, value] for metric, value in sorted(scores.items()))
                    if not scores:
                        yield [cell, bench, item, "", ""]


def write_records(store: Store, board: dict[str, Any], path: Path) -> None:
    """Write the records of `board`'s cells from `store` to `path`, atomically. No time stamp or file name
    goes into the gzip header, so the same records give the same bytes and a regenerated board diffs cleanly."""
    tmp = temporary_name(path)
    with (open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
          io.TextIOWrapper(packed, encoding="utf-8", newline="") as text):
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(_lines(store, board))
    os.replace(tmp, path)


class Records:
    """A records file read back, answering the two questions the paired tests ask of a Store:
    `item_scores(cell_key, bench_key)` and `cell(key)` (only its cost; None for a cell it lacks)."""

    def __init__(self, path: Path):
        self.path = path
        self._items: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
        self._costs: dict[str, dict[str, Any]] = {}
        self._cells: set[str] = set()
        try:
            with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
                self._read(csv.reader(text))
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
            raise UserInputError(f"{path}: unreadable per-item records ({exc})") from None

    def _read(self, reader) -> None:
        if next(reader, None) != COLUMNS:
            raise UserInputError(f"{self.path}: not a per-item records file (its header is not {','.join(COLUMNS)})")
        for line in reader:
            try:
                cell, bench, item, metric, value = line
                self._cells.add(cell)
                if bench:
                    scores = self._items.setdefault((cell, bench), {}).setdefault(item, {})
                    if metric:
                        scores[metric] = float(value)
                else:
                    self._set_cost(cell, metric.removeprefix(COST).split("/"), float(value))
            except ValueError:
                raise UserInputError(f"{self.path}:{reader.line_num}: expected {','.join(COLUMNS)} with a "
                                     f"number for value, got {line}") from None

    def _set_cost(self, cell: str, names: list[str], value: float) -> None:
        group = self._costs.setdefault(cell, {})
        for name in names[:-1]:
            group = group.setdefault(name, {})
        group[names[-1]] = value

    def item_scores(self, cell_key: str, bench_key: str) -> dict[str, dict[str, float]]:
        return {item: dict(scores) for item, scores in self._items.get((cell_key, bench_key), {}).items()}

    def cell(self, cell_key: str) -> dict[str, Any] | None:
        return {"cell_key": cell_key, "cost": self._costs.get(cell_key, {})} if cell_key in self._cells else None


@contextlib.contextmanager
def item_source(board: Path) -> Iterator[Store | Records | None]:
    """The per-item records of a board file: the results store of the run it lies in, else the records file
    beside it, else None. The store comes first: it is what the records file was written from."""
    store_path = board.parent / "results.sqlite"
    if store_path.is_file():
        store = Store(store_path)
        try:
            yield store
        finally:
            store.close()
    elif records_path(board).is_file():
        yield Records(records_path(board))
    else:
        yield None
