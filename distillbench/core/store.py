"""The results store: SQLite in WAL mode under the run directory.

One row per cell (a trained or reference model), per (cell, benchmark)
evaluation, per scored item and per aggregated metric. Keys are content hashes,
so a cell already complete is never recomputed: that is the cache and the
resume mechanism. Writes are short transactions; an evaluation's items and its
'complete' mark are committed together, so a kill never leaves half of one.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, recipe_name TEXT, recipe_hash TEXT, recipe_json TEXT,
    provenance_json TEXT, started_at REAL, finished_at REAL);
CREATE TABLE IF NOT EXISTS cells (
    cell_key TEXT PRIMARY KEY, run_id TEXT, label TEXT, kind TEXT, method TEXT, params_json TEXT,
    seed INTEGER, status TEXT, error TEXT, failed_step INTEGER, cost_json TEXT, provenance_json TEXT,
    started_at REAL, finished_at REAL);
CREATE TABLE IF NOT EXISTS evaluations (
    cell_key TEXT, bench_key TEXT, benchmark TEXT, protocol_json TEXT, status TEXT,
    seconds REAL, finished_at REAL, PRIMARY KEY (cell_key, bench_key));
CREATE TABLE IF NOT EXISTS items (
    cell_key TEXT, bench_key TEXT, item_id TEXT, scores_json TEXT, reason TEXT, output TEXT,
    PRIMARY KEY (cell_key, bench_key, item_id));
CREATE TABLE IF NOT EXISTS metrics (
    cell_key TEXT, bench_key TEXT, benchmark TEXT, metric TEXT, mean REAL, ci_lo REAL, ci_hi REAL, n INTEGER,
    PRIMARY KEY (cell_key, bench_key, metric));
"""


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=60000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _write(self, statements: Iterable[tuple[str, tuple]]) -> None:
        """Run statements in one immediate transaction (one writer at a time across processes)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                self._db.execute(sql, args)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # runs ---------------------------------------------------------------
    def start_run(self, run_id: str, recipe_name: str, recipe_hash: str, recipe: dict, provenance: dict) -> None:
        self._write([("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,NULL)",
                      (run_id, recipe_name, recipe_hash, json.dumps(recipe), json.dumps(provenance), time.time()))])

    def finish_run(self, run_id: str) -> None:
        self._write([("UPDATE runs SET finished_at=? WHERE run_id=?", (time.time(), run_id))])

    # cells --------------------------------------------------------------
    def forget_cell(self, cell_key: str) -> None:
        """Drop a cell's record, evaluations and items, so the next run trains and scores it again."""
        self._write([(f"DELETE FROM {table} WHERE cell_key=?", (cell_key,))
                     for table in ("items", "metrics", "evaluations", "cells")])

    def cell(self, cell_key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM cells WHERE cell_key=?", (cell_key,)).fetchone()
        if row is None:
            return None
        names = [d[0] for d in self._db.execute("SELECT * FROM cells LIMIT 0").description]
        record = dict(zip(names, row))
        for field in ("params_json", "cost_json", "provenance_json"):
            record[field.removesuffix("_json")] = json.loads(record.pop(field) or "null")
        return record

    def mark_cell(self, cell_key: str, *, run_id: str, label: str, kind: str, method: str | None, params: dict,
                  seed: int | None, status: str, error: str | None = None, failed_step: int | None = None,
                  cost: dict | None = None, provenance: dict | None = None) -> None:
        now = time.time()
        previous = self.cell(cell_key)
        started = previous["started_at"] if previous else now
        finished = now if status in ("complete", "failed") else None
        self._write([("INSERT OR REPLACE INTO cells VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (cell_key, run_id, label, kind, method, json.dumps(params), seed, status, error, failed_step,
                       json.dumps(cost or {}), json.dumps(provenance or {}), started, finished))])

    def add_cost(self, cell_key: str, cost: dict) -> None:
        """Set cost figures of a recorded cell (figures measured while scoring it), keeping the others."""
        merged = {**((self.cell(cell_key) or {}).get("cost") or {}), **cost}
        self._write([("UPDATE cells SET cost_json=? WHERE cell_key=?", (json.dumps(merged), cell_key))])

    # evaluations --------------------------------------------------------
    def evaluation_complete(self, cell_key: str, bench_key: str) -> bool:
        row = self._db.execute("SELECT status FROM evaluations WHERE cell_key=? AND bench_key=?",
                               (cell_key, bench_key)).fetchone()
        return row is not None and row[0] == "complete"

    def save_evaluation(self, cell_key: str, bench_key: str, benchmark: str, protocol: dict, seconds: float,
                        items: list[dict[str, Any]], metrics: dict[str, dict[str, float]]) -> None:
        statements = [("DELETE FROM items WHERE cell_key=? AND bench_key=?", (cell_key, bench_key))]
        statements += [("INSERT INTO items VALUES (?,?,?,?,?,?)",
                        (cell_key, bench_key, item["id"], json.dumps(item["scores"]), item["reason"],
                         item["output"] if isinstance(item["output"], str) else json.dumps(item["output"])))
                       for item in items]
        statements += [("INSERT OR REPLACE INTO metrics VALUES (?,?,?,?,?,?,?,?)",
                        (cell_key, bench_key, benchmark, name, m["mean"], *(m["ci95"] or (None, None)), m["n"]))
                       for name, m in metrics.items()]
        statements.append(("INSERT OR REPLACE INTO evaluations VALUES (?,?,?,?,?,?,?)",
                           (cell_key, bench_key, benchmark, json.dumps(protocol), "complete", seconds, time.time())))
        self._write(statements)

    def metric_summaries(self, cell_key: str, bench_key: str) -> dict[str, dict[str, Any]]:
        """The metrics saved with an evaluation, {"mean", "ci95" (None when it had no CI), "n"} by name."""
        rows = self._db.execute("SELECT metric, mean, ci_lo, ci_hi, n FROM metrics WHERE cell_key=? AND bench_key=?",
                                (cell_key, bench_key))
        return {name: {"mean": mean, "ci95": None if low is None else [low, high], "n": n}
                for name, mean, low, high, n in rows}

    def item_scores(self, cell_key: str, bench_key: str) -> dict[str, dict[str, float]]:
        rows = self._db.execute("SELECT item_id, scores_json FROM items WHERE cell_key=? AND bench_key=?",
                                (cell_key, bench_key))
        return {item_id: json.loads(scores) for item_id, scores in rows}

    def evaluation(self, cell_key: str, bench_key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT protocol_json, seconds FROM evaluations WHERE cell_key=? AND bench_key=? "
                               "AND status='complete'", (cell_key, bench_key)).fetchone()
        return None if row is None else {"protocol": json.loads(row[0]), "seconds": row[1]}

    def item_records(self, cell_key: str, bench_key: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Per-item records (id, scores, reason, output) in the order they were scored, at most `limit`."""
        rows = self._db.execute("SELECT item_id, scores_json, reason, output FROM items WHERE cell_key=? AND bench_key=? "
                                "ORDER BY rowid LIMIT ?", (cell_key, bench_key, -1 if limit is None else limit))
        return [{"id": item_id, "scores": json.loads(scores), "reason": reason, "output": output}
                for item_id, scores, reason, output in rows]
