"""Wall time of `make demo` (with the zoo already cached) and `make test` on this machine.

    .venv/bin/python bench/end_to_end.py [--only demo|test] [--keep DIR]

Runs each command as a user would, from the repository root, with the demo writing into a
fresh temporary output directory (so nothing is resumed), and records the seconds beside the
targets (demo ≤ 5 minutes with a cached zoo, test ≤ 10 minutes). A timing, not a test: run it
on an otherwise idle machine. Writes bench/results/end_to_end.json (merged with earlier entries,
so `--only` updates one figure). `--keep DIR` writes the demo's run into DIR instead, to keep its
leaderboard (DIR must not exist yet, so nothing is resumed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distillbench.core.provenance import machine, package_versions

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "end_to_end.json"
TARGETS = {"demo": 5 * 60, "test": 10 * 60}


def command(name: str, out: Path, jobs: int = 1) -> list[str]:
    if name == "demo":  # `make demo` runs this (with its --jobs); --out keeps the committed runs/ untouched
        return [str(ROOT / ".venv" / "bin" / "distillbench"), "run", "--out", str(out),
                *(["--jobs", str(jobs)] if jobs > 1 else [])]
    return [str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def recorded(words: list[str]) -> str:
    """A command as the results record it: paths relative to the repository root, not this machine's."""
    return " ".join(word.removeprefix(f"{ROOT}/") for word in words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(TARGETS))
    parser.add_argument("--jobs", type=int, default=1, help="the demo's `distillbench run --jobs` (recorded as demo-jobs-N)")
    parser.add_argument("--keep", type=Path, help="write the demo's run into this new directory and keep it")
    args = parser.parse_args()
    if args.keep and args.keep.exists():
        sys.exit(f"{args.keep} exists: the demo must start from an empty output directory")
    result = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"benchmark": "end_to_end", "runs": {}}
    with tempfile.TemporaryDirectory(prefix="distillbench-e2e-") as scratch:
        for name in [args.only] if args.only else sorted(TARGETS):
            started = time.perf_counter()
            out = args.keep.resolve() if args.keep else Path(scratch) / "demo"
            completed = subprocess.run(command(name, out, args.jobs), cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if completed.returncode != 0:
                sys.exit(f"{name} failed (exit {completed.returncode}):\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
            entry = f"{name}-jobs-{args.jobs}" if name == "demo" and args.jobs > 1 else name
            result["runs"][entry] = {"seconds": round(seconds, 1), "target_seconds": TARGETS[name],
                                     "meets_target": seconds <= TARGETS[name],
                                     "command": recorded(command(name, Path("<tmp>/demo"), args.jobs)),
                                     "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            print(f"{name:5s} {seconds:8.1f} s   target {TARGETS[name]} s: "
                  f"{'met' if seconds <= TARGETS[name] else f'missed by {seconds / TARGETS[name]:.1f}x'}")
    result.update(machine=machine(), packages=package_versions())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
