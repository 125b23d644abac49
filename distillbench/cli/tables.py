"""Rich tables of plain text, shared by the commands that print one."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def add_plain_row(table: Table, *cells: str) -> None:
    """A row of plain text: a row label such as kd[temperature=1.0] or a metric name such as
    accuracy[number] is not rich markup, which would swallow the brackets."""
    table.add_row(*(escape(cell) for cell in cells))


def new_table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=escape(title))
    for column in columns:
        table.add_column(column)
    return table


def print_wide(table: Table) -> None:
    """Print at 200 columns, so long row labels are not wrapped when the output is piped."""
    Console(width=200).print(table)
