"""`distillbench zoo build|list|verify`: the pocket model zoo."""

from __future__ import annotations

import sys

from distillbench.cli.tables import add_plain_row, new_table, print_wide
from distillbench.core.errors import UserInputError
from distillbench.pocket import zoo


def zoo_command(args) -> int:
    names = args.names or list(zoo.specs())
    unknown = [n for n in names if n not in zoo.specs()]
    if unknown:
        raise UserInputError(f"unknown pocket model {unknown[0]!r}; known: {', '.join(zoo.specs())}")
    action = {"list": _list, "verify": _verify, "build": _build}[args.action]
    return action(names, args)


def _list(names: list[str], args) -> int:
    table = new_table("pocket zoo", ("name", "description", "status", "path"))
    for name in names:
        problems = zoo.verify(name)
        add_plain_row(table, name, zoo.specs()[name].description, "ok" if not problems else problems[0],
                      str(zoo.model_dir(name)))
    print_wide(table)
    return 0


def _verify(names: list[str], args) -> int:
    problems = [p for name in names for p in zoo.verify(name)]
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"verified: {', '.join(names)}")
    return 1 if problems else 0


def _build(names: list[str], args) -> int:
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
