"""`distillbench list WHAT`: the registered methods, benchmarks or kinds, or the numbers papers report."""

from __future__ import annotations

from distillbench.cli.tables import add_plain_row, new_table, print_wide
from distillbench.core.errors import UserInputError
from distillbench.core.registry import BENCHMARKS, KINDS, METHODS
from distillbench.leaderboards.render import print_reported
from distillbench.leaderboards.reported import entry_dict, reported_entries


def list_command(args) -> int:
    if args.what == "reported":
        return _list_reported(args.family)
    registry = {"methods": METHODS, "benchmarks": BENCHMARKS, "kinds": KINDS}[args.what]
    entries = list(registry.entries(args.family))
    if not entries:
        families = sorted({e.family for e in registry.entries()})
        raise UserInputError(f"--family {args.family}: no {args.what} in this family; known: {', '.join(families)}")
    title = f"distillbench {args.what}" + (f" (family {args.family})" if args.family else "")
    table = new_table(title, ("name", "family", "paper", "summary"))
    for entry in entries:
        add_plain_row(table, entry.name + "".join(f" (also {alias})" for alias in entry.aliases), entry.family,
                      entry.paper, entry.summary)
    print_wide(table)
    return 0


def _list_reported(family: str | None) -> int:
    entries = reported_entries(family)
    if not entries:
        raise UserInputError(f"--family {family}: no reported numbers in this family")
    print_reported([entry_dict(e) for e in entries])
    return 0
