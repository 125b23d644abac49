"""The runner: recipe → plan → (train) → score → store → leaderboard.

Every cell and every (cell, benchmark) evaluation is keyed by a content hash;
whatever is already complete in the store is skipped, so running the same
command again after an interruption resumes where it stopped. A cell whose
training fails (a NaN loss, say) is recorded as failed with the step and the
reason, and the other cells go on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from distillbench.core.errors import CellFailure, UserInputError
from distillbench.core.files import cell_lock, replace_directory, temporary_name, write_text_atomic
from distillbench.core.item_metrics import summarize_metrics, values_from_records
from distillbench.core.plan import BenchmarkRun, Cell, Plan, make_plan
from distillbench.core.provenance import run_provenance
from distillbench.core.recipe import Recipe
from distillbench.core.registry import KINDS
from distillbench.core.store import Store
from distillbench.core.tune import Tuner

EVAL_BATCH_SIZE = 64

RUN_ID_VARIABLE = "DISTILLBENCH_RUN_ID"  # set by run_workers for the processes of one run
TUNING_RECORD = "tuning.json"  # what a tuned run's trials found, in its output directory (core/tune.py)


class Runner:
    def __init__(self, recipe: Recipe, output_dir: Path | None = None, console: Console | None = None):
        self.recipe = recipe
        self.out = Path(output_dir) if output_dir else recipe.output_path()
        self.console = console or Console(stderr=True)
        self.kind = KINDS.get(recipe.kind)(recipe, self.out)  # the kind of student: everything modal is its
        self.tuned: dict[str, dict[str, Any]] = {}  # row label -> its tuning (core/tune.py), once tuned

    def check(self) -> Plan:
        """The plan (with the tuned options, once tuned), once what it needs (data files, compatible models, a
        backend) is checked."""
        plan = make_plan(self.recipe, self.kind, tuned=self.tuned)
        self.kind.preflight(plan)
        return plan

    def run(self) -> Plan:
        """Tune the methods (when the recipe has a tune block), then train and score every cell of the plan into
        <out>/results.sqlite; returns the plan (the leaderboard is built from the store by
        `distillbench.leaderboards`)."""
        plan = self.check()  # bad data fails here, before anything is written
        store = Store(self.out / "results.sqlite")
        # one id for all the processes of one `--jobs` run, so none retries a cell another saw fail
        run_id = os.environ.get(RUN_ID_VARIABLE) or uuid.uuid4().hex[:12]
        provenance = run_provenance(self.recipe.content_hash())
        store.start_run(run_id, self.recipe.name, self.recipe.content_hash(), self.recipe.canonical(), provenance)
        try:
            if self.recipe.tune is not None:
                plan = self._tune(store, run_id, provenance)
            self._execute(store, run_id, plan, provenance)
            store.finish_run(run_id)
        finally:
            store.close()
        return plan

    def _tune(self, store: Store, run_id: str, provenance: dict) -> Plan:
        """Tune the recipe's methods (trials found in the store are not trained again); the tuned plan."""
        execute = lambda trials: self._execute(store, run_id, trials, provenance)  # noqa: E731
        # what the trials found goes to the run's tuning record (`tune.record`): tune here once, train elsewhere
        self.tuned = Tuner(self.recipe, self.kind, store, execute, self.console, self.out / TUNING_RECORD).run()
        return make_plan(self.recipe, self.kind, tuned=self.tuned)  # preflight passed: the tuned cells read the same

    def _execute(self, store: Store, run_id: str, plan: Plan, provenance: dict) -> None:
        """Train and score the plan's cells. A cell another process is working on is skipped at first and
        waited for at the end, so concurrent runs on one output directory share the work."""
        busy = [cell for cell in plan.cells if not self._run_locked(store, run_id, plan, cell, provenance, wait=False)]
        for cell in busy:
            self._run_locked(store, run_id, plan, cell, provenance, wait=True)

    def forget(self, rows: list[str]) -> list[str]:
        """Make the next run train and score again the cells of `rows` (row labels as the leaderboard shows
        them, or method names) and the cells that start from them: their store records are dropped and
        their folders moved under <out>/replaced/ (nothing is deleted). A tuned recipe's rows are the tuned
        ones, so its tuning runs first (the trials done are found in the store). Returns the folders moved."""
        plan = self.check()
        if self.recipe.tune is not None and not self.tuned:
            store = Store(self.out / "results.sqlite")
            try:
                plan = self._tune(store, uuid.uuid4().hex[:12], run_provenance(self.recipe.content_hash()))
            finally:
                store.close()
        known = {cell.label for cell in plan.cells} | {cell.method_name for cell in plan.cells if cell.method_name}
        unknown = [row for row in rows if row not in known]
        if unknown:
            raise UserInputError(f"--rerun: no row {', '.join(map(repr, unknown))} in this recipe; rows: "
                                 f"{', '.join(sorted({cell.label for cell in plan.cells}))}")
        chosen = {cell.key for cell in plan.cells if cell.label in rows or cell.method_name in rows}
        while True:  # a student continued from a retrained one is retrained too
            followers = {cell.key for cell in plan.cells if cell.starts_from in chosen} - chosen
            if not followers:
                break
            chosen |= followers
        moved, stamp = [], time.strftime("%Y%m%d-%H%M%S")
        store = Store(self.out / "results.sqlite")
        try:
            for cell in plan.cells:
                if cell.key not in chosen:
                    continue
                store.forget_cell(cell.key)
                folder = self.out / "cells" / cell.folder
                if folder.exists():
                    target = self.out / "replaced" / f"{cell.folder}-{stamp}"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    folder.rename(target)
                    moved.append(cell.folder)
        finally:
            store.close()
        return moved

    # cells ----------------------------------------------------------------
    def _run_locked(self, store: Store, run_id: str, plan: Plan, cell: Cell, provenance: dict, wait: bool) -> bool:
        with cell_lock(self.out / "cells" / f".{cell.folder}.lock", wait) as locked:
            if locked:
                self._run_cell(store, run_id, plan, cell, provenance)
        return locked

    def _run_cell(self, store: Store, run_id: str, plan: Plan, cell: Cell, provenance: dict) -> None:
        record = store.cell(cell.key)
        pending = [b for b in plan.benchmarks if not store.evaluation_complete(cell.key, b.key)]
        if record and record["status"] == "ready" and not pending:
            self.console.print(f"[dim]{cell.folder}: complete in the store, skipped[/dim]")
            return
        if record and record["status"] == "failed" and record["run_id"] == run_id:
            return  # failed in this run (a follower or a waiting process came back to it): the next run retries
        folder = self.out / "cells" / cell.folder
        params = {} if cell.method is None else dataclasses.asdict(cell.method)
        common = dict(run_id=run_id, label=cell.label, kind=cell.kind, method=cell.method_name, params=params,
                      seed=cell.seed)
        cell_provenance = {**provenance, "seed": cell.seed, "model": cell.model_ref}
        if record and record["status"] == "ready":
            model, tokenizer = self._load_trained(cell, folder)
        else:
            if cell.starts_from:  # its start must be trained first (by us, or by a concurrent run)
                start = plan.cell(cell.starts_from)
                self._run_locked(store, run_id, plan, start, provenance, wait=True)
                if (store.cell(start.key) or {}).get("status") != "ready":
                    store.mark_cell(cell.key, status="failed", error=f"it continues {start.label}, which failed",
                                    provenance=cell_provenance, **common)
                    self.console.print(f"[red]{escape(cell.folder)}: not trained: {escape(start.label)} failed; "
                                       "other cells go on[/red]")
                    return
            store.mark_cell(cell.key, status="running", **common)
            try:
                model, tokenizer, cost = self._prepare(cell, folder, plan)
            except (CellFailure, torch.cuda.OutOfMemoryError) as exc:  # a cell's own failure; the run goes on
                error = str(exc) if isinstance(exc, CellFailure) else f"out of memory: {exc}"
                store.mark_cell(cell.key, status="failed", error=error, failed_step=getattr(exc, "step", None),
                                provenance=cell_provenance, **common)
                self.console.print(f"[red]{cell.folder}: failed: {escape(error)}; other cells go on[/red]")
                return
            cell_provenance["device"] = cost.pop("device", "cpu")
            cell_provenance["precision"] = cost.pop("precision", "fp32")
            store.mark_cell(cell.key, status="ready", cost=cost, provenance=cell_provenance, **common)
        model = self.kind.device_model(model)
        with self.kind.scoring(cell, folder, model, tokenizer):
            for bench in pending:
                self._evaluate(store, cell, bench, model, tokenizer, folder)
        measured = self.kind.scoring_cost(model)
        if measured:
            store.add_cost(cell.key, measured)

    def _prepare(self, cell: Cell, folder: Path, plan: Plan):
        """The model a cell scores: a reference model as is, or the student its method trains."""
        init = self._init_ref(cell, plan)
        model, processor = self.kind.load(init, seed=cell.seed or 0, options=cell.options)
        if cell.kind == "reference":
            return model, processor, {}
        steps = "" if self.recipe.budget is None else f" ({self.recipe.budget.steps} steps)"  # a kind may fit without one
        self.console.print(f"training {cell.folder}{steps}")
        model, result, extra = self.kind.fit(cell, model, processor, init, folder,
                                             description=f"train {cell.label} seed {cell.seed}")
        self._save_atomic(model, processor, folder / "model")
        return model, processor, {**_cost(result), **extra, "device": result.device, "precision": result.precision}

    def _save_atomic(self, model, processor, target: Path) -> None:
        staging = temporary_name(target)
        self.kind.save(model, processor, staging)
        replace_directory(staging, target)

    def _load_trained(self, cell: Cell, folder: Path):
        if cell.kind == "reference":
            return self.kind.load(cell.model_ref, options=cell.options)
        return self.kind.load_trained(folder / "model", seed=cell.seed or 0)

    def _init_ref(self, cell: Cell, plan: Plan) -> str:
        """Where a cell's model starts: its model_ref, or the trained student of the cell it continues."""
        if cell.starts_from is None:
            return cell.model_ref
        return str(self.out / "cells" / plan.cell(cell.starts_from).folder / "model")

    # evaluation -------------------------------------------------------------
    def _evaluate(self, store: Store, cell: Cell, bench: BenchmarkRun, model, tokenizer, folder: Path) -> None:
        started = time.perf_counter()
        items = bench.benchmark.items()
        outputs = bench.benchmark.predict(model, tokenizer, items, batch_size=EVAL_BATCH_SIZE)
        metrics = score_and_save(store, cell, bench, items, outputs, time.perf_counter() - started, folder)
        summary = ", ".join(f"{k}={v['mean']:.3f}" for k, v in metrics.items())
        self.console.print(escape(f"{cell.folder} on {bench.name}: {summary}"))


