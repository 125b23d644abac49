"""`distillbench report NAME`: run a report's recipes and write its result from their stores."""

from __future__ import annotations

from pathlib import Path

from distillbench.leaderboards.reports import make_report


def report_command(args) -> int:
    runs = Path(args.runs)
    out = Path(args.out) if args.out else runs / f"report-{args.name}.json"
    make_report(args.name, runs, out)
    print(f"report: {out}")
    return 0
