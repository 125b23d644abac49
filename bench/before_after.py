"""`make test` and `make demo` before and after a change, side by side on the same machine.

    .venv/bin/python bench/before_after.py BEFORE_REV [--only demo|test] [--rounds N]

Checks BEFORE_REV out into a temporary git worktree, installs it into that worktree's own `.venv`
(`make install`: the editable install of one checkout cannot serve the other's subprocesses), then
times each checkout's own `bench/end_to_end.py --only <name>` in alternation (before, after, before,
after, ...), so drift of the shared machine hits both sides alike. Records every figure and the
ratio of the medians (after ÷ before) in bench/results/before_after.json. A timing, not a test: run
it on an otherwise idle machine; the demo takes about 8.5 minutes a run on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distillbench.core.provenance import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "before_after.json"
SECONDS = re.compile(r"^(demo|test)\s+([0-9.]+) s", re.M)


def timed(checkout: Path, name: str) -> float:
    """Seconds of `name` as the checkout's own end_to_end.py measures it (its figure, not ours)."""
    completed = subprocess.run([str(checkout / ".venv" / "bin" / "python"), "bench/end_to_end.py", "--only", name],
                               cwd=checkout, capture_output=True, text=True)
    found = SECONDS.search(completed.stdout)
    if completed.returncode != 0 or not found:
        sys.exit(f"{checkout}: {name} failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
    return float(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the git revision to compare against (e.g. the last commit before the change)")
    parser.add_argument("--only", choices=["demo", "test"])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side (alternating)")
    args = parser.parse_args()
    after = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"benchmark": "before_after", "runs": {}}
    with tempfile.TemporaryDirectory(prefix="distillbench-before-") as scratch:
        before = Path(scratch) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True)
        try:
            subprocess.run(["make", "install"], cwd=before, check=True, capture_output=True)
            for name in [args.only] if args.only else ["test", "demo"]:
                figures = {"before": [], "after": []}
                for _ in range(args.rounds):
                    figures["before"].append(timed(before, name))
                    figures["after"].append(timed(ROOT, name))
                ratio = statistics.median(figures["after"]) / statistics.median(figures["before"])
                result["runs"][name] = {"before": args.before, "after": after, "seconds": figures,
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
