"""`distillbench leaderboard PATH`: print a leaderboard (a run directory's, or a leaderboard JSON such as a
committed board), its head-to-head or its claims."""

from __future__ import annotations

import json
from pathlib import Path

from distillbench.core.errors import UserInputError
from distillbench.leaderboards.aggregate import head_to_head
from distillbench.leaderboards.claims import check_claims, claims_markdown
from distillbench.leaderboards.html import write_html
from distillbench.leaderboards.records import board_file, item_source, records_path
from distillbench.leaderboards.render import print_table, print_versus, to_csv, to_markdown, versus_markdown
from distillbench.leaderboards.reported import with_reported


def leaderboard_command(args) -> int:
    _check_options(args)
    file = board_file(Path(args.directory))
    board = _read_board(file)
    if args.claims:
        print(claims_markdown(_from_items(file, lambda items: check_claims(items, board))), end="")
        return 0
    comparisons = (_from_items(file, lambda items: head_to_head(items, board, args.versus))
                   if args.versus else None)
    if args.reported:
        board = with_reported(board)
    _print_board(args, file, board, comparisons)
    return 0


def _check_options(args) -> None:
    if args.versus and args.format == "csv":
        raise UserInputError("--versus has no CSV form: use --format table, markdown, json or html")
    if args.claims and (args.format != "table" or args.reported or args.versus):
        raise UserInputError("--claims prints its own Markdown table: it takes no --format, --reported or --versus")


def _read_board(path: Path) -> dict:
    if not path.is_file():
        raise UserInputError(f"{path}: no leaderboard here (run 'distillbench run' first)")
    try:
        board = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(board, dict) or board.get("schema_version") != 1 or "rows" not in board:
        raise UserInputError(f"{path}: not a distillbench leaderboard (schema_version 1)")
    return board


def _from_items(file: Path, read):
    """`read(items)` over the board's per-item records (the head-to-head and claims pair items): its run's
    results store, or the records file beside it."""
    with item_source(file) as items:
        if items is None:
            raise UserInputError(f"{file}: no per-item records beside it (results.sqlite or "
                                 f"{records_path(file).name}); boards published before records were kept have none")
        return read(items)


def _print_board(args, file: Path, board: dict, comparisons: list | None) -> None:
    if args.format == "html":
        print(f"wrote {write_html(file.parent, board, comparisons, args.versus, file.with_suffix('.html').name)}")
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
