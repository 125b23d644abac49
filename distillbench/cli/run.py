"""`distillbench run RECIPE`: train every method cell, score, publish the leaderboard (`--check`: plan only)."""

from __future__ import annotations

import sys
from pathlib import Path

from distillbench.cli.check import print_check
from distillbench.core.errors import UserInputError
from distillbench.core.inputs import absent_inputs_allowed
from distillbench.core.recipe import DEFAULT_RECIPE, load_recipe
from distillbench.core.runner import Runner, run_workers
from distillbench.leaderboards.publish import publish


def run_command(args) -> int:
    if args.jobs < 1:
        raise UserInputError(f"--jobs: at least 1 (got {args.jobs})")
    path = args.recipe or str(DEFAULT_RECIPE)
    if args.check:
        with absent_inputs_allowed() as absent:
            print_check(path, load_recipe(path), absent)
        return 0
    recipe = load_recipe(path)
    runner = Runner(recipe, Path(args.out) if args.out else None)
    if args.rerun:
        moved = runner.forget(args.rerun)
        print(f"--rerun: {len(moved)} cell folder(s) moved to {runner.out / 'replaced'}; those cells run again")
    if args.jobs == 1:
        _publish(runner, runner.run())
        return 0
    worker = [sys.executable, "-m", "distillbench.cli.main", "run", path, "--out", str(runner.out)]
    status = run_workers(runner, worker, args.jobs)
    _publish(runner, runner.check())
    return status


def _publish(runner: Runner, plan) -> dict:
    return publish(runner.out, plan, runner.recipe, runner.console)


def run_recipe(recipe, output_dir: Path | None = None) -> dict:
    """Run a loaded recipe and return its leaderboard (the `run` command without its options)."""
    runner = Runner(recipe, output_dir)
    return _publish(runner, runner.run())
