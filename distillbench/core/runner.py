"""The runner: recipe → plan → (train) → score → store → leaderboard.

Every cell and every (cell, benchmark) evaluation is keyed by a content hash;
whatever is already complete in the store is skipped, so running the same
command again after an interruption resumes where it stopped. A cell whose
training fails (a NaN loss, say) is recorded as failed with the step and the
reason, and the other cells go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape

from distillbench.leaderboards.aggregate import build_leaderboard
from distillbench.leaderboards.render import print_table, write_all
from distillbench.core.item_metrics import summarize_metrics, values_from_records

from distillbench.kinds.text_lm.data import (load_preferences, load_ranked, load_records, problem_records, tokenize_preferences,
                   tokenize_ranked, tokenize_records)
from distillbench.core.errors import CellFailure, UserInputError
from distillbench.core.files import cell_lock, replace_directory, temporary_name, write_text_atomic
from distillbench.kinds.text_lm.generation import serving
from distillbench.core.models import check_shared_vocabulary, fingerprint, load_causal_lm, parse_model_ref, resolve_path
from distillbench.core.plan import BenchmarkRun, Cell, Plan, make_plan
from distillbench.core.provenance import run_provenance
from distillbench.core.recipe import Recipe
from distillbench.kinds.text_lm.topk_cache import SignalCache
from distillbench.core.store import Store
from distillbench.core.train import train

EVAL_BATCH_SIZE = 64


# Dev problems of a pocket source that validation-watching schedules (distillm) are scored on.
VALIDATION_SIZE = 200
RUN_ID_VARIABLE = "DISTILLBENCH_RUN_ID"  # set by run_workers for the processes of one run


class Runner:
    def __init__(self, recipe: Recipe, output_dir: Path | None = None, console: Console | None = None):
        self.recipe = recipe
        self.out = Path(output_dir) if output_dir else recipe.output_path()
        self.console = console or Console(stderr=True)
        self._frozen: dict[str, torch.nn.Module] = {}
        self._examples: dict[str, list] = {}
        self._caches: dict[str, SignalCache] = {}

    def check(self) -> Plan:
        """The plan, once what it needs (data files, a shared vocabulary, a backend) is checked."""
        plan = make_plan(self.recipe)
        self._preflight(plan)
        return plan

    def run(self) -> dict[str, Any]:
        plan = self.check()  # bad data fails here, before anything is written
        store = Store(self.out / "results.sqlite")
        # one id for all the processes of one `--jobs` run, so none retries a cell another saw fail
        run_id = os.environ.get(RUN_ID_VARIABLE) or uuid.uuid4().hex[:12]
        provenance = run_provenance(self.recipe.content_hash())
        store.start_run(run_id, self.recipe.name, self.recipe.content_hash(), self.recipe.canonical(), provenance)
        try:
            # A cell another process is working on is skipped at first and waited for at the
            # end, so concurrent runs on one output directory share the work.
            busy = [cell for cell in plan.cells if not self._run_locked(store, run_id, plan, cell, provenance, wait=False)]
            for cell in busy:
                self._run_locked(store, run_id, plan, cell, provenance, wait=True)
            board = build_leaderboard(store, plan, self.recipe.canonical())
            write_all(board, self.out)
            store.finish_run(run_id)
        finally:
            store.close()
        print_table(board)
        self.console.print(f"results: {self.out / 'leaderboard.json'}, {self.out / 'leaderboard.md'}")
        return board

    def forget(self, rows: list[str]) -> list[str]:
        """Make the next run train and score again the cells of `rows` (row labels as the leaderboard shows
        them, or method names) and the cells that start from them: their store records are dropped and
        their folders moved under <out>/replaced/ (nothing is deleted). Returns the folders moved."""
        plan = self.check()
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

    @property
    def images(self) -> bool:
        """Whether this run distils image classifiers (image data) rather than language models."""
        return self.recipe.data.images

    def _preflight(self, plan: Plan) -> None:
        """Check what the plan needs (data files, a shared vocabulary), so bad input fails before anything is written."""
        if self.images:
            return self._preflight_images(plan)
        if self.recipe.generation.backend == "vllm":
            from distillbench.kinds.text_lm.vllm_backend import check_available

            check_available()
        methods = [cell.method for cell in plan.cells if cell.method is not None]
        if any(method.uses_teacher for method in methods):
            check_shared_vocabulary(self.recipe.teacher, self.recipe.student)
        if any("reference_teacher_logits" in method.needs for method in methods):
            check_shared_vocabulary(self.recipe.reference_teacher, self.recipe.student)
        kinds = {method.data_kind for method in methods}
        data = self.recipe.data
        if "sft" in kinds and not data.source.startswith("pocket:"):
            load_records(data.source, data.split, data.size)
        if "problems" in kinds and not data.source.startswith("pocket:"):
            problem_records(data.source, data.split, data.size)
        if "preference" in kinds and not data.preferences.startswith("pocket:"):
            load_preferences(data.preferences)
        if "ranked" in kinds and not data.ranked.startswith("pocket:"):
            load_ranked(data.ranked)

    def _preflight_images(self, plan: Plan) -> None:
        """The training data reads, and every classifier and benchmark agrees on its number of classes."""
        from distillbench.kinds.image_classifier.classifiers import classifier_spec

        classes = self._image_data().num_classes
        problems = []
        for field in ("teacher", "student"):
            spec = classifier_spec(getattr(self.recipe, field))
            if spec is not None and spec.num_classes != classes:
                problems.append(f"{field}: {getattr(self.recipe, field)} has {spec.num_classes} classes, "
                                f"data.source {self.recipe.data.source} has {classes}")
        for index, bench in enumerate(plan.benchmarks):
            count = bench.benchmark.num_classes()
            if count != classes:
                problems.append(f"benchmarks[{index}]: {bench.name} has {count} classes, the training data {classes}")
        if problems:
            raise UserInputError(problems)

    def _image_data(self):
        if "images" not in self._examples:
            from distillbench.kinds.image_classifier.images import load_image_dataset

            data = self.recipe.data
            dataset = load_image_dataset(data.source, data.split, data.size)
            if data.labeled_per_class is not None:
                from distillbench.kinds.image_classifier.images import hide_labels

                dataset = hide_labels(dataset, data.labeled_per_class)
            self._examples["images"] = dataset
        return self._examples["images"]

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
        model.to("cuda" if torch.cuda.is_available() else "cpu")
        with self._generation(cell, folder, model, tokenizer):
            for bench in pending:
                self._evaluate(store, cell, bench, model, tokenizer, folder)

    def _generation(self, cell: Cell, folder: Path, model, tokenizer):
        """The backend that generates for `model` while its cell is scored: transformers (no context), or vLLM
        on the same weights."""
        spec = self.recipe.generation
        if spec.backend == "hf" or tokenizer is None:
            return contextlib.nullcontext()
        from distillbench.kinds.text_lm.vllm_backend import VLLMGenerator

        ref = parse_model_ref(cell.model_ref)
        location, revision = ((resolve_path(ref), ref.revision) if cell.kind == "reference"
                              else (str(folder / "model"), None))
        return serving(VLLMGenerator(location, model, revision=revision, dtype=spec.dtype,
                                     gpu_memory_utilization=spec.gpu_memory_utilization, seed=cell.seed or 0,
                                     trust_remote_code=self.recipe.trust_remote_code))

    def _prepare(self, cell: Cell, folder: Path, plan: Plan):
        """The model a cell scores: a reference model as is, or the student trained by the method."""
        init = self._init_ref(cell, plan)
        model, tokenizer = self._load(init, seed=cell.seed or 0)
        if cell.kind == "reference":
            return model, tokenizer, {}
        budget = self.recipe.budget
        cache = self._signal_cache(cell, tokenizer)
        batching = None
        if self.images:
            from distillbench.kinds.image_classifier.images import ImageBatching

            batching = ImageBatching(self._image_data(), self.recipe.data.augment, budget.batch_size)
        self.console.print(f"training {cell.folder} ({budget.steps} steps)")
        result = train(cell.method, model, tokenizer, self._train_examples(tokenizer, cell.method.data_kind), budget,
                       cell.seed, folder / "checkpoint", frozen=self._frozen_models(cell, init),
                       log_path=folder / "train_log.jsonl", description=f"train {cell.label} seed {cell.seed}",
                       validation=self._train_examples(tokenizer, "validation") if "validation" in cell.method.needs
                       else None, signal_cache=cache, batching=batching)
        model = result.model if result.model is not None else model
        _save_atomic(model, tokenizer, folder / "model")
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)  # the final model supersedes it
        unit = result.unit
        cost = {"train_seconds": round(result.wall_seconds, 2), "steps": result.steps, f"train_{unit}": result.tokens,
                f"train_{unit}_per_second": round(result.tokens / max(result.wall_seconds, 1e-9), 1),
                "teacher_forwards": result.teacher_forwards, "trained_parameters": result.trained_parameters,
                "peak_memory_mb": round(result.peak_memory_mb, 1), "final_loss_terms": result.final_terms,
                "on_policy_steps": result.on_policy_steps, **({"final_measures": result.measures} if result.measures
                                                                 else {}),
                **({"signal_cache": {"k": cache.k, "bytes_per_position": cache.bytes_per_position(),
                                     "teacher_passes": int(cache.metadata["teacher_passes"])}} if cache else {}),
                "device": result.device, "precision": result.precision}
        return model, tokenizer, cost

    def _load(self, ref: str, seed: int = 0):
        """(model, tokenizer) of a reference; classifiers have no tokenizer (None), and a fresh
        ``arch:`` classifier takes its weights from `seed` and its classes from the training data."""
        if self.images:
            from distillbench.kinds.image_classifier.classifiers import load_classifier

            return load_classifier(ref, num_classes=self._image_data().num_classes, seed=seed), None
        return load_causal_lm(ref, trust_remote_code=self.recipe.trust_remote_code)

    def _load_trained(self, cell: Cell, folder: Path):
        if cell.kind == "reference":
            return self._load(cell.model_ref)
        return self._load(str(folder / "model"))

    def _init_ref(self, cell: Cell, plan: Plan) -> str:
        """Where a cell's model starts: its model_ref, or the trained student of the cell it continues."""
        if cell.starts_from is None:
            return cell.model_ref
        return str(self.out / "cells" / plan.cell(cell.starts_from).folder / "model")

    def _signal_cache(self, cell: Cell, tokenizer) -> SignalCache | None:
        """The run's top-k teacher cache for the cell's training data, built on first use (budget.teacher_top_k)."""
        k, method = self.recipe.budget.teacher_top_k, cell.method
        if k is None or "teacher_logits" not in method.needs or method.generates_examples or self.images:
            return None
        if method.data_kind not in self._caches:
            teacher = self._load_frozen(self.recipe.teacher).to("cuda" if torch.cuda.is_available() else "cpu")
            self._caches[method.data_kind] = SignalCache.build_or_load(
                self.out / "signals", teacher, fingerprint(self.recipe.teacher),
                self._train_examples(tokenizer, method.data_kind), k)
        return self._caches[method.data_kind]

    def _frozen_models(self, cell: Cell, init: str) -> dict:
        """The frozen models the cell's method draws signals from, by role."""
        needs, frozen = cell.method.needs, {}
        if "teacher_logits" in needs or "teacher_features" in needs:
            frozen["teacher"] = self._load_frozen(self.recipe.teacher)
        if "reference_teacher_logits" in needs:
            frozen["reference_teacher"] = self._load_frozen(self.recipe.reference_teacher)
        for ref in cell.method.source_teachers:
            frozen[f"source:{ref}"] = self._load_frozen(ref)
        if "reference_logps" in needs:
            # DPO-style methods measure the policy against its own initialisation unless they name the teacher.
            frozen["reference"] = (self._load_frozen(self.recipe.teacher) if cell.method.reference_model == "teacher"
                                   else self._load(init)[0])
        return frozen

    def _load_frozen(self, ref: str):
        """A teacher-side model, loaded once per run and shared by every cell (it is never trained)."""
        if ref not in self._frozen:
            self._frozen[ref] = self._load(ref)[0]
        return self._frozen[ref]

    def _train_examples(self, tokenizer, kind: str):
        """Examples of one kind ("sft", "preference", "ranked", "problems", or "validation" for
        schedules that watch a validation loss), built once per run."""
        if kind == "images":
            return self._image_data()
        if kind not in self._examples:
            data, max_length = self.recipe.data, self.recipe.budget.max_length
            if kind == "preference":
                self._examples[kind] = tokenize_preferences(tokenizer, load_preferences(data.preferences), max_length)
            elif kind == "problems":  # untokenized records with answers, for methods that search (mcts-dpo)
                self._examples[kind] = problem_records(data.source, data.split, data.size)
            elif kind == "ranked":
                self._examples[kind] = tokenize_ranked(tokenizer, load_ranked(data.ranked), max_length)
            elif kind == "validation":
                records = (load_records(data.source, "dev", VALIDATION_SIZE) if data.source.startswith("pocket:")
                           else load_records(data.validation, "dev", None))
                self._examples[kind] = tokenize_records(tokenizer, records, max_length)
            else:
                records = load_records(data.source, data.split, data.size, data.noise_fraction, data.conversations,
                                       data.chatty_fraction)
                self._examples[kind] = tokenize_records(tokenizer, records, max_length)
        return self._examples[kind]

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


def _save_atomic(model, tokenizer, target: Path) -> None:
    staging = temporary_name(target)
    model.save_pretrained(staging, safe_serialization=True)
    if tokenizer is not None:  # classifiers have none
        tokenizer.save_pretrained(staging)
    replace_directory(staging, target)


def run_workers(runner: Runner, recipe_path: str, jobs: int) -> int:
    """Run `runner`'s recipe in `jobs` processes on one output directory: this one and jobs − 1 workers
    (`distillbench run` again, their output in <out>/workers/worker-<n>.log). The cell locks share the
    cells out, so each is trained and scored once; every process gets cpu_count / jobs torch threads.
    On the 2-core machine the demo took as long with two processes as with one of two threads
    (bench/results/end_to_end.json): it pays only where one process leaves cores idle.
    Returns 0, or 1 when a worker failed (this process still ends every cell: a dead worker's lock is free)."""
    import subprocess
    import sys

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
        command = [sys.executable, "-m", "distillbench.cli.main", "run", recipe_path, "--out", str(runner.out)]
        workers.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment), log))
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


def run_recipe(recipe: Recipe, output_dir: Path | None = None) -> dict[str, Any]:
    return Runner(recipe, output_dir).run()
