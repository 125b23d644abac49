"""The `distillbench` command line.

Bad input (a recipe, a data file, a model reference) exits with status 2 and
one line per problem, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from distillbench.core.errors import UserInputError
from distillbench.core.registry import load_builtin
from distillbench.plugins import COMMANDS


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
    run

    report = commands.add_parser("report", help="run a report's recipes (a statistic over several runs, e.g. diswot, "
                                 "autodistiller) and write its result from their stores")
    report.add_argument("name", help="a registered report")
    report.add_argument("--runs", default="runs", help="where each of its recipes runs, in <runs>/<recipe name> "
                        "(resumable; default: runs)")
    report.add_argument("--out", help="the result's JSON (Markdown beside it, for reports that render one); "
                        "default: <runs>/report-<name>.json")
    report

    listing = commands.add_parser("list", help="list registered methods or benchmarks, or the numbers papers report")
    listing.add_argument("what", choices=["methods", "benchmarks", "kinds", "reported"])
    listing.add_argument("--family", help="only this family (llm, diffusion, classify, vlm, image)")
    listing

    board = commands.add_parser("leaderboard", help="print the leaderboard of a run directory or a leaderboard JSON")
    board.add_argument("directory", metavar="PATH", help="a run directory, or a leaderboard JSON (--versus and "
                       "--claims read its run's results.sqlite, else the <name>.items.csv.gz beside it)")
    board.add_argument("--format", choices=["table", "markdown", "json", "csv", "html"], default="table",
                       help="html writes leaderboard.html (a board file's <name>.html) beside the board, "
                       "one self-contained page")
    board.add_argument("--versus", metavar="ROW", help="paired differences of every row against ROW, with CIs, "
                       "p-values (McNemar for binary metrics) and Holm correction")
    board.add_argument("--claims", action="store_true", help="the seed papers' claims this leaderboard can check, "
                       "each with its paired test and whether it held (a Markdown table)")
    board.add_argument("--reported", action="store_true", help="the numbers the seed papers report: beside the "
                       "row that reproduces one (with the difference), the others in a separate section")
    board

    score = commands.add_parser("score", help="score predictions made elsewhere, without loading a model")
    score.add_argument("benchmark", help="a registered benchmark, e.g. math500, gsm8k")
    score.add_argument("--predictions", required=True, metavar="FILE.jsonl",
                       help="one JSON object a line: id, response, and optionally gold")
    score.add_argument("--grader", help="for MATH benchmarks: math-verify (default), minerva, hendrycks, or "
                       "minerva-lm-eval (minerva without its string shortcut: lm-eval's own numbers)")
    score.add_argument("--dataset", action="append", default=[], metavar="KEY=VALUE",
                       help="a benchmark option, as under benchmarks: in a recipe, e.g. questions=DIR for pope "
                       "(repeatable; lists in YAML: splits=[random,popular])")
    score.add_argument("--out", metavar="DIR", help="write DIR/results.json (metrics and per-item records)")
    score

    gate = commands.add_parser("compare", help="regression gate: exit 1 when a metric of NEW dropped against BASELINE")
    gate.add_argument("new", help="a run directory or leaderboard.json")
    gate.add_argument("baseline", help="a run directory or leaderboard.json")
    gate.add_argument("--tolerance", action="append", default=[], metavar="METRIC=VALUE",
                      help="allowed drop for a metric, e.g. pocket-math/accuracy=0.02 (repeatable)")
    gate

    zoo = commands.add_parser("zoo", help="build, list or verify the pocket model zoo")
    zoo.add_argument("action", choices=["build", "list", "verify"])
    zoo.add_argument("names", nargs="*", help="zoo models (default: all)")
    zoo.add_argument("--force", action="store_true", help="build: rebuild even when a verified build exists")
    zoo.add_argument("--export", action="store_true",
                     help="build: also copy the builds into the package (distillbench/pocket/zoo/)")
    zoo
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
        return load_builtin(COMMANDS[args.command])(args)
    except UserInputError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
