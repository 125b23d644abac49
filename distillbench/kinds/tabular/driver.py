"""Tabular generators: the separate, minimal path of methods whose student is a synthetic-data generator
(`fair-latent`), which the image/LLM runner does not train.

A tabular recipe (YAML) names the pocket-fair world, the seeds, the methods (registry names and options,
as in a runner recipe) and the benchmarks (``fair-synthetic``)::

    name: pocket-fair-latent
    world: {seed: 0, train_size: 4000}
    seeds: [0, 1, 2]
    methods: [{name: fair-latent, fairness_weight: 0}, fair-latent]
    benchmarks: [{name: fair-synthetic, n: 2000}]
    output_dir: runs/pocket-fair-latent

Each (method, seed) cell fits the method on the world's train split (``method.fit(data, seed)``), saves the
generator (``generator.json`` + ``model.safetensors``) under ``cells/<label>-seed<k>-<key>/``, the key a hash
of the method's options, the seed and the world, scores it with every benchmark (outputs kept as
``outputs-<benchmark>-<key of its options>.jsonl``) and skips what is already there. ``results.json`` and
``results.md`` give each row's metrics: per-item metrics (accuracy) as the mean over items of the
seed-averaged values with a percentile-bootstrap CI over items; set metrics (parity, fidelity) as the mean of the per-seed values with
a t-interval over seeds (the per-seed values in ``seed_spread``). ``results.json`` is in results-schema 1,
so ``distillbench compare`` and the regression gate read it. Run: ``python -m distillbench.kinds.tabular.driver RECIPE``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from distillbench.core.stats import summarize

from distillbench.core.errors import UserInputError
from distillbench.core.files import replace_directory, temporary_name, write_text_atomic
from distillbench.core.plan import benchmark_run, folder_name
from distillbench.core.recipe import ComponentSpec, _component, stable_hash, validate_options
from distillbench.core.registry import BENCHMARKS, METHODS

FORMAT = "distillbench-tabular-generator"


def save_generator(generator, label: str, method, directory: Path) -> None:
    from safetensors.torch import save_file

    staging = temporary_name(directory)
    staging.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, str(staging / "model.safetensors"))
    config = {"format": FORMAT, "label": label, "method": method_name(method), "params": dataclasses.asdict(method)}
    (staging / "generator.json").write_text(json.dumps(config, indent=1) + "\n")
    replace_directory(staging, directory)


def method_name(method) -> str:
    """The registry name of a method instance."""
    return METHODS.name_of(type(method))


def load_generator(directory: Path):
    """The generator saved in `directory`: rebuilt by its method from the saved options, weights from safetensors."""
    from safetensors.torch import load_file

    config = json.loads((Path(directory) / "generator.json").read_text())
    if config.get("format") != FORMAT:
        raise UserInputError(f"{directory}: not a distillbench tabular generator")
    method = METHODS.get(config["method"])(**config["params"])
    weights = load_file(str(Path(directory) / "model.safetensors"))
    generator = method.empty_generator(weights["rows"])
    generator.load_state_dict(weights)
    return generator.eval()


def run_tabular(path: Path) -> dict[str, Any]:
    from distillbench.pocket.fair_tabular import generate

    raw = yaml.safe_load(Path(path).read_text())
    out = Path(raw["output_dir"])
    world = {"train_size": raw["world"].get("train_size"), "seed": raw["world"].get("seed", 0)}
    data = generate("train", world["train_size"], world["seed"])
    methods = [ComponentSpec(**_component(spec)) for spec in raw["methods"]]
    benchmarks = [ComponentSpec(**_component(spec)) for spec in raw["benchmarks"]]
    built = {spec.label: _build(METHODS, spec) for spec in methods}
    names = [spec.name for spec in benchmarks]  # a benchmark listed once is named plainly (as the runner does)
    labels = [spec.name if names.count(spec.name) == 1 else spec.label for spec in benchmarks]
    scorers = {label: _build(BENCHMARKS, spec) for label, spec in zip(labels, benchmarks)}
    # Outputs are keyed as the runner keys evaluations: by the benchmark's options and scorer version.
    output_keys = {label: benchmark_run(spec.name, spec.params).key[:8] for label, spec in zip(labels, benchmarks)}
    results: dict[str, dict[str, Any]] = {}
    for label, method in built.items():
        per_seed = []
        for seed in raw["seeds"]:
            # Keyed by content, as the runner's cells are: another world or method option is another folder,
            # and another benchmark option another outputs file, never a stale one reused.
            key = stable_hash({"method": method_name(method), "params": dataclasses.asdict(method), "seed": seed,
                               "world": world})
            folder = out / "cells" / folder_name(label, seed, key)
            if not (folder / "model" / "generator.json").is_file():
                print(f"training {label} seed {seed}", flush=True)
                save_generator(method.fit(data, seed), label, method, folder / "model")
            generator = load_generator(folder / "model")
            per_seed.append({name: _evaluate(bench, generator, folder / f"outputs-{name}-{output_keys[name]}.jsonl")
                             for name, bench in scorers.items()})
        results[label] = _summarise(per_seed, scorers, raw["seeds"])
        print(label, json.dumps({k: round(v["mean"], 4) for k, v in results[label].items()}), flush=True)
    write_text_atomic(out / "results.json", json.dumps(_board(raw, results, scorers), indent=1) + "\n")
    write_text_atomic(out / "results.md", _markdown(raw["name"], results))
    return results


def _build(registry, spec: ComponentSpec):
    cls = registry.get(spec.name)
    if getattr(cls, "data_kind", None) != "tabular":
        raise UserInputError(f"{spec.name}: not a tabular generator method or benchmark (this path runs fair-latent "
                             "and fair-synthetic; the others run with distillbench run)")
    instance, problems = validate_options(cls, spec.params, spec.name)
    if problems:
        raise UserInputError(problems)
    return instance


def _evaluate(benchmark, generator, path: Path) -> dict[str, Any]:
    items = benchmark.items()
    if path.is_file():
        outputs = [json.loads(line)["output"] for line in path.read_text().splitlines()]
    else:
        outputs = benchmark.predict(generator, None, items, batch_size=256)
        write_text_atomic(path, "".join(json.dumps({"id": i["id"], "output": o}) + "\n" for i, o in zip(items, outputs)))
    per_item = {name: np.array([benchmark.score(i, o).values[name] for i, o in zip(items, outputs)])
                for name in benchmark.binary_metrics}
    return {"items": per_item, "set": benchmark.score_set(items, outputs)}


def _board(raw: dict, results: dict[str, dict], scorers: dict) -> dict[str, Any]:
    """results-schema 1 (what `distillbench compare` reads): one row per method label, seeds pooled."""
    from distillbench.leaderboards.side_report import schema_rows

    by_metric: dict[str, dict[str, dict]] = {}
    for label, metrics in results.items():
        for key, summary in metrics.items():
            by_metric.setdefault(key, {})[label] = summary
    return {"schema_version": 1, "recipe": raw, "protocols": {name: {**bench.protocol(), **bench.metric_definitions()}
                                                              for name, bench in scorers.items()},
            "rows": schema_rows(by_metric, raw["seeds"])}


def _summarise(per_seed: list[dict], scorers: dict, seeds: list[int]) -> dict[str, Any]:
    metrics = {}
    for name in scorers:
        for metric in per_seed[0][name]["items"]:
            values = [s[name]["items"][metric] for s in per_seed]
            metrics[f"{name}/{metric}"] = {**summarize(np.mean(values, axis=0)),
                                           "seeds": {str(seed): float(v.mean()) for seed, v in zip(seeds, values)}}
        for metric in per_seed[0][name]["set"]:
            metrics[f"{name}/{metric}"] = _set_metric_summary([s[name]["set"][metric] for s in per_seed])
    return metrics


def _set_metric_summary(per_seed: list[dict]) -> dict[str, Any]:
    """A set metric over seeds: the mean with a t-interval over the seeds' values; with one seed, that
    seed's own CI (the scorer's bootstrap over rows, or none), never a zero-width interval."""
    from scipy.stats import t

    values = np.array([seed["mean"] for seed in per_seed], dtype=float)
    mean = float(values.mean())
    if len(values) > 1:
        half = float(t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
        ci95 = [mean - half, mean + half]
    else:
        ci95 = per_seed[0].get("ci95")
    return {"mean": mean, "ci95": ci95, "n": len(values), "per_seed": [float(v) for v in values]}


def _markdown(name: str, results: dict[str, dict[str, Any]]) -> str:
    metrics = list(next(iter(results.values())))
    lines = [f"# {name}", "", "| row | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for label, row in results.items():
        cells = [f"{row[m]['mean']:.3f}" + (f" [{row[m]['ci95'][0]:.3f}, {row[m]['ci95'][1]:.3f}]" if row[m]["ci95"]
                                            else "") for m in metrics]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillbench.kinds.tabular.driver",
                                     description="Fit tabular generator methods over seeds and score them.")
    parser.add_argument("recipe", type=Path)
    run_tabular(parser.parse_args(argv).recipe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
