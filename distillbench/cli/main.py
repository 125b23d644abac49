"""The `distillbench` command line.

Bad input (a recipe, a data file, a model reference) exits with status 2 and
one line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from distillbench.core.errors import UserInputError


def _cmd_run(args) -> int:
    from distillbench.core.recipe import DEFAULT_RECIPE, load_recipe
    from distillbench.core.runner import Runner, run_workers

    if args.jobs < 1:
        raise UserInputError(f"--jobs: at least 1 (got {args.jobs})")
    path = args.recipe or str(DEFAULT_RECIPE)
    recipe = load_recipe(path)
    if args.check:
        from distillbench.cli.check import print_check

        print_check(path, recipe)
        return 0
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


def _publish(runner, plan) -> dict:
    from distillbench.leaderboards.publish import publish

    return publish(runner.out, plan, runner.recipe, runner.console)


def run_recipe(recipe, output_dir: Path | None = None) -> dict:
    """Run a loaded recipe and return its leaderboard (the `run` command without its options)."""
    from distillbench.core.runner import Runner

    runner = Runner(recipe, output_dir)
    return _publish(runner, runner.run())


def _cmd_report(args) -> int:
    from distillbench.leaderboards.reports import make_report

    runs = Path(args.runs)
    out = Path(args.out) if args.out else runs / f"report-{args.name}.json"
    make_report(args.name, runs, out)
    print(f"report: {out}")
    return 0


def _cmd_list(args) -> int:
    from distillbench.core.registry import BENCHMARKS, KINDS, METHODS

    if args.what == "reported":
        from distillbench.leaderboards.reported import entry_dict, reported_entries
        from distillbench.leaderboards.render import print_reported

        entries = reported_entries(args.family)
        if not entries:
            raise UserInputError(f"--family {args.family}: no reported numbers in this family")
        print_reported([entry_dict(e) for e in entries])
        return 0

    registry = {"methods": METHODS, "benchmarks": BENCHMARKS, "kinds": KINDS}[args.what]
    table = Table(title=f"distillbench {args.what}" + (f" (family {args.family})" if args.family else ""))
    for column in ("name", "family", "paper", "summary"):
        table.add_column(column)
    entries = list(registry.entries(args.family))
    if not entries:
        families = sorted({e.family for e in registry.entries()})
        raise UserInputError(f"--family {args.family}: no {args.what} in this family; known: {', '.join(families)}")
    for entry in entries:
        _add_row(table, entry.name + "".join(f" (also {alias})" for alias in entry.aliases), entry.family, entry.paper,
                 entry.summary)
    Console(width=200).print(table)
    return 0


def _cmd_leaderboard(args) -> int:
    import json

    from distillbench.leaderboards.render import print_table, print_versus, to_csv, to_markdown, versus_markdown

    path = Path(args.directory) / "leaderboard.json"
    if not path.is_file():
        raise UserInputError(f"{path}: no leaderboard here (run 'distillbench run' first)")
    try:
        board = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(board, dict) or board.get("schema_version") != 1 or "rows" not in board:
        raise UserInputError(f"{path}: not a distillbench leaderboard (schema_version 1)")
    if args.versus and args.format == "csv":
        raise UserInputError("--versus has no CSV form: use --format table, markdown, json or html")
    if args.claims and (args.format != "table" or args.reported or args.versus):
        raise UserInputError("--claims prints its own Markdown table: it takes no --format, --reported or --versus")
    comparisons = claims = None
    if args.versus or args.claims:
        from distillbench.core.store import Store
        from distillbench.leaderboards.aggregate import head_to_head
        from distillbench.leaderboards.claims import check_claims

        store = Store(Path(args.directory) / "results.sqlite")
        try:
            comparisons = head_to_head(store, board, args.versus) if args.versus else None
            claims = check_claims(store, board) if args.claims else None
        finally:
            store.close()
    if claims is not None:
        from distillbench.leaderboards.claims import claims_markdown

        print(claims_markdown(claims), end="")
        return 0
    if args.reported:
        from distillbench.leaderboards.reported import with_reported

        board = with_reported(board)
    if args.format == "html":
        from distillbench.leaderboards.html import write_html

        print(f"wrote {write_html(Path(args.directory), board, comparisons, args.versus)}")
    elif args.format == "csv":
        print(to_csv(board), end="")
    elif args.format == "json":
        print(json.dumps({**board, "versus": comparisons} if comparisons is not None else board, indent=1))
    elif args.format == "markdown":
        print(to_markdown(board), end="")
        if comparisons is not None:
            print("\n" + versus_markdown(comparisons, args.versus), end="")
    else:
        print_table(board)
        if comparisons is not None:
            print_versus(comparisons, args.versus)
    return 0


def _cmd_zoo(args) -> int:
    from distillbench.pocket import zoo

    names = args.names or list(zoo.specs())
    unknown = [n for n in names if n not in zoo.specs()]
    if unknown:
        raise UserInputError(f"unknown pocket model {unknown[0]!r}; known: {', '.join(zoo.specs())}")
    if args.action == "list":
        table = Table(title="pocket zoo")
        for column in ("name", "description", "status", "path"):
            table.add_column(column)
        for name in names:
            problems = zoo.verify(name)
            _add_row(table, name, zoo.specs()[name].description, "ok" if not problems else problems[0],
                     str(zoo.model_dir(name)))
        Console(width=200).print(table)
        return 0
    if args.action == "verify":
        problems = [p for name in names for p in zoo.verify(name)]
        for line in problems:
            print(line, file=sys.stderr)
        if not problems:
            print(f"verified: {', '.join(names)}")
        return 1 if problems else 0
    for name in names:
        if args.force or zoo.verify(name):
            print(f"building {name} ...", file=sys.stderr)
            if args.force:
                zoo.build(name)
            else:
                zoo.ensure_built(name)
        print(f"{name}: {zoo.model_dir(name)}")
        if args.export:
            print(f"{name}: exported to {zoo.export(name)}")
    return 0


def _add_row(table: Table, *cells: str) -> None:
    """A row of plain text: a row label such as kd[temperature=1.0] or a metric name such as
    accuracy[number] is not rich markup, which would swallow the brackets."""
    table.add_row(*(escape(cell) for cell in cells))


def _cmd_compare(args) -> int:
    from distillbench.leaderboards.compare import compare, parse_tolerances

    results = compare(args.new, args.baseline, parse_tolerances(args.tolerance))
    table = Table(title=escape(f"compare {args.new} against {args.baseline}"))
    for column in ("row", "metric", "baseline", "new", "delta", "tolerance", "basis", "status"):
        table.add_column(column)
    for r in results:
        if r["status"] == "missing":
            _add_row(table, r["row"], r["metric"], "", "", "", "", "", "missing in NEW")
            continue
        _add_row(table, r["row"], r["metric"], f"{r['baseline']:.4f}", f"{r['new']:.4f}", f"{r['delta']:+.4f}",
                 f"{r['tolerance']:.4f}", r["basis"], r["status"].upper() if r["regression"] else "ok")
    Console(width=200).print(table)
    regressions = [r for r in results if r["regression"]]
    print(f"{len(regressions)} regression(s) in {len(results)} comparisons")
    return 1 if regressions else 0


def _cmd_score(args) -> int:
    from distillbench.core.score_only import parse_dataset_options, score_predictions, write_results

    options = parse_dataset_options(args.dataset)
    if args.grader:
        options["grader"] = args.grader
    results = score_predictions(args.benchmark, args.predictions, options)
    table = Table(title=f"{args.benchmark} on {args.predictions}")
    for column in ("metric", "mean", "95% CI", "n"):
        table.add_column(column)
    for name, metric in results["metrics"].items():
        interval = "none" if metric["ci95"] is None else "[{:.4f}, {:.4f}]".format(*metric["ci95"])
        _add_row(table, name, f"{metric['mean']:.4f}", interval, str(metric["n"]))
    Console(width=200).print(table)
    if args.out:
        print(f"results: {write_results(results, Path(args.out))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillbench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a recipe: train every method cell, score, write the leaderboard")
    run.add_argument("recipe", nargs="?", help="recipe YAML (default: recipes/pocket/llm.yaml)")
    run.add_argument("--out", help="output directory (default: the recipe's output_dir, else runs/<name>)")
    run.add_argument("--jobs", type=int, default=1,
                     help="cells trained and scored at once, each process with cpu_count/jobs threads (default 1); "
                          "the extra processes log to <out>/workers/")
    run.add_argument("--check", action="store_true",
                     help="validate and plan the recipe without training or downloading anything: print the cells, "
                          "the reference rows and what each needs; exit 0, or 2 with one line per problem")
    run.add_argument("--rerun", nargs="+", metavar="ROW",
                     help="train and score these rows again (labels as the leaderboard shows them, or method names; "
                          "students continued from them too), e.g. after a fix to their method: their records are "
                          "dropped from the store and their cell folders moved to <out>/replaced/")
    run.set_defaults(handler=_cmd_run)

    report = commands.add_parser("report", help="run a report's recipes (a statistic over several runs, e.g. diswot, "
                                 "autodistiller) and write its result from their stores")
    report.add_argument("name", help="a registered report")
    report.add_argument("--runs", default="runs", help="where each of its recipes runs, in <runs>/<recipe name> "
                        "(resumable; default: runs)")
    report.add_argument("--out", help="the result's JSON (Markdown beside it, for reports that render one); "
                        "default: <runs>/report-<name>.json")
    report.set_defaults(handler=_cmd_report)

    listing = commands.add_parser("list", help="list registered methods or benchmarks, or the numbers papers report")
    listing.add_argument("what", choices=["methods", "benchmarks", "kinds", "reported"])
    listing.add_argument("--family", help="only this family (llm, diffusion, classify, vlm, image)")
    listing.set_defaults(handler=_cmd_list)

    board = commands.add_parser("leaderboard", help="print the leaderboard of a run directory")
    board.add_argument("directory")
    board.add_argument("--format", choices=["table", "markdown", "json", "csv", "html"], default="table",
                       help="html writes DIR/leaderboard.html, one self-contained page")
    board.add_argument("--versus", metavar="ROW", help="paired differences of every row against ROW, with CIs, "
                       "p-values (McNemar for binary metrics) and Holm correction")
    board.add_argument("--claims", action="store_true", help="the seed papers' claims this leaderboard can check, "
                       "each with its paired test and whether it held (a Markdown table)")
    board.add_argument("--reported", action="store_true", help="the numbers the seed papers report: beside the "
                       "row that reproduces one (with the difference), the others in a separate section")
    board.set_defaults(handler=_cmd_leaderboard)

    score = commands.add_parser("score", help="score predictions made elsewhere, without loading a model")
    score.add_argument("benchmark", help="a registered benchmark, e.g. math500, gsm8k")
    score.add_argument("--predictions", required=True, metavar="FILE.jsonl",
                       help="one JSON object a line: id, response, and optionally gold")
    score.add_argument("--grader", help="for MATH benchmarks: math-verify (default), minerva or hendrycks")
    score.add_argument("--dataset", action="append", default=[], metavar="KEY=VALUE",
                       help="a benchmark option, as under benchmarks: in a recipe, e.g. questions=DIR for pope "
                       "(repeatable; lists in YAML: splits=[random,popular])")
    score.add_argument("--out", metavar="DIR", help="write DIR/results.json (metrics and per-item records)")
    score.set_defaults(handler=_cmd_score)

    gate = commands.add_parser("compare", help="regression gate: exit 1 when a metric of NEW dropped against BASELINE")
    gate.add_argument("new", help="a run directory or leaderboard.json")
    gate.add_argument("baseline", help="a run directory or leaderboard.json")
    gate.add_argument("--tolerance", action="append", default=[], metavar="METRIC=VALUE",
                      help="allowed drop for a metric, e.g. pocket-math/accuracy=0.02 (repeatable)")
    gate.set_defaults(handler=_cmd_compare)

    zoo = commands.add_parser("zoo", help="build, list or verify the pocket model zoo")
    zoo.add_argument("action", choices=["build", "list", "verify"])
    zoo.add_argument("names", nargs="*", help="zoo models (default: all)")
    zoo.add_argument("--force", action="store_true", help="build: rebuild even when a verified build exists")
    zoo.add_argument("--export", action="store_true",
                     help="build: also copy the builds into the package (distillbench/pocket/zoo/)")
    zoo.set_defaults(handler=_cmd_zoo)
    return parser


def _quiet_libraries() -> None:
    """Our own progress bars say what is happening; silence the libraries' per-file bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return args.handler(args)
    except UserInputError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
