"""`distillbench compare NEW BASELINE`: the regression gate (exit 1 when a metric dropped)."""

from __future__ import annotations

from distillbench.cli.tables import add_plain_row, new_table, print_wide
from distillbench.leaderboards.compare import compare, parse_tolerances


def compare_command(args) -> int:
    results = compare(args.new, args.baseline, parse_tolerances(args.tolerance))
    table = new_table(f"compare {args.new} against {args.baseline}",
                      ("row", "metric", "baseline", "new", "delta", "tolerance", "basis", "status"))
    for r in results:
        if r["status"] == "missing":
            add_plain_row(table, r["row"], r["metric"], "", "", "", "", "", "missing in NEW")
            continue
        add_plain_row(table, r["row"], r["metric"], f"{r['baseline']:.4f}", f"{r['new']:.4f}", f"{r['delta']:+.4f}",
                      f"{r['tolerance']:.4f}", r["basis"], r["status"].upper() if r["regression"] else "ok")
    print_wide(table)
    regressions = [r for r in results if r["regression"]]
    print(f"{len(regressions)} regression(s) in {len(results)} comparisons")
    return 1 if regressions else 0