def score_and_save(store: Store, cell: Cell, bench: BenchmarkRun, items: list[dict], outputs: list,
                   seconds: float, folder: Path) -> dict[str, Any]:
    """Score one benchmark's outputs for one cell (per item, then any set metrics), write them to
    `folder` and the store; `seconds` is what predicting took. Returns the metrics."""
    benchmark = bench.benchmark
    started = time.perf_counter()
    scored = []
    for item, output in zip(items, outputs):
        result = benchmark.score(item, output)
        scored.append({"id": item["id"], "output": output, "scores": result.values, "reason": result.reason,
                       **({"extra": result.extra} if result.extra else {})})
    metrics = summarize_metrics(values_from_records((s["id"], s["scores"]) for s in scored),
                                benchmark.metric_definitions())
    metrics.update(benchmark.score_set(items, outputs))  # FID, KID: statistics of the whole set
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / f"outputs-{bench.name}-{bench.key[:8]}.jsonl",
                      "".join(json.dumps(s) + "\n" for s in scored))
    store.save_evaluation(cell.key, bench.key, bench.name, benchmark.protocol(),
                          seconds + time.perf_counter() - started, scored, metrics)
    return metrics


def _cost(result) -> dict[str, Any]:
    """A method cell's cost columns from the train loop's result."""
    unit = result.unit
    return {"train_seconds": round(result.wall_seconds, 2), "steps": result.steps, f"train_{unit}": result.tokens,
            f"train_{unit}_per_second": round(result.tokens / max(result.wall_seconds, 1e-9), 1),
            "teacher_forwards": result.teacher_forwards, "trained_parameters": result.trained_parameters,
            "peak_memory_mb": round(result.peak_memory_mb, 1), "final_loss_terms": result.final_terms,
            "on_policy_steps": result.on_policy_steps,
            **({"final_measures": result.measures} if result.measures else {})}


