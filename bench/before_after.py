"""`make test` and `make demo` before and after a change, side by side on the same machine.

    .venv/bin/python bench/before_after.py BEFORE_REV [--only demo|test] [--rounds N]

Checks BEFORE_REV out into a temporary git worktree, installs it into that worktree's own `.venv`
(`make install`: the editable install of one checkout cannot serve the other's subprocesses), then
times what `make test` and `make demo` run (the commands of `bench/end_to_end.py`), each checkout its
own, in alternation (before, after, before, after, ...), so drift of the shared machine hits both
sides alike. The demo writes into a fresh folder each time (nothing resumed; the zoo is cached). A
run that exits non-zero (a flaky test on one side) still counts as a timing, and its last line is
recorded with it. Records every figure and the ratio of the medians (after ÷ before) in
bench/results/before_after.json. A timing, not a test: run it on an otherwise idle machine; the demo
takes about 8.5 minutes a run on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from distillbench.core.provenance import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "before_after.json"
COMMANDS = {"test": [".venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            "demo": [".venv/bin/distillbench", "run", "--out"]}  # + a fresh folder


def timed(checkout: Path, name: str, failures: list[str], keep: Path | None = None) -> float:
    """Wall seconds of `name` run in `checkout`; a non-zero exit appends its last line to `failures`. With
    `keep`, the demo's leaderboard files are copied there (to compare its means with the other side's)."""
    with tempfile.TemporaryDirectory(prefix="distillbench-demo-") as scratch:
        words = COMMANDS[name] + ([str(Path(scratch) / "demo")] if name == "demo" else [])
        started = time.perf_counter()
        completed = subprocess.run(words, cwd=checkout, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if keep is not None and name == "demo":
            keep.mkdir(parents=True, exist_ok=True)
            for board in (Path(scratch) / "demo").glob("leaderboard.*"):
                shutil.copy(board, keep / board.name)
    if completed.returncode != 0:
        lines = (completed.stdout + completed.stderr).strip().splitlines()
        failures.append(f"{checkout.name}: exit {completed.returncode}: {lines[-1] if lines else ''}")
    return round(seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the git revision to compare against (e.g. the last commit before the change)")
    parser.add_argument("--only", choices=["demo", "test"])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side (alternating)")
    parser.add_argument("--keep-boards", type=Path, metavar="DIR",
                        help="copy each side's demo leaderboard (leaderboard.json, .md, .csv) into DIR/before and "
                             "DIR/after (the last round's), to compare their means")
    args = parser.parse_args()
    after = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"benchmark": "before_after", "runs": {}}
    with tempfile.TemporaryDirectory(prefix="distillbench-before-") as scratch:
        before = Path(scratch) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True)
        try:
            subprocess.run(["make", "install"], cwd=before, check=True, capture_output=True)
            for name in [args.only] if args.only else ["test", "demo"]:
                figures, failures = {"before": [], "after": []}, []
                for _ in range(args.rounds):
                    figures["before"].append(timed(before, name, failures, args.keep_boards and args.keep_boards / "before"))
                    figures["after"].append(timed(ROOT, name, failures, args.keep_boards and args.keep_boards / "after"))
                ratio = statistics.median(figures["after"]) / statistics.median(figures["before"])
                result["runs"][name] = {"before": args.before, "after": after, "seconds": figures,
                                        "command": " ".join(COMMANDS[name] + (["<fresh folder>"] if name == "demo" else [])),
                                        "failures": failures,
                                        "ratio_of_medians": round(ratio, 3), "within_10_percent": ratio <= 1.10,
                                        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
                print(f"{name}: before {figures['before']} s, after {figures['after']} s, after ÷ before {ratio:.3f}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    result["machine"] = machine()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
