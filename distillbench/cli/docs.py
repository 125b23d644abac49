"""The tables of methods, benchmarks and kinds of student in docs/, generated from the registry.

`python -m distillbench.cli.docs` rewrites them in docs/methods.md, docs/benchmarks.md and
docs/kinds.md; a test fails when the committed pages and the registry drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from distillbench.core.registry import BENCHMARKS, KINDS, METHODS, Registry

TABLES = {"methods": METHODS, "benchmarks": BENCHMARKS, "kinds": KINDS}
# The page (relative to the repository root) that holds each table.
PAGES = {"methods": Path("docs/methods.md"), "benchmarks": Path("docs/benchmarks.md"), "kinds": Path("docs/kinds.md")}
# Families registered only by tests stay out of the docs.
HIDDEN_FAMILIES = {"test"}


def registry_table(registry: Registry) -> str:
    if registry is KINDS:  # a kind has no family or paper: what its methods train on and its benchmarks score
        return _kinds_table()
    lines = ["| name | family | paper | summary |", "|---|---|---|---|"]
    for entry in registry.entries():
        if entry.family not in HIDDEN_FAMILIES:
            also = "".join(f" (also `{alias}`)" for alias in entry.aliases)
            lines.append(f"| `{entry.name}`{also} | {entry.family} | {entry.paper} | {entry.summary} |")
    return "\n".join(lines)


def _kinds_table() -> str:
    lines = ["| kind | methods' data | benchmark families | module | summary |", "|---|---|---|---|---|"]
    for entry in KINDS.entries():
        kind = entry.obj
        lines.append(f"| `{entry.name}` | {', '.join(sorted(kind.data_kinds)) or 'none'} | "
                     f"{', '.join(sorted(kind.benchmark_families))} | `{kind.__module__}` | {entry.summary} |")
    return "\n".join(lines)


def _markers(kind: str) -> tuple[str, str]:
    return f"<!-- registry:{kind}:start -->", f"<!-- registry:{kind}:end -->"


def render_table(kind: str, text: str) -> str:
    """`text` with its `kind` table (methods or benchmarks) regenerated between the markers."""
    start, end = _markers(kind)
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"{PAGES[kind]} has no {start} … {end} block")
    return pattern.sub(lambda _: f"{start}\n{registry_table(TABLES[kind])}\n{end}", text)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for kind, page in PAGES.items():
        path = root / page
        path.write_text(render_table(kind, path.read_text()))
        print(f"updated the {kind} table in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