def run_workers(runner: Runner, worker_command: list[str], jobs: int) -> int:
    """Run `runner`'s recipe in `jobs` processes on one output directory: this one and jobs − 1 workers
    (`worker_command`, the same run again, their output in <out>/workers/worker-<n>.log). The cell locks share the
    cells out, so each is trained and scored once; every process gets cpu_count / jobs torch threads.
    On the 2-core machine the demo took as long with two processes as with one of two threads
    (bench/results/end_to_end.json): it pays only where one process leaves cores idle.
    Returns 0, or 1 when a worker failed (this process still ends every cell: a dead worker's lock is free)."""
    runner.check()  # bad input fails once, here, before any worker starts
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    logs = runner.out / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    environment = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, RUN_ID_VARIABLE: run_id}
    os.environ[RUN_ID_VARIABLE] = run_id
    workers = []
    for number in range(1, jobs):
        log = open(logs / f"worker-{number}.log", "w")  # noqa: SIM115 (closed below, after the worker ends)
        workers.append((subprocess.Popen(worker_command, stdout=log, stderr=subprocess.STDOUT, env=environment), log))
    torch.set_num_threads(int(threads))
    try:
        runner.run()
    finally:
        os.environ.pop(RUN_ID_VARIABLE, None)
        failed = []
        for number, (process, log) in enumerate(workers, start=1):
            if process.wait() != 0:
                failed.append(f"worker {number} exited with status {process.returncode}: see {log.name}")
            log.close()
    for line in failed:
        runner.console.print(f"[red]{escape(line)}[/red]")
    return 1 if failed else 0

