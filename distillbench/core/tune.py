"""An equal tuning budget: every tuned method gets the same number of trials, chosen on a dev split.

A recipe's ``tune:`` block (`core.recipe.TuneSpec`) names the trials per method, the learning rates searched
for every method, the dev benchmarks and the objective. A method file declares what else the paper tunes
(`Method.search_space`: option → choices, β for DPO, say). For each tuned row, in start order (a method that
continues another's student continues the tuned one), Optuna's sampler proposes option sets; each trial is an
ordinary keyed cell (the recipe's method with those options, trained with seed `tune.seed`) scored on the dev
benchmarks, so an interrupted tuning resumes from the store: the seeded sampler proposes the same points again
and finds their cells done. The best trial's options are the row's: `make_plan(..., tuned=...)` trains them
with the recipe's seeds and scores them on its test benchmarks (the trial with the tuning seed is the same
cell, and is not trained twice).

Each row also records the student it starts from on the dev split, and whether its best trial beat it: better
by a paired test on the dev items at `START_ALPHA` (`start_test`), not by the sign of a difference of a few
items, wherever the objective is one per-item metric (a weighted sum, or a set metric, is compared by value).

Optuna's samplers, not a search of our own (the samplers are its well-kept part); its study lives in memory,
since the store already holds every trial's result.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
from rich.console import Console
from rich.markup import escape

from distillbench.core.errors import UserInputError
from distillbench.core.files import write_text_atomic
from distillbench.core.item_metrics import is_pooled, paired_pooled, values_from_records
from distillbench.core.plan import BenchmarkRun, Plan, benchmark_runs, in_start_order, make_plan
from distillbench.core.recipe import BUDGET, ComponentSpec, Recipe, method_params, start_of, validate_options
from distillbench.core.registry import METHODS
from distillbench.core.store import Store
from distillbench.core.two_level import two_level_difference

LEARNING_RATE = "learning_rate"
# A sampler may propose a point already trained (TPE over few choices does): it is told that point's value
# again and asked for another, up to this many proposals per trial, so that every method gets `trials`
# distinct trainings where its space has them.
REPEATS_PER_TRIAL = 20
# The level at which a row's best trial must beat its start on the dev items to count as better than it.
START_ALPHA = 0.05
START_TEST_RESAMPLES = 10_000


def search_space(spec: ComponentSpec, recipe: Recipe) -> dict[str, list[Any]]:
    """The choices a method entry is tuned over: the tune block's learning rates and its method's declared
    space, less the options the recipe entry fixes (those stay as set)."""
    declared = getattr(METHODS.get(spec.name), "search_space", {})
    own = {name: list(choices) for name, choices in declared.items() if name not in spec.params}
    fixed_rate = LEARNING_RATE in (spec.params.get(BUDGET) or {})
    return {**({} if fixed_rate else {LEARNING_RATE: list(recipe.tune.learning_rate)}), **own}


def grid_size(space: dict[str, list[Any]]) -> int:
    return math.prod(len(choices) for choices in space.values())


def chosen_options(spec: ComponentSpec, values: dict[str, Any]) -> dict[str, Any]:
    """A trial's values as method-entry options: the learning rate goes into the entry's own budget."""
    options = {name: value for name, value in values.items() if name != LEARNING_RATE}
    if LEARNING_RATE in values:
        options[BUDGET] = {**(spec.params.get(BUDGET) or {}), LEARNING_RATE: values[LEARNING_RATE]}
    return options


class Tuner:
    """Tunes a recipe's method rows; `execute(plan)` trains and scores a plan's cells into `store`."""

    def __init__(self, recipe: Recipe, kind: Any, store: Store, execute: Callable[[Plan], None],
                 console: Console | None = None, record_to: Path | None = None):
        self.recipe, self.kind, self.store, self.execute = recipe, kind, store, execute
        self.record_to = record_to  # the tuning record, rewritten after every row: an interrupted tuning keeps its rows
        self.tune = recipe.tune
        self.console = console or Console(stderr=True)
        self.tuned: dict[str, dict[str, Any]] = {}
        self.direction = _direction(benchmark_runs(self.tune.benchmarks, kind.benchmark_key()), self.tune.weights())
        self.recorded = read_record(self.tune.record) if self.tune.record else {}
        self.init_start: tuple[str, float | None, Plan] | None = None  # the recipe's student on dev, scored once

    def run(self) -> dict[str, dict[str, Any]]:
        """Row label → its tuning: the options chosen, the trials, the best dev objective and the cost."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        rows = self.tune.methods or [spec.label for spec in self.recipe.methods]
        methods = [(spec, validate_options(METHODS.get(spec.name), method_params(spec), spec.name)[0])
                   for spec in self.recipe.methods]
        for spec, _ in in_start_order(methods):  # a continuation is tuned from its tuned start
            if spec.label in rows:
                self.tuned[spec.label] = self._tune_row(spec)
                if self.record_to is not None:
                    write_text_atomic(self.record_to, json.dumps(tuning_record(self.tuned), indent=1) + "\n")
        return self.tuned

    def _tune_row(self, spec: ComponentSpec) -> dict[str, Any]:
        space = search_space(spec, self.recipe)
        if not space:
            return {"trials": 0, "sampler": None, "chosen": None, "best_dev": None, "train_seconds": 0.0,
                    "history": [], "note": "nothing to search: the recipe entry sets every tuned option"}
        trials = min(self.tune.trials, grid_size(space))  # a grid no larger than the budget is run whole
        sampler = "grid" if self.tune.sampler == "grid" or trials == grid_size(space) else "tpe"
        study = optuna.create_study(direction=self.direction, sampler=self._sampler(sampler, space, trials))
        done: dict[tuple, dict[str, Any]] = {}  # point → its trial: a repeated point is told again, not trained

        def objective(trial: optuna.Trial) -> float:
            values = {name: trial.suggest_categorical(name, choices) for name, choices in space.items()}
            point = tuple(values.values())
            if point not in done:
                done[point] = self._trial(spec, values, len(done), trials)
            value = done[point]["value"]
            return math.nan if value is None else value  # NaN: Optuna records a failed trial

        def enough(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
            if len(done) == trials:
                study.stop()

        study.optimize(objective, n_trials=trials * REPEATS_PER_TRIAL, callbacks=[enough])
        history = list(done.values())
        summary = self._summary(spec, sampler, space, history)
        return self._against_start(spec, summary, history)

    def _start(self, spec: ComponentSpec) -> tuple[str | None, float | None, Plan | None]:
        """The student the row starts from on the dev split, the figure its search has to beat: (its cell, its
        dev objective, the plan that scores it). A continuation's is its tuned start's best trial; otherwise the
        recipe's student scored as it is (once per tuning)."""
        start = start_of(spec, METHODS.get(spec.name))
        if start is not None:
            entry = next(entry for entry in self.recipe.methods if entry.name == start)  # the plan's rule
            best = self._best_trial((self.tuned.get(entry.label) or {}).get("history", []), "dev")
            if best is None:
                return None, None, None
            return best["cell"], best["dev"], self._trial_plan(entry, chosen_options(entry, best["values"]))
        if self.init_start is None:
            recipe = self.recipe.model_copy(update={"methods": [], "seeds": [self.tune.seed], "tune": None,
                                                    "benchmarks": self.tune.benchmarks, "leaderboard": None})
            plan = make_plan(recipe, self.kind)
            cell = next(c for c in plan.cells if c.kind == "reference" and c.model_ref == self.recipe.student)
            plan = Plan([cell], plan.benchmarks)
            self.execute(plan)
            self.init_start = (cell.key, self._objective(cell.key, plan), plan)
        return self.init_start

    def _against_start(self, spec: ComponentSpec, summary: dict[str, Any], history: list[dict]) -> dict[str, Any]:
        """`summary` with the row's start on the dev split (`start_dev`), the paired test of its best trial
        against it (`start_test`) and a note where the search found nothing better."""
        start_cell, start_dev, start_plan = self._start(spec)
        if start_dev is None or summary["best_dev"] is None:
            return summary
        summary["start_dev"] = round(start_dev, 6)
        better = self._better(summary["best_dev"], start_dev)
        test = self._start_test(spec, history, start_cell, start_plan) if better else None
        if test is not None:
            summary["start_test"] = test
            better = self._better(test["diff"], 0.0) and test["p"] < START_ALPHA
        if not better:
            why = "" if test is None else (f"; the row's cell against its start on the dev items: "
                                           f"{test['diff']:+.4g}, paired {test['test']} p = {test['p']:.2g}, "
                                           f"not below {START_ALPHA}")
            summary["note"] = (f"the tuned search found nothing better than its start on the dev split "
                               f"(best {summary['best_dev']:.4g}, start {summary['start_dev']:.4g}{why})")
        return summary

    def _start_test(self, spec: ComponentSpec, history: list[dict], start_cell: str | None,
                    start_plan: Plan | None) -> dict[str, Any] | None:
        """The paired test of the row's best trial against its start on the dev items of a one-metric
        objective: {"diff", "p", "test", "n"}; None where the objective is not one per-item metric. Cells
        whose dev items the store lacks (trials taken from a tuning record) are trained and scored here; the
        best trial's cell is the row's tuning-seed cell, which the run trains anyway. Its figure may then differ
        from the record's, which another training of the same cell made (training is not bitwise reproducible
        across machines and thread counts): the test is of the model the row reports."""
        if len(self.tune.weights()) != 1 or start_cell is None or start_plan is None:
            return None
        name, _, measure = next(iter(self.tune.weights())).partition("/")
        bench = next(b for b in start_plan.benchmarks if b.name == name)
        definitions = bench.benchmark.metric_definitions()
        if measure in definitions.get("set_metrics", []):
            return None
        best = self._best_trial(history)
        best_plan = self._trial_plan(spec, chosen_options(spec, best["values"]))
        for cell, plan in ((start_cell, start_plan), (best["cell"], best_plan)):
            if not self.store.item_scores(cell, bench.key):
                self.execute(plan)
        best_values, start_values = (values_from_records(self.store.item_scores(cell, bench.key).items())
                                     for cell in (best["cell"], start_cell))
        if is_pooled(measure, definitions):
            result = paired_pooled(best_values, start_values, measure, definitions, START_TEST_RESAMPLES)
        else:
            result = _paired_plain(best_values, start_values, measure, measure in definitions["binary_metrics"])
        if result is None:
            return None
        return {"diff": round(result["diff"], 6), "p": float(f"{result['p']:.4g}"), "test": result["test"],
                "n": result["n"]}

    def _best_trial(self, history: list[dict], key: str = "value") -> dict[str, Any] | None:
        """The trial with the best objective (`key`: "value" in a tuning's own history, "dev" in a summary's)."""
        scored = [trial for trial in history if trial[key] is not None]
        return (max if self.direction == "maximize" else min)(scored, key=lambda t: t[key]) if scored else None

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.direction == "maximize" else value < than

    def _sampler(self, name: str, space: dict[str, list[Any]], trials: int) -> optuna.samplers.BaseSampler:
        if name == "grid":
            return optuna.samplers.GridSampler(space, seed=self.tune.seed)
        # TPE after a third of the trials drawn at random (Optuna's default of 10 would be random search here)
        return optuna.samplers.TPESampler(seed=self.tune.seed, n_startup_trials=max(1, trials // 3))

    def _trial(self, spec: ComponentSpec, values: dict[str, Any], number: int, trials: int) -> dict[str, Any]:
        """Train and score one trial cell (or find it in the store); its objective on the dev benchmarks."""
        plan = self._trial_plan(spec, chosen_options(spec, values))
        cell = next(c for c in plan.cells if c.label == spec.label)
        if cell.key in self.recorded:  # the same cell (content-keyed) was trained and scored where the record was made
            known = self.recorded[cell.key]
            self.console.print(escape(f"tune {spec.label}: trial {number + 1}/{trials}: {_shown(values)} "
                                      f"(from {self.tune.record}: dev objective {known['dev']})"))
            return {"values": values, "value": known["dev"], "cell": cell.key, "train_seconds": known["train_seconds"],
                    "recorded": True}
        self.console.print(escape(f"tune {spec.label}: trial {number + 1}/{trials}: {_shown(values)}"))
        self.execute(plan)
        record = self.store.cell(cell.key) or {}
        value = None if record.get("status") != "ready" else self._objective(cell.key, plan)
        cost = record.get("cost") or {}
        return {"values": values, "value": value, "cell": cell.key, "train_seconds": cost.get("train_seconds", 0.0),
                **({"error": record.get("error")} if record.get("status") == "failed" else {})}

    def _trial_plan(self, spec: ComponentSpec, options: dict[str, Any]) -> Plan:
        """The trial's cell (the row's, with `options`, seed `tune.seed`) and the cells it continues, scored on
        the dev benchmarks. Its cell is the one the row's tuning seed trains when `options` win."""
        recipe = self.recipe.model_copy(update={"methods": _continued(spec, self.recipe.methods) + [spec],
                                                "seeds": [self.tune.seed], "benchmarks": self.tune.benchmarks,
                                                "tune": None, "leaderboard": None})
        plan = make_plan(recipe, self.kind, tuned={**self.tuned, spec.label: {"chosen": options}})
        return Plan([cell for cell in plan.cells if cell.kind == "method"], plan.benchmarks)

    def _objective(self, cell_key: str, plan: Plan) -> float | None:
        """The weighted sum of the objective's dev metrics (None when one is missing)."""
        total = 0.0
        for metric, weight in self.tune.weights().items():
            name, _, measure = metric.partition("/")
            bench = next(b for b in plan.benchmarks if b.name == name)
            summary = self.store.metric_summaries(cell_key, bench.key).get(measure)
            if summary is None or summary["mean"] is None or not math.isfinite(summary["mean"]):
                return None
            total += weight * summary["mean"]
        return total

    def _summary(self, spec: ComponentSpec, sampler: str, space: dict[str, list[Any]],
                 history: list[dict]) -> dict[str, Any]:
        best = self._best_trial(history)
        summary = {"trials": len(history), "sampler": sampler,
                   "space": space, "objective": self.tune.weights(), "seed": self.tune.seed,
                   "chosen": None if best is None else chosen_options(spec, best["values"]),
                   "best_dev": None if best is None else round(best["value"], 6),
                   "train_seconds": round(sum(trial["train_seconds"] for trial in history), 2),
                   "history": [{"values": t["values"], "dev": t["value"], "cell": t["cell"],
                                "train_seconds": t["train_seconds"]} for t in history]}
        if recorded := sum(1 for trial in history if trial.get("recorded")):
            summary["recorded"] = f"{recorded} of {len(history)} trial(s) from {self.tune.record}"
        if best is None:
            summary["note"] = "every trial failed: the row trains with the recipe's options"
        self.console.print(escape(f"tune {spec.label}: chose {_shown(best['values']) if best else 'nothing'}"
                                  f" (dev objective {summary['best_dev']}) after {len(history)} trial(s)"))
        return summary


RECORD_SCHEMA = 1


def tuning_record(tuned: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What `Tuner.run` found, as a tuning record (`tune.record`): each trial's cell key with its dev objective and
    train seconds, by row."""
    return {"schema": RECORD_SCHEMA,
            "rows": {label: [{key: trial[key] for key in ("values", "dev", "cell", "train_seconds") if key in trial}
                             for trial in tuning.get("history", [])] for label, tuning in tuned.items()}}


def read_record(path: str) -> dict[str, dict[str, Any]]:
    """A tuning record's trials by cell key."""
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserInputError(f"tune.record: no file {path}") from None
    except json.JSONDecodeError as error:
        raise UserInputError(f"tune.record: {path} is not JSON ({error})") from None
    if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA:
        raise UserInputError(f"tune.record: {path} is not a tuning record of schema {RECORD_SCHEMA} (a run's tuning.json)")
    trials = [trial for row in record["rows"].values() for trial in row]
    if any("train_seconds" not in trial for trial in trials):
        raise UserInputError(f"tune.record: {path}: a trial without its train seconds")
    return {trial["cell"]: trial for trial in trials}


def _direction(benchmarks: list[BenchmarkRun], weights: dict[str, float]) -> str:
    """'maximize' or 'minimize': the objective's metrics are metrics of the dev benchmarks, of one direction."""
    directions = set()
    for metric in weights:
        name, _, measure = metric.partition("/")
        bench = next((b for b in benchmarks if b.name == name), None)
        if bench is None:
            raise UserInputError(f"tune.objective: {metric}: no tune benchmark {name!r} "
                                 f"({', '.join(b.name for b in benchmarks)})")
        definitions = bench.benchmark.metric_definitions()
        if measure in definitions.get("no_direction", []):
            raise UserInputError(f"tune.objective: {metric} has no better direction; optimise another metric")
        directions.add("minimize" if measure in definitions.get("lower_is_better", []) else "maximize")
    if len(directions) > 1:
        raise UserInputError("tune.objective: its metrics mix higher- and lower-is-better ones")
    return directions.pop()


def _paired_plain(values_a, values_b, metric: str, binary: bool) -> dict[str, Any] | None:
    """The one-model paired test of a per-item metric over the items both cells scored (exact McNemar for
    0/1 values, the sign-flip permutation test otherwise)."""
    items = sorted(set(values_a.get(metric, {})) & set(values_b.get(metric, {})))
    if not items:
        return None
    a, b = (np.array([[values[metric][item][0] for item in items]]) for values in (values_a, values_b))
    return two_level_difference(a, b, binary=binary, resamples=START_TEST_RESAMPLES)


def _shown(values: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in values.items())


def _continued(spec: ComponentSpec, specs: list[ComponentSpec]) -> list[ComponentSpec]:
    """The recipe entries whose students `spec` continues, first to last (the first entry of each name, as
    the plan keys continuations)."""
    chain: list[ComponentSpec] = []
    start = start_of(spec, METHODS.get(spec.name))
    while start is not None:
        entry = next((s for s in specs if s.name == start), None)
        if entry is None:
            break
        chain.insert(0, entry)
        start = start_of(entry, METHODS.get(entry.name))
    return chain

